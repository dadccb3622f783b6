"""Watch code folders (watchdog) and deliver debounced batches of changed paths.

Events are coalesced per path and handed to ``on_batch`` on one dedicated thread, one
batch at a time, about ``debounce_s`` after the last event and never later than
``max_delay_s`` after the first one still pending. Ignored paths (the root's
`IgnoreRules`) produce nothing; a changed ignore file reloads the rules.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from labmind.indexers.ignore import GITIGNORE, IgnoreRules

logger = logging.getLogger("labmind.watcher")

ROOT_CHECK_S = 1.0
"""How often the delivery thread checks that every watched root is still in place."""

_FILE_EVENTS = frozenset(
    {
        EVENT_TYPE_CREATED,
        EVENT_TYPE_MODIFIED,
        EVENT_TYPE_CLOSED,
        EVENT_TYPE_MOVED,
        EVENT_TYPE_DELETED,
    }
)
_DIR_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_MOVED, EVENT_TYPE_DELETED})


class WatchError(Exception):
    """A folder cannot be watched; the one-line message says what to do."""


@dataclass(frozen=True)
class ChangeBatch:
    """What changed under the watched roots since the previous batch.

    Apply deletions before changes. A folder in ``changed_dirs`` is to be rescanned:
    index what is in it now and forget what no longer is. A folder in
    ``deleted_dirs`` is gone with everything under it. A root in ``rules_changed``
    has new ignore rules (rescan it); a root in ``root_gone`` was deleted or moved
    away and is no longer watched (nothing else is reported under it).
    """

    changed: frozenset[Path] = field(default_factory=frozenset)
    deleted: frozenset[Path] = field(default_factory=frozenset)
    changed_dirs: frozenset[Path] = field(default_factory=frozenset)
    deleted_dirs: frozenset[Path] = field(default_factory=frozenset)
    rules_changed: frozenset[Path] = field(default_factory=frozenset)
    root_gone: frozenset[Path] = field(default_factory=frozenset)


def _watch_error(subject: str, error: OSError) -> WatchError:
    if error.errno == errno.ENOSPC:
        hint = (
            "inotify watch limit reached; raise fs.inotify.max_user_watches "
            "(sudo sysctl fs.inotify.max_user_watches=524288, persist it in /etc/sysctl.d/)"
        )
    elif error.errno == errno.EMFILE:
        hint = (
            "inotify instance limit reached; raise fs.inotify.max_user_instances "
            "(sudo sysctl fs.inotify.max_user_instances=1024, persist it in /etc/sysctl.d/)"
        )
    else:
        hint = error.strerror or str(error)
    return WatchError(f"{subject}: {hint}")


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        stat = folder.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def _as_path(raw: bytes | str) -> Path:
    return Path(os.fsdecode(raw))


@dataclass(eq=False)
class _Root:
    path: Path
    rules: IgnoreRules
    identity: tuple[int, int] | None
    watch: ObservedWatch | None = None
    active: bool = True


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, root: _Root) -> None:
        super().__init__()
        self._watcher = watcher
        self._root = root

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._on_event(self._root, event)
        except Exception:
            logger.exception("could not handle %r", event)


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class Watcher:
    """Recursive watches on a set of roots, delivering `ChangeBatch`es to ``on_batch``."""

    def __init__(
        self,
        on_batch: Callable[[ChangeBatch], None],
        *,
        debounce_s: float = 0.3,
        max_delay_s: float = 2.0,
    ) -> None:
        if debounce_s < 0 or max_delay_s < debounce_s:
            raise ValueError("need 0 <= debounce_s <= max_delay_s")
        self._on_batch = on_batch
        self._debounce_s = debounce_s
        self._max_delay_s = max_delay_s
        # _control serialises start/stop/add/remove and observer calls; _lock guards the
        # pending state and the roots. Observer methods are never called under _lock.
        self._control = threading.RLock()
        self._lock = threading.Condition()
        self._state = _State.NEW
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._roots: dict[Path, _Root] = {}
        self._retired: list[ObservedWatch] = []
        self._pending: dict[tuple[Path, bool], bool] = {}
        self._rules_changed: set[Path] = set()
        self._root_gone: set[Path] = set()
        self._first_at: float | None = None
        self._last_at = 0.0
        self._stopping = False

    # -- public API

    def add_root(self, root: Path, rules: IgnoreRules) -> None:
        """Watch ``root`` recursively with ``rules``; adding a watched root replaces its rules."""
        root = root.absolute()
        if rules.root.absolute() != root:
            raise ValueError(f"rules are for {rules.root}, not {root}")
        if not root.is_dir():
            raise WatchError(f"cannot watch {root}: not a folder")
        with self._control:
            if self._state is _State.STOPPED:
                raise RuntimeError("the watcher is stopped")
            with self._lock:
                known = self._roots.get(root)
                if known is not None:
                    known.rules = rules
                    return
            entry = _Root(root, rules, _identity(root))
            if self._observer is not None:
                entry.watch = self._schedule(self._observer, entry)
            with self._lock:
                if entry.active:
                    self._roots[root] = entry

    def remove_root(self, root: Path) -> None:
        """Stop watching ``root``; nothing more is reported under it."""
        root = root.absolute()
        with self._control:
            with self._lock:
                entry = self._roots.pop(root, None)
                if entry is not None:
                    entry.active = False
                self._forget(root)
            observer = self._observer
            if entry is not None and entry.watch is not None and observer is not None:
                with contextlib.suppress(KeyError):
                    observer.unschedule(entry.watch)

    def roots(self) -> list[Path]:
        """The roots being watched (a root that is gone is no longer listed)."""
        with self._lock:
            return sorted(self._roots)

    def start(self) -> None:
        """Start watching the roots added so far and delivering batches.

        Raises `WatchError` for a root that cannot be watched; the others are watched.
        """
        with self._control:
            if self._state is _State.RUNNING:
                return
            if self._state is _State.STOPPED:
                raise RuntimeError("a stopped watcher cannot be started again")
            with self._lock:
                entries = list(self._roots.values())
            try:
                observer = Observer()
            except OSError as exc:
                raise _watch_error("cannot start the file watcher", exc) from exc
            observer.name = "labmind-watcher-observer"
            observer.start()
            self._observer = observer
            self._state = _State.RUNNING
            errors: list[WatchError] = []
            for entry in entries:
                try:
                    entry.watch = self._schedule(observer, entry)
                except WatchError as exc:
                    errors.append(exc)
                    with self._lock:
                        self._roots.pop(entry.path, None)
            self._thread = threading.Thread(target=self._run, name="labmind-watcher", daemon=True)
            self._thread.start()
            if errors:
                raise WatchError("; ".join(str(e) for e in errors))

    def stop(self) -> None:
        """Stop watching and delivering (pending changes are dropped); joins the threads."""
        with self._control:
            if self._state is _State.STOPPED:
                return
            self._state = _State.STOPPED
            observer, self._observer = self._observer, None
            thread = self._thread
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if observer is not None:
            observer.stop()
            observer.join()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- watchdog thread

    def _schedule(self, observer: BaseObserver, entry: _Root) -> ObservedWatch:
        try:
            return observer.schedule(_Handler(self, entry), str(entry.path), recursive=True)
        except OSError as exc:
            entry.active = False
            raise _watch_error(f"cannot watch {entry.path}", exc) from exc

    def _on_event(self, root: _Root, event: FileSystemEvent) -> None:
        kind = event.event_type
        is_dir = event.is_directory
        if kind not in (_DIR_EVENTS if is_dir else _FILE_EVENTS):
            return
        src = _as_path(event.src_path)
        with self._lock:
            if not root.active:
                return
            if src == root.path:
                if kind == EVENT_TYPE_DELETED:
                    self._mark_gone(root)
                return
            if kind == EVENT_TYPE_MOVED:
                self._record(root, src, is_dir, deleted=True)
                dest = _as_path(event.dest_path)
                target = root if dest.is_relative_to(root.path) else self._root_for(dest)
                if target is not None:
                    self._record(target, dest, is_dir, deleted=False)
            else:
                self._record(root, src, is_dir, deleted=kind == EVENT_TYPE_DELETED)

    def _root_for(self, path: Path) -> _Root | None:
        found = [r for r in self._roots.values() if path.is_relative_to(r.path)]
        return max(found, key=lambda r: len(r.path.parts)) if found else None

    def _record(self, root: _Root, path: Path, is_dir: bool, *, deleted: bool) -> None:
        if path == root.path:
            return
        rules = root.rules
        if (
            not is_dir
            and rules.is_ignore_file(path)
            and not (path.name == GITIGNORE and rules.is_ignored(path.parent, is_dir=True))
        ):
            rules.reload()
            self._rules_changed.add(root.path)
            self._touch()
        if rules.is_ignored(path, is_dir):
            return
        self._touch()
        if self._pending and self._has_pending_dir_above(path, root.path):
            return
        self._pending[(path, is_dir)] = deleted

    def _has_pending_dir_above(self, path: Path, root: Path) -> bool:
        for parent in path.parents:
            if parent == root:
                return False
            if (parent, True) in self._pending:
                return True
        return False

    def _mark_gone(self, root: _Root) -> None:
        root.active = False
        if self._roots.get(root.path) is root:
            del self._roots[root.path]
        if root.watch is not None:
            self._retired.append(root.watch)
        self._forget(root.path)
        self._root_gone.add(root.path)
        self._touch()

    def _forget(self, root: Path) -> None:
        self._pending = {k: v for k, v in self._pending.items() if not k[0].is_relative_to(root)}
        self._rules_changed.discard(root)
        self._root_gone.discard(root)

    def _touch(self) -> None:
        now = time.monotonic()
        self._last_at = now
        if self._first_at is None:
            self._first_at = now
            self._lock.notify_all()

    # -- delivery thread

    def _run(self) -> None:
        next_check = time.monotonic() + ROOT_CHECK_S
        while True:
            with self._lock:
                batch: ChangeBatch | None = None
                while not self._stopping:
                    now = time.monotonic()
                    due = self._due()
                    if due is not None and due <= now:
                        batch = self._take()
                        if batch is None:
                            continue
                        break
                    if now >= next_check:
                        break
                    self._lock.wait(min(next_check, due if due is not None else next_check) - now)
                else:
                    return
            if batch is None:
                self._check_roots()
                next_check = time.monotonic() + ROOT_CHECK_S
                continue
            try:
                self._on_batch(batch)
            except Exception:
                logger.exception("on_batch failed")

    def _due(self) -> float | None:
        if self._first_at is None:
            return None
        return min(self._last_at + self._debounce_s, self._first_at + self._max_delay_s)

    def _take(self) -> ChangeBatch | None:
        pending, self._pending = self._pending, {}
        gone, self._root_gone = frozenset(self._root_gone), set()
        rules_changed, self._rules_changed = frozenset(self._rules_changed - gone), set()
        self._first_at = None
        dirs = {path for path, is_dir in pending if is_dir}
        sorted_out: dict[tuple[bool, bool], set[Path]] = {}
        for (path, is_dir), deleted in pending.items():
            if any(path.is_relative_to(g) for g in gone):
                continue
            if dirs and any(parent in dirs for parent in path.parents):
                continue
            sorted_out.setdefault((is_dir, deleted), set()).add(path)
        batch = ChangeBatch(
            changed=frozenset(sorted_out.get((False, False), ())),
            deleted=frozenset(sorted_out.get((False, True), ())),
            changed_dirs=frozenset(sorted_out.get((True, False), ())),
            deleted_dirs=frozenset(sorted_out.get((True, True), ())),
            rules_changed=rules_changed,
            root_gone=gone,
        )
        return batch if batch != ChangeBatch() else None

    def _check_roots(self) -> None:
        """Report roots whose folder went away or whose watch died; drop their watches."""
        with self._control:
            observer = self._observer
            if observer is None:
                return
            alive = {e.watch for e in list(observer.emitters) if e.is_alive()}
            with self._lock:
                entries = [r for r in self._roots.values() if r.watch is not None]
            moved = {r for r in entries if r.watch not in alive or _identity(r.path) != r.identity}
            with self._lock:
                for entry in moved:
                    if entry.active:
                        self._mark_gone(entry)
                retired, self._retired = self._retired, []
            for watch in retired:
                with contextlib.suppress(KeyError):
                    observer.unschedule(watch)
