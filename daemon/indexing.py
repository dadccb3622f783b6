"""The indexing service: one thread that turns files on disk into chunks in the store and Tantivy.

Every batch is written to Tantivy first and committed, then to SQLite. A crash between
the two leaves SQLite without the batch, so the files are indexed again at the next
start and their Tantivy documents replaced (delete by path, then add): the index
converges without duplicates. At start-up the document and chunk counts are compared;
if they differ, Tantivy is rebuilt from the chunks in SQLite.

Imported conversations go through the same thread and the same order; their chunks
carry the path ``chat:<id>`` in Tantivy, so a newer version replaces the old one whole,
and the links of their code blocks to code are written in the same SQLite transaction.
Code chunks of files are fingerprinted and linked behind, by the provenance service.

Indexing can be paused (remembered in the store across restarts): the watcher's changes,
scans and the start-up reconciliation are then held (`held_changes.py`) instead of read,
a scan under way stops after the file in hand, and resuming queues what was held.
Conversations are still written.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labmind.indexers.discovery import iter_files
from labmind.indexers.ignore import IgnoreRules
from labmind.indexers.lexical import AnalyzedDoc, LexicalDoc, LexicalIndex, LexicalIndexError

from .chat_chunks import chat_path
from .chat_store import ChatStore, ConversationUpdate
from .config import IndexConfig
from .events import EventBus
from .held_changes import HeldChanges, Replay
from .preparing import (
    FILES_PER_TASK,
    FileJob,
    Prepared,
    PreparePool,
    default_workers,
    lexical_doc,
    prepare,
)
from .provenance import Linker
from .store import FileState, FileUpdate, Root, Store

log = logging.getLogger("labmind.indexing")

BATCH_FILES = 200
POOL_MIN_FILES = 64
"""Scans of fewer files are prepared in the daemon: a worker pool would cost more."""
PAUSED_KEY = "index.paused"


@dataclass(frozen=True, slots=True)
class _Scan:
    roots: tuple[str, ...]
    job_id: int


@dataclass(frozen=True, slots=True)
class _Rebuild:
    job_id: int


@dataclass(frozen=True, slots=True)
class _Paths:
    """Files changed or deleted under a root, as the watcher reports them."""

    changed: frozenset[Path]
    deleted: frozenset[Path]
    deleted_dirs: frozenset[Path]


@dataclass(frozen=True, slots=True)
class _Folders:
    """Folders that appeared or changed under a root: reconcile just them."""

    folders: frozenset[Path]


@dataclass(frozen=True, slots=True)
class _Chats:
    """Conversations to insert or replace whole."""

    updates: tuple[ConversationUpdate, ...]
    job_id: int


@dataclass(frozen=True, slots=True)
class _Forget:
    root: str


_Task = _Scan | _Rebuild | _Paths | _Folders | _Chats | _Forget | None


@dataclass(slots=True)
class Progress:
    jobs_submitted: int = 0
    jobs_done: int = 0
    scanning: bool = False
    pending_files: int = 0
    processed_files: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _Pending:
    updates: list[FileUpdate] = field(default_factory=list)
    docs: dict[str, Sequence[AnalyzedDoc]] = field(default_factory=dict)
    deletions: list[str] = field(default_factory=list)


class IndexService:
    """Owns the Tantivy writer; all index writes happen on its one thread."""

    def __init__(
        self,
        store: Store,
        lexical: LexicalIndex | None,
        lexical_dir: Path,
        events: EventBus,
        config: IndexConfig,
        *,
        on_committed: Callable[[], None] = lambda: None,
        private_dirs: Iterable[Path] = (),
        linker: Linker | None = None,
    ) -> None:
        self.store = store
        self.chats = ChatStore(store)
        self.linker = linker or Linker()
        self.lexical = lexical
        self.lexical_dir = lexical_dir
        self.events = events
        self.config = config
        self.on_committed = on_committed
        self.progress = Progress()
        self.lexical_error: str | None = None
        self._queue: queue.Queue[_Task] = queue.Queue()
        self._lock = threading.Lock()
        self._job_done = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._rules: dict[str, IgnoreRules] = {}
        self._private = tuple(str(p).rstrip("/") + "/" for p in private_dirs)
        self._job_errors: dict[int, str] = {}
        self.paused = store.get_meta(PAUSED_KEY) == "1"
        self._held = HeldChanges()

    # -- public, any thread -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="labmind-indexer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the batch in hand, commit, and stop the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def scan(self, roots: Iterable[str]) -> int:
        """Reconcile these roots with the disk; returns the job id to wait for."""
        return self._submit(lambda job: _Scan(tuple(roots), job))

    def rebuild(self) -> int:
        return self._submit(_Rebuild)

    def write_chats(self, updates: Iterable[ConversationUpdate]) -> int:
        """Insert or replace these conversations; returns the job id to wait for."""
        batch = tuple(updates)
        return self._submit(lambda job: _Chats(batch, job))

    def job_error(self, job_id: int) -> str | None:
        """Why a finished job failed, or None."""
        with self._lock:
            return self._job_errors.get(job_id)

    def _submit(self, task: Callable[[int], _Scan | _Rebuild | _Chats]) -> int:
        """Queue a job under the next id; ids reach the queue in order, so `wait` is exact."""
        with self._lock:
            self.progress.jobs_submitted += 1
            job = self.progress.jobs_submitted
            self._queue.put(task(job))
            return job

    def files_changed(
        self, changed: Iterable[Path], deleted: Iterable[Path], deleted_dirs: Iterable[Path] = ()
    ) -> None:
        self._queue.put(_Paths(frozenset(changed), frozenset(deleted), frozenset(deleted_dirs)))

    def folders_changed(self, folders: Iterable[Path]) -> None:
        """Folders that appeared (created, moved in) or need a fresh look under a root."""
        self._queue.put(_Folders(frozenset(folders)))

    def wait(self, job_id: int, timeout: float | None = None) -> bool:
        """Block until the job is done; False on timeout."""
        with self._job_done:
            return self._job_done.wait_for(lambda: self.progress.jobs_done >= job_id, timeout)

    def forget_root(self, root: str) -> None:
        with self._lock:
            self._held.forget_root(root)
        self._queue.put(_Forget(root))

    def set_paused(self, paused: bool) -> None:
        """Pause (hold every file change until resumed) or resume, queueing what was held."""
        watched = [r.path for r in self.store.roots()]
        with self._lock:
            self.paused = paused
            replay = Replay() if paused else self._held.take(watched)
        self.store.set_meta(PAUSED_KEY, "1" if paused else "0")
        self._replay(replay)
        self.events.publish({"type": "index_paused", "paused": paused})
        self._publish_progress()

    def held_changes(self) -> int:
        """How many paths and roots wait for indexing to resume."""
        with self._lock:
            return len(self._held)

    def _replay(self, replay: Replay) -> None:
        if replay.roots:
            self.scan(replay.roots)
        if replay.files:
            self.files_changed(replay.files, ())
        if replay.folders:
            self.folders_changed(replay.folders)

    def _defer(
        self, files: Iterable[Path] = (), folders: Iterable[Path] = (), roots: Iterable[str] = ()
    ) -> None:
        """Work stopped by a pause: hold it, or queue it again if indexing resumed meanwhile."""
        replay = Replay(tuple(roots), frozenset(files), frozenset(folders))
        with self._lock:
            if self.paused:
                self._held.add(replay.files, replay.folders, replay.roots)
                return
        self._replay(replay)

    def _hold(self, task: _Task) -> bool:
        """While paused, keep a file task for later instead of doing it; whether it was kept."""
        with self._lock:
            if not self.paused:
                return False
            if isinstance(task, _Scan):
                self._held.add(roots=task.roots)
            elif isinstance(task, _Paths):
                self._held.add(files=task.changed | task.deleted, folders=task.deleted_dirs)
            elif isinstance(task, _Folders):
                self._held.add(folders=task.folders)
            else:
                return False
            return True

    def rules_for(self, root: str) -> IgnoreRules:
        rules = self._rules.get(root)
        if rules is None:
            rules = IgnoreRules(Path(root), self.config.exclude)
            self._rules[root] = rules
        return rules

    def reconfigure(self, config: IndexConfig) -> None:
        """New limits and excludes; the caller rescans so they apply to what is indexed."""
        self.config = config
        self._rules.clear()

    def is_private(self, path: Path) -> bool:
        """labmind's own files (when its data folder lies inside a watched one)."""
        return (str(path) + "/").startswith(self._private) if self._private else False

    def is_busy(self) -> bool:
        return self.progress.scanning or not self._queue.empty()

    # -- the indexing thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                if not self._hold(task):
                    self._handle(task)
            except Exception as exc:  # the thread must outlive any one bad task
                log.exception("indexing task failed")
                self.progress.last_error = f"{type(exc).__name__}: {exc}"
                self.events.publish({"type": "alert", "message": self.progress.last_error})
                if isinstance(task, _Scan | _Rebuild | _Chats):
                    with self._lock:
                        self._job_errors[task.job_id] = self.progress.last_error
            finally:
                if isinstance(task, _Scan | _Rebuild | _Chats):
                    with self._lock:
                        self.progress.jobs_done = max(self.progress.jobs_done, task.job_id)
                        self.progress.scanning = False
                        self.progress.pending_files = 0
                        self._job_done.notify_all()
                    self._publish_progress()

    def _handle(self, task: _Scan | _Rebuild | _Paths | _Folders | _Chats | _Forget) -> None:
        if isinstance(task, _Rebuild):
            self._rebuild()
        elif isinstance(task, _Scan):
            self._scan(task.roots)
        elif isinstance(task, _Paths):
            self._apply_paths(task)
        elif isinstance(task, _Folders):
            self._scan_folders(task.folders)
        elif isinstance(task, _Chats):
            self._write_chats(task.updates)
        else:
            self._forget(task.root)

    def _writer(self) -> LexicalIndex:
        if self.lexical is None:
            raise LexicalIndexError(
                self.lexical_error or "the lexical index is not open; run `labmind index --rebuild`"
            )
        return self.lexical

    def _rebuild(self) -> None:
        """Start over from the files on disk and the stored chats; vectors are kept."""
        if self.lexical is not None:
            self.lexical.close()
        self.lexical = LexicalIndex.destroy_and_create(self.lexical_dir)
        self.lexical_error = None
        self.store.forget_all_files()
        self._rules.clear()
        self._reload_lexical(self.lexical)
        self._scan(tuple(r.path for r in self.store.roots()))

    def _write_chats(self, updates: tuple[ConversationUpdate, ...]) -> None:
        writer = self._writer()
        for up in updates:
            path = chat_path(up.id)
            docs = [
                lexical_doc(chunk, path, up.title, int(m.created or up.updated or 0))
                for m in up.messages
                for chunk in m.chunks
            ]
            writer.replace_file(path, docs)
        writer.commit()
        blocks = list(dict.fromkeys(fp.chunk_id for up in updates for fp in up.fingerprints))
        self.chats.apply(updates, then=lambda tx: self.linker.link_chat(tx, blocks))
        self.events.publish({"type": "chats", "conversations": [up.id for up in updates]})
        self.on_committed()

    def _scan(self, roots: tuple[str, ...]) -> None:
        self.progress.scanning = True
        self._publish_progress()
        for i, path in enumerate(roots):
            if self.paused:
                self._defer(roots=roots[i:])
                return
            root = self.store.root(path)
            if root is not None:
                self._scan_root(root)

    def _scan_folders(self, folders: frozenset[Path]) -> None:
        roots = self.store.roots()
        ordered = sorted(folders)
        for i, folder in enumerate(ordered):
            if self.paused:
                self._defer(folders=ordered[i:])
                return
            root = _owner(roots, folder)
            if root is None or self.is_private(folder):
                continue
            if str(folder) == root.path:
                self._scan_root(root)
            elif not self.rules_for(root.path).is_ignored(folder, is_dir=True):
                prefix = str(folder).rstrip("/") + "/"
                known = self.store.file_states_under(root.id, prefix)
                self._reconcile(root, folder, known)

    def _scan_root(self, root: Root) -> None:
        top = Path(root.path)
        if not top.is_dir():
            self.store.set_root_error(root.id, f"folder not found: {root.path}")
            self.events.publish({"type": "alert", "message": f"watched folder missing: {top}"})
            return
        if root.error:
            self.store.set_root_error(root.id, None)
        self._reconcile(root, top, self.store.file_states(root.id))

    def _reconcile(self, root: Root, top: Path, known: Mapping[str, FileState]) -> None:
        """Index what changed under ``top`` since ``known`` (the stored states there), and
        forget the known files that are gone."""
        rules = self.rules_for(root.path)
        seen: set[str] = set()
        todo: list[Path] = []
        sizes: dict[str, int] = {}

        def skipped(path: Path, reason: str) -> None:
            self.store.record_skip(root.id, str(path), reason)

        paths = iter_files(top, rules, skipped) if top.is_dir() else iter(())
        for path in paths:
            if self.paused:
                if str(top) == root.path:
                    self._defer(roots=[root.path])
                else:
                    self._defer(folders=[top])
                return
            if self.is_private(path):
                continue
            key = str(path)
            seen.add(key)
            state = known.get(key)
            try:
                st = path.stat()
            except OSError:
                continue
            if state is None or state.size != st.st_size or state.mtime_ns != st.st_mtime_ns:
                todo.append(path)
                sizes[key] = st.st_size
        gone = [p for p in known if p not in seen]
        with self._lock:
            self.progress.pending_files += len(todo)
        self._index_files(root, todo, gone, known, sizes)

    def _index_files(
        self,
        root: Root,
        paths: list[Path],
        deletions: list[str],
        known: Mapping[str, FileState] | None = None,
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        limit = int(self.config.max_file_size_mb * 1024 * 1024)
        if known is None:
            states = {str(p): self.store.file_state(str(p)) for p in paths}
            known = {key: state for key, state in states.items() if state is not None}
        jobs = []
        for path in paths:
            key = str(path)
            state = known.get(key)
            sha = state.sha256 if state is not None else None
            size = sizes.get(key, 0) if sizes is not None else 0
            jobs.append(FileJob(root.id, root.path, key, limit, sha, size))
        pending = _Pending(deletions=list(deletions))
        workers = self._workers(len(jobs))
        if workers:
            with PreparePool(workers) as pool:
                pending, taken = self._take_all(root, pool.prepare(jobs), pending, known)
        else:
            pending, taken = self._take_all(root, map(prepare, jobs), pending, known)
        self._commit(pending)
        if taken < len(paths):
            with self._lock:
                left = len(paths) - taken
                self.progress.pending_files = max(0, self.progress.pending_files - left)
            self._defer(files=paths[taken:])

    def _workers(self, files: int) -> int:
        """Worker processes for preparing this many files (0: prepare them here)."""
        if not self.config.parallel_scan or files < POOL_MIN_FILES:
            return 0
        return min(self.config.scan_workers or default_workers(), files // FILES_PER_TASK)

    def _take_all(
        self,
        root: Root,
        results: Iterable[Prepared | None],
        pending: _Pending,
        known: Mapping[str, FileState],
    ) -> tuple[_Pending, int]:
        """Fold prepared files into batches, committing every :data:`BATCH_FILES`; stops
        early when indexing is paused. Returns what is left to commit and how many of
        ``results`` were taken."""
        taken = 0
        for result in results:
            if result is not None:
                self._take(root, result, pending, known)
            taken += 1
            with self._lock:
                self.progress.processed_files += 1
                self.progress.pending_files = max(0, self.progress.pending_files - 1)
            if len(pending.updates) + len(pending.deletions) >= BATCH_FILES:
                self._commit(pending)
                pending = _Pending()
            if self.paused:
                break
        return pending, taken

    def _take(
        self,
        root: Root,
        result: Prepared,
        pending: _Pending,
        known: Mapping[str, FileState],
    ) -> None:
        key = result.path
        if result.skipped is not None:
            self.store.record_skip(root.id, key, result.skipped)
            if key in known:
                pending.deletions.append(key)
            self.events.publish({"type": "skipped", "path": key, "reason": result.skipped})
        elif result.touched is not None:
            self.store.touch_file(key, *result.touched)
        elif result.update is not None:
            pending.updates.append(result.update)
            pending.docs[key] = result.docs

    def _commit(self, pending: _Pending) -> None:
        if not pending.updates and not pending.deletions:
            return
        writer = self._writer()
        for path in pending.deletions:
            writer.delete_file(path)
        for path, docs in pending.docs.items():
            writer.replace_file(path, docs)
        writer.commit()
        self.store.apply(pending.updates, pending.deletions)
        self.events.publish(
            {
                "type": "indexed",
                "files": [u.path for u in pending.updates],
                "deleted": pending.deletions,
            }
        )
        self._publish_progress()
        self.on_committed()

    def _apply_paths(self, task: _Paths) -> None:
        log.debug(
            "changes: %d changed, %d deleted, %d folders deleted",
            len(task.changed),
            len(task.deleted),
            len(task.deleted_dirs),
        )
        roots = self.store.roots()
        by_root: dict[int, tuple[Root, list[Path], list[str]]] = {}

        for path in task.changed:
            root = _owner(roots, path)
            if root is None or self.is_private(path):
                continue
            if self.rules_for(root.path).is_ignored(path, is_dir=False):
                continue
            by_root.setdefault(root.id, (root, [], []))[1].append(path)
        for path in task.deleted:
            root = _owner(roots, path)
            if root is not None:
                by_root.setdefault(root.id, (root, [], []))[2].append(str(path))
        for folder in task.deleted_dirs:
            root = _owner(roots, folder)
            if root is None:
                continue
            prefix = str(folder).rstrip("/") + "/"
            gone = self.store.paths_under(prefix)
            by_root.setdefault(root.id, (root, [], []))[2].extend(gone)
        for root, changed, deleted in by_root.values():
            present = [p for p in changed if p.is_file()]
            missing = [str(p) for p in changed if not p.is_file()]
            gone = self.store.indexed_paths({*deleted, *missing})
            self._index_files(root, present, gone)

    def _forget(self, root: str) -> None:
        writer = self._writer()
        writer.delete_prefix(root)
        writer.commit()
        self._rules.pop(root, None)
        self.on_committed()
        self._publish_progress()

    def check_consistency(self) -> bool:
        """True when Tantivy holds exactly the chunks SQLite has; else rebuild it from SQLite."""
        if self.lexical is None:
            return False
        if self.lexical.doc_count() == self.store.chunk_count():
            return True
        log.warning(
            "lexical index has %d documents for %d chunks: rebuilding it from the store",
            self.lexical.doc_count(),
            self.store.chunk_count(),
        )
        self.lexical.close()
        self.lexical = LexicalIndex.destroy_and_create(self.lexical_dir)
        self._reload_lexical(self.lexical)
        return False

    def _reload_lexical(self, index: LexicalIndex) -> None:
        """Write every stored chunk (files and chats) into an empty lexical index."""
        current: str | None = None
        docs: list[LexicalDoc] = []
        for rec in self.store.iter_chunks():
            if rec.path != current and current is not None:
                index.replace_file(current, docs)
                docs = []
            current = rec.path
            if rec.chat_id is not None:
                relative = rec.chat_title or ""
            else:
                relative = os.path.relpath(rec.path, rec.root)
            docs.append(lexical_doc(rec, rec.path, relative, int(rec.mtime)))
        if current is not None:
            index.replace_file(current, docs)
        index.commit()

    def _publish_progress(self) -> None:
        p = self.progress
        self.events.publish(
            {
                "type": "progress",
                "scanning": p.scanning,
                "pending_files": p.pending_files,
                "processed_files": p.processed_files,
                "jobs_done": p.jobs_done,
                "paused": self.paused,
                "time_ns": time.monotonic_ns(),
            }
        )


def _owner(roots: Iterable[Root], path: Path) -> Root | None:
    """The innermost watched root that holds ``path``."""
    text = str(path)
    best = None
    for root in roots:
        if (text == root.path or text.startswith(root.path.rstrip("/") + "/")) and (
            best is None or len(root.path) > len(best.path)
        ):
            best = root
    return best
