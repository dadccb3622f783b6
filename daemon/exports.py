"""Watch the export folder (``~/Downloads`` by default) for chat exports.

Only the entries directly in the folder are considered: files, and folders such as an
unpacked export. An entry is offered to ``on_candidate`` once it has been quiet for
``settle_s`` (a download still being written keeps changing), at start-up for what is
already there, and again whenever it changes. Whether it is an export, and whether it
was imported already, is for the callback to decide: exports are recognised by content.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger("labmind.exports")

SETTLE_S = 2.0
PARTIAL_SUFFIXES = (".crdownload", ".part", ".download", ".tmp", ".partial")
"""Browsers' names for downloads in progress: never offered."""


class ExportFolderWatcher:
    """Offers settled entries of one folder to a callback, on its own thread."""

    def __init__(
        self, folder: Path, on_candidate: Callable[[Path], None], settle_s: float = SETTLE_S
    ) -> None:
        self.folder = folder
        self.on_candidate = on_candidate
        self.settle_s = settle_s
        self._due: dict[Path, float] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Offer what is in the folder now, then watch it (if it exists)."""
        self._thread = threading.Thread(target=self._deliver, name="labmind-exports", daemon=True)
        self._thread.start()
        if not self.folder.is_dir():
            log.info("export folder %s does not exist; not watching it", self.folder)
            return
        observer = Observer()
        handler = _Handler(self)
        try:
            observer.schedule(handler, str(self.folder), recursive=False)
            observer.start()
        except OSError as exc:
            log.warning("cannot watch the export folder %s: %s", self.folder, exc)
            return
        self._observer = observer
        try:
            entries = sorted(self.folder.iterdir())
        except OSError as exc:
            log.warning("cannot list the export folder %s: %s", self.folder, exc)
            return
        for entry in entries:
            self.touch(entry, delay=0.0)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def touch(self, path: Path, delay: float | None = None) -> None:
        """Note activity on ``path``; it is offered once quiet for ``delay`` seconds."""
        entry = self._entry(path)
        if entry is None:
            return
        with self._cond:
            wait = self.settle_s if delay is None else delay
            self._due[entry] = time.monotonic() + wait
            self._cond.notify_all()

    def _entry(self, path: Path) -> Path | None:
        """The entry of the watched folder that ``path`` is or lies in."""
        try:
            relative = path.relative_to(self.folder)
        except ValueError:
            return None
        if not relative.parts:
            return None
        entry = self.folder / relative.parts[0]
        if entry.name.startswith(".") or entry.name.endswith(PARTIAL_SUFFIXES):
            return None
        return entry

    def _deliver(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    ready = [p for p, t in self._due.items() if t <= now]
                    if ready:
                        break
                    wait = min(self._due.values(), default=now + 3600) - now
                    self._cond.wait(wait)
                if self._stopping:
                    return
                for path in ready:
                    del self._due[path]
            for path in ready:
                if not path.exists():
                    continue
                try:
                    self.on_candidate(path)
                except Exception:  # one bad entry must not stop the watcher
                    log.exception("export candidate %s failed", path)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ExportFolderWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write", "deleted"):
            return
        target = getattr(event, "dest_path", "") or event.src_path
        path = Path(target if isinstance(target, str) else target.decode())
        self.watcher.touch(path)
