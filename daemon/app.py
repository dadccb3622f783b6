"""Where the daemon's objects are built and wired, and the process is run."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

import psutil

from labmind.indexers.embedder_worker import WorkerEmbedder
from labmind.indexers.lexical import LexicalIndex, LexicalIndexError

from . import __version__
from .backups import BackupService
from .chats import ChatService
from .config import Config, ConfigError, config_as_dict, load_config, set_value
from .embedding import EmbeddingService
from .events import EventBus
from .experiment_queue import default_slots, sharing_policy
from .experiments import ExperimentService
from .indexing import IndexService
from .instance import AlreadyRunning, acquire
from .lesson_refine import refiner_for
from .lessons import LessonService
from .linking import LinkingService
from .notifications import ExperimentRuns, NotificationService
from .opener import SystemOpener
from .outlier_store import OutlierStore
from .outliers import OutlierService, StoreAttempts
from .paths import InsecureRuntimeDir, Paths
from .protocol import (
    BackupOutcome,
    BackupStatus,
    ChatDetail,
    ChatSummary,
    ConfigView,
    ImportStatus,
    IndexJob,
    IndexProgress,
    IndexRequest,
    LessonInfo,
    LessonUpdate,
    LogChunk,
    RestoreRequest,
    RestoreResult,
    RunDetail,
    RunInfo,
    RunOutliers,
    SearchRequest,
    SearchResponse,
    SkippedFile,
    SnapshotEntry,
    StatusInfo,
    SubmitResult,
    Suggestion,
    SuggestRequest,
    WatchRoot,
    WhyResponse,
)
from .run_log_tail import from_line_start, log_file_size, tail_start
from .searching import SearchService, SearchUnavailable
from .server import ApiError, create_api
from .store import Root, Store, StoreError
from .suggestions import Suggester
from .system_notifier import SystemNotifier
from .transport import bind_unix_socket, serve
from .watcher import ChangeBatch, Watcher, WatchError

log = logging.getLogger("labmind.daemon")


def _open_lexical(folder: Path) -> tuple[LexicalIndex | None, str | None]:
    try:
        return LexicalIndex.open_or_create(folder), None
    except LexicalIndexError as exc:
        return None, str(exc)


def _real(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class Daemon:
    """The running daemon: store, indexes, services and the watcher, behind the API."""

    def __init__(self, paths: Paths, config: Config) -> None:
        self.paths = paths
        self.config = config
        self.events = EventBus()
        self.started = time.time()
        self.store = Store(paths.store_file)
        lexical, error = _open_lexical(paths.lexical_dir)
        private = (paths.data_dir, paths.config_dir, paths.runtime_dir)
        self.indexer = IndexService(
            self.store,
            lexical,
            paths.lexical_dir,
            self.events,
            config.index,
            on_committed=self._committed,
            private_dirs=private,
        )
        self.indexer.lexical_error = error
        self.embedding: EmbeddingService | None = None
        embedder: WorkerEmbedder | None = None
        if config.embedder.enabled:
            embedder = WorkerEmbedder(
                config.embedder.model,
                batch_size=config.embedder.batch_size,
                idle_timeout_s=config.embedder.idle_timeout_s,
                nice=config.embedder.nice,
            )
            self.embedding = EmbeddingService(self.store, embedder, paths.vectors_file, self.events)
            self.embedding.paused = self.indexer.paused
        self.embedder = embedder
        self.searcher = SearchService(
            self.store,
            lambda: self.indexer.lexical,
            lambda: self.embedding.vectors if self.embedding else None,
            embedder,
            default_mode=config.search.default_mode,
            lexical_error=lambda: self.indexer.lexical_error,
        )
        self.watcher = Watcher(self._on_batch, debounce_s=config.index.debounce_ms / 1000)
        self.chats = ChatService(self.indexer, self.events, config.chats)
        self.linking = LinkingService(self.store, self.indexer.linker, self.events)
        self.backups = BackupService(self.store, self.events, config.backup, paths.data_dir)
        self.experiments = ExperimentService(
            self.store,
            self.events,
            paths.data_dir / "runs",
            slots=config.experiments.slots or default_slots(),
            snapshot_code=self.backups.snapshot_code,
            sharing=sharing_policy(config.experiments),
            config=config.experiments,
        )
        self.notifications = NotificationService(
            self.events,
            SystemNotifier(),
            ExperimentRuns(self.experiments),
            SystemOpener(lambda: self.config.notifications.open_command),
            config.notifications,
        )
        self.outliers = OutlierService(
            OutlierStore(self.store), StoreAttempts(self.store), self.events
        )
        self.lessons = LessonService(
            self.store,
            self.events,
            paths.data_dir / "runs",
            sweep_spec=self.experiments.records.sweep_spec,
            refiner=lambda: refiner_for(self.config),
            preflight=lambda: self.config.lessons.preflight,
        )
        self.suggester = Suggester(self.lessons, self.search, self._chat_title)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Reconcile with the disk and start the threads; returns at once."""
        self.notifications.start()
        if self.indexer.lexical is not None:
            self.indexer.check_consistency()
        if self.embedding is not None:
            self.embedding.load()
            self.embedding.start()
        self.indexer.start()
        self.linking.start()
        self.watcher.start()
        self.chats.start()
        roots = [r.path for r in self.store.roots()]
        self.backups.start(roots)
        self.experiments.start()
        self.outliers.start()
        self.lessons.start()
        for root in roots:
            self._watch(root)
        if roots and self.indexer.lexical is not None:
            self.indexer.scan(roots)
        if self.embedding is not None:
            self.embedding.kick()

    def stop(self) -> None:
        """Stop the watcher, finish and commit the batch in hand, save vectors."""
        self.watcher.stop()
        self.backups.stop()
        self.experiments.stop()
        self.outliers.stop()
        self.lessons.stop()
        self.chats.stop()
        self.indexer.stop()
        self.linking.stop()
        if self.embedding is not None:
            self.embedding.stop()
        if self.indexer.lexical is not None:
            self.indexer.lexical.close()
        self.store.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        self.events.bind(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        sock = bind_unix_socket(self.paths.socket_path)
        server_exit = asyncio.Event()

        async def close_streams() -> None:
            assert self._stop is not None
            await self._stop.wait()
            self.events.close()
            server_exit.set()

        closer = asyncio.create_task(close_streams())
        follower = asyncio.create_task(self.outliers.follow(self.events))
        lesson_follower = asyncio.create_task(self.lessons.follow(self.events))
        self.start()
        log.info("labmind %s serving on %s", __version__, self.paths.socket_path)
        try:
            await serve(
                create_api(self),
                sock,
                log_level=self.config.daemon.log_level,
                should_exit=server_exit,
            )
        finally:
            closer.cancel()
            await self.notifications.stop()
            follower.cancel()
            lesson_follower.cancel()
            await asyncio.to_thread(self.stop)
            log.info("labmind stopped")

    def _committed(self) -> None:
        self.linking.kick()
        if self.embedding is not None:
            self.embedding.kick()

    def _watch(self, root: str) -> None:
        try:
            self.watcher.add_root(Path(root), self.indexer.rules_for(root))
        except (WatchError, OSError) as exc:
            root_row = self.store.root(root)
            if root_row is not None:
                self.store.set_root_error(root_row.id, str(exc))
            self.events.publish({"type": "alert", "message": str(exc)})

    def _on_batch(self, batch: ChangeBatch) -> None:
        log.debug("watcher: %s", batch)
        for root in batch.root_gone:
            row = self.store.root(str(root))
            if row is not None:
                self.store.set_root_error(row.id, f"folder not found: {root}")
            self.events.publish({"type": "alert", "message": f"watched folder is gone: {root}"})
        rescan = {str(r) for r in batch.rules_changed}
        folders = [f for f in batch.changed_dirs if not any(_inside(str(f), r) for r in rescan)]
        if batch.changed or batch.deleted or batch.deleted_dirs:
            self.indexer.files_changed(batch.changed, batch.deleted, batch.deleted_dirs)
            self.backups.edited([*batch.changed, *batch.deleted, *batch.deleted_dirs])
            self.lessons.files_changed(batch.changed)
        if folders:
            self.indexer.folders_changed(folders)
        if rescan:
            self.indexer.scan(sorted(rescan))

    # -- the API backend ---------------------------------------------------------------------

    def status(self) -> StatusInfo:
        done, total = self.store.embedding_progress()
        home = os.environ.get("LABMIND_HOME") or str(self.paths.data_dir)
        return StatusInfo(
            pid=os.getpid(),
            version=__version__,
            uptime_s=round(time.time() - self.started, 3),
            home=home,
            socket=str(self.paths.socket_path),
            roots=len(self.store.roots()),
            files=self.store.file_count(),
            chunks=self.store.chunk_count(),
            conversations=self.chats.store.count(),
            embedded=done,
            embed_total=total,
            pending_files=self.indexer.progress.pending_files,
            skipped=self.store.skipped_count(),
            indexing=self.indexer.is_busy(),
            embedder_loaded=bool(self.embedder and self.embedder.is_loaded()),
            rss_bytes=psutil.Process().memory_info().rss,
            model=self.config.embedder.model if self.embedder else "",
            indexing_paused=self.indexer.paused,
            held_changes=self.indexer.held_changes(),
        )

    def shutdown(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def watches(self) -> list[WatchRoot]:
        return [self._root_info(root) for root in self.store.roots()]

    def _root_info(self, root: Root) -> WatchRoot:
        return WatchRoot(
            path=root.path,
            added_at=root.added_at,
            files=self.store.file_count(root.id),
            skipped=self.store.skipped_count(root.id),
            error=root.error,
        )

    def watch_add(self, path: str) -> WatchRoot:
        folder = _real(path)
        if not Path(folder).is_dir():
            raise ApiError(400, f"{path} is not a folder")
        if any(_inside(folder, str(p)) for p in (self.paths.data_dir, self.paths.runtime_dir)):
            raise ApiError(400, f"{path} is labmind's own data folder; watch your code instead")
        for root in self.store.roots():
            if _inside(folder, root.path):
                return self._root_info(root)
        for root in self.store.roots():
            if _inside(root.path, folder):
                self.watch_remove(root.path)
        root_row, _ = self.store.add_root(folder)
        self.backups.sync_roots(r.path for r in self.store.roots())
        self._watch(folder)
        self.indexer.scan([folder])
        self.events.publish({"type": "watch", "path": folder, "added": True})
        return self._root_info(root_row)

    def watch_remove(self, path: str) -> bool:
        folder = _real(path)
        root = self.store.root(folder) or self.store.root(path)
        if root is None:
            return False
        self.watcher.remove_root(Path(root.path))
        self.store.remove_root(root.path)
        self.indexer.forget_root(root.path)
        self.backups.sync_roots(r.path for r in self.store.roots())
        self.events.publish({"type": "watch", "path": root.path, "added": False})
        return True

    def index(self, req: IndexRequest) -> IndexJob:
        if self.indexer.paused:
            raise ApiError(409, "indexing is paused; `labmind resume --indexing` starts it again")
        if req.rebuild:
            job = self.indexer.rebuild()
            return IndexJob(job_id=job, roots=[r.path for r in self.store.roots()])
        if self.indexer.lexical is None:
            raise ApiError(409, f"{self.indexer.lexical_error}")
        targets: list[str] = []
        for path in req.paths:
            real = _real(path)
            owner = next((r.path for r in self.store.roots() if _inside(real, r.path)), None)
            if owner is None:
                owner = self.watch_add(real).path
            if owner not in targets:
                targets.append(owner)
        if not req.paths:
            targets = [r.path for r in self.store.roots()]
        job = self.indexer.scan(targets)
        return IndexJob(job_id=job, roots=targets)

    def progress(self) -> IndexProgress:
        p = self.indexer.progress
        done, total = self.store.embedding_progress()
        error = (
            p.last_error
            or (self.embedding.last_error if self.embedding else None)
            or self.linking.last_error
        )
        return IndexProgress(
            jobs_submitted=p.jobs_submitted,
            jobs_done=p.jobs_done,
            scanning=p.scanning,
            pending_files=p.pending_files,
            processed_files=p.processed_files,
            files=self.store.file_count(),
            chunks=self.store.chunk_count(),
            embedded=done,
            embed_total=total,
            embedder_enabled=self.embedding is not None,
            links_pending=self.linking.pending(),
            last_error=error,
            paused=self.indexer.paused,
            held_changes=self.indexer.held_changes(),
        )

    def index_pause(self, paused: bool) -> None:
        """Hold (or resume) indexing and embedding; remembered across restarts."""
        if self.embedding is not None:
            self.embedding.set_paused(paused)
        self.indexer.set_paused(paused)

    def search(self, req: SearchRequest) -> SearchResponse:
        if req.kind == "lesson":
            return self.lessons.search(req)
        try:
            return self.searcher.search(req)
        except SearchUnavailable as exc:
            raise ApiError(409, str(exc)) from exc

    def skipped(self, root: str | None) -> list[SkippedFile]:
        root_id = None
        if root is not None:
            row = self.store.root(_real(root))
            if row is None:
                raise ApiError(404, f"{root} is not watched; see `labmind watch ls`")
            root_id = row.id
        return [
            SkippedFile(path=s.path, reason=s.reason, at=s.at) for s in self.store.skipped(root_id)
        ]

    def import_chats(self, path: str) -> ImportStatus:
        return self.chats.import_chats(path)

    def import_status(self, job_id: int) -> ImportStatus:
        return self.chats.import_status(job_id)

    def chats_list(self, limit: int, offset: int) -> list[ChatSummary]:
        return self.chats.chats(limit, offset)

    def chat(self, chat_id: str) -> ChatDetail:
        return self.chats.chat(chat_id)

    def why(self, path: str, line: int | None) -> WhyResponse:
        return self.chats.why(path, line)

    def backup_status(self) -> BackupStatus:
        return self.backups.status()

    def backup_now(self, path: str | None) -> list[BackupOutcome]:
        return self.backups.now(path)

    def backup_log(self, path: str, branch: str | None, limit: int) -> list[SnapshotEntry]:
        return self.backups.history(path, branch, limit)

    def backup_restore(self, req: RestoreRequest) -> RestoreResult:
        return self.backups.restore(req)

    def backup_pause(self, paused: bool) -> None:
        self.backups.set_paused(paused)

    def exp_submit(self, spec: str) -> SubmitResult:
        return self.experiments.submit(spec)

    def exp_runs(self, sweep: str | None) -> list[RunInfo]:
        return self.experiments.runs(sweep)

    def exp_run(self, run_id: str) -> RunDetail:
        return self.experiments.detail(run_id)

    def exp_log(self, run_id: str, offset: int, tail: int | None = None) -> LogChunk:
        if tail is None:
            return self.experiments.log(run_id, offset)
        run = self.experiments.find(run_id)
        start = tail_start(log_file_size(run.run_dir), tail)
        return from_line_start(self.experiments.log(run_id, start), start)

    def exp_action(self, run_id: str, action: str) -> RunInfo:
        return self.experiments.act(run_id, action)

    def exp_pause(self, paused: bool) -> None:
        self.experiments.set_paused(paused)

    def exp_outliers(self, run_id: str, limit: int | None, reason: str | None) -> RunOutliers:
        return self.outliers.report(run_id, limit=limit, reason=reason)

    def config_view(self) -> ConfigView:
        try:
            config = load_config(self.paths.config_file)
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from exc
        return ConfigView(file=str(self.paths.config_file), values=config_as_dict(config))

    def config_set(self, key: str, value: str) -> ConfigView:
        try:
            set_value(self.paths.config_file, key, value)
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from exc
        self.reload_config()
        return self.config_view()

    def lessons_list(self, include_dismissed: bool) -> list[LessonInfo]:
        return self.lessons.lessons(include_dismissed)

    def lesson_update(self, lesson_id: str, req: LessonUpdate) -> LessonInfo:
        return self.lessons.update(lesson_id, req)

    def suggest(self, req: SuggestRequest) -> Suggestion:
        return self.suggester.suggest(req.task, req.limit)

    def _chat_title(self, conversation_id: str) -> str | None:
        found = self.chats.store.find(conversation_id)
        return None if found is None else found.title

    def reload_config(self) -> None:
        try:
            config = load_config(self.paths.config_file)
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from exc
        self.config = config
        self.searcher.default_mode = config.search.default_mode
        self.indexer.reconfigure(config.index)
        self.chats.reconfigure(config.chats)
        self.backups.reconfigure(config.backup)
        self.notifications.reconfigure(config.notifications)
        self.experiments.queue.slots = config.experiments.slots or default_slots()
        self.experiments.queue.sharing = sharing_policy(config.experiments)
        self.experiments.queue.default_executor = config.experiments.executor
        self.experiments.config = config.experiments
        self.experiments.kick()
        roots = [r.path for r in self.store.roots()]
        if roots:
            self.indexer.scan(roots)


def run_daemon(paths: Paths) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT or `labmind stop`."""
    try:
        config = load_config(paths.config_file)
    except ConfigError as exc:
        print(f"labmind: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.daemon.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        lock = acquire(paths)
    except AlreadyRunning as exc:
        print(f"labmind: {exc}", file=sys.stderr)
        return 1
    except InsecureRuntimeDir as exc:
        print(f"labmind: {exc}", file=sys.stderr)
        return 1
    try:
        daemon = Daemon(paths, config)
    except StoreError as exc:
        lock.release()
        print(f"labmind: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(daemon.run())
    finally:
        lock.release()
    return 0
