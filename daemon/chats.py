"""The chats side of the API: imports (by hand and from the export folder), reading, `why`."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from labmind.indexers.chats import sniff

from .chat_import import ChatImporter, ImportJob, export_signature
from .chat_store import AmbiguousChatId, ChatStore, ConversationSummary
from .config import ChatsConfig
from .events import EventBus
from .exports import ExportFolderWatcher
from .indexing import IndexService
from .protocol import (
    ChatDetail,
    ChatMessage,
    ChatSummary,
    ImportStatus,
    WhyLink,
    WhyResponse,
)
from .provenance import links_for_file
from .server import ApiError

log = logging.getLogger("labmind.chats")


class ChatService:
    """Owns the importer and the export-folder watcher; answers the chat routes."""

    def __init__(self, indexer: IndexService, events: EventBus, config: ChatsConfig) -> None:
        self.indexer = indexer
        self.store: ChatStore = indexer.chats
        self.events = events
        self.config = config
        self.importer = ChatImporter(indexer, events)
        self.watcher: ExportFolderWatcher | None = None

    def start(self) -> None:
        self.importer.start()
        self._start_watching()

    def stop(self) -> None:
        self._stop_watching()
        self.importer.stop()

    def reconfigure(self, config: ChatsConfig) -> None:
        """A new export folder or auto-import setting takes effect at once."""
        if config == self.config:
            return
        self._stop_watching()
        self.config = config
        self._start_watching()

    def _start_watching(self) -> None:
        if self.config.auto_import:
            folder = Path(self.config.export_dir).expanduser()
            self.watcher = ExportFolderWatcher(folder, self._candidate)
            self.watcher.start()

    def _stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _candidate(self, path: Path) -> None:
        """An entry of the export folder settled: import it if it is a new or changed export."""
        if self.importer.is_pending(path):
            return
        try:
            size, mtime_ns = export_signature(path)
        except OSError:
            return
        record = self.store.import_record(str(path))
        if record is not None and (record.size, record.mtime_ns) == (size, mtime_ns):
            return
        if sniff(path) is None:
            return
        log.info("new chat export in the export folder: %s", path)
        self.importer.submit(path, auto=True)

    # -- routes ------------------------------------------------------------------------------

    def import_chats(self, path: str) -> ImportStatus:
        target = Path(path).expanduser()
        if not target.exists():
            raise ApiError(404, f"{path}: no such file or folder")
        return _status(self.importer.submit(target.resolve()))

    def import_status(self, job_id: int) -> ImportStatus:
        job = self.importer.job(job_id)
        if job is None:
            raise ApiError(404, f"no import job {job_id}; jobs are kept until the daemon stops")
        return _status(job)

    def chats(self, limit: int, offset: int) -> list[ChatSummary]:
        return [_summary(s) for s in self.store.summaries(limit, offset)]

    def chat(self, chat_id: str) -> ChatDetail:
        try:
            found = self.store.find(chat_id)
        except AmbiguousChatId as exc:
            raise ApiError(409, str(exc)) from exc
        if found is None:
            raise ApiError(404, f"no conversation '{chat_id}'; see `labmind chats ls`")
        messages = [
            ChatMessage(
                id=m.message_id,
                position=m.position,
                role=m.role,
                created=m.created,
                on_path=m.on_path,
                text=m.text,
            )
            for m in self.store.messages(found.id)
        ]
        return ChatDetail(chat=_summary(found), messages=messages)

    def why(self, path: str, line: int | None) -> WhyResponse:
        real = str(Path(path).expanduser().resolve())
        indexed = self.indexer.store.file_state(real) is not None
        links = links_for_file(self.indexer.store.reader(), real, line)
        return WhyResponse(
            path=real,
            line=line,
            indexed=indexed,
            links=[WhyLink.model_validate(link, from_attributes=True) for link in links],
        )


def _summary(s: ConversationSummary) -> ChatSummary:
    return ChatSummary.model_validate(s, from_attributes=True)


def _status(job: ImportJob) -> ImportStatus:
    return ImportStatus.model_validate({**asdict(job), "job_id": job.id})
