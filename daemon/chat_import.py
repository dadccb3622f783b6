"""Importing chat exports: one job at a time, streamed, in batches through the indexer.

A job reads an export as a stream (:func:`labmind.indexers.chats.open_export`), skips
conversations already stored at the same or a newer ``update_time``, and hands batches
to the indexing thread with at most one batch in flight: parsing overlaps writing, and
memory stays bounded by two batches however large the export. Problems in single
conversations or files are collected, one line each, and do not stop the job.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from labmind.indexers.chats import Conversation, ExportError, open_export

from .chat_chunks import conversation_update
from .chat_store import ConversationUpdate, ImportRecord
from .events import EventBus
from .indexing import IndexService

log = logging.getLogger("labmind.chats")

BATCH_CONVERSATIONS = 64
BATCH_CHARS = 4_000_000
"""A batch goes to the indexer at this many conversations or characters of text."""

PROGRESS_EVERY_S = 0.5
MAX_PROBLEMS_KEPT = 200

JobState = Literal["queued", "running", "done", "failed"]


@dataclass(slots=True)
class ImportJob:
    """An import's progress and outcome, as the API reports it."""

    id: int
    path: str
    auto: bool = False
    state: JobState = "queued"
    kind: str | None = None
    bytes_read: int = 0
    total_bytes: int = 0
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    error: str | None = None
    started: float | None = None
    finished: float | None = None

    def snapshot(self) -> ImportJob:
        return replace(self, problems=list(self.problems))


@dataclass(slots=True)
class _Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(slots=True)
class _Run:
    """One job's writing state: the batch in flight and what this job wrote already."""

    job: ImportJob
    in_flight: int | None = None
    counts: _Counts | None = None
    written: dict[str, float | None] = field(default_factory=dict)


def export_signature(path: Path) -> tuple[int, int]:
    """(size, newest mtime) of an export file, or of the conversation files of an export
    folder (at its top or one folder down, where exports keep them)."""
    if path.is_dir():
        files = [*path.glob("conversations*.json"), *path.glob("*/conversations*.json")]
        stats = [p.stat() for p in files if p.is_file()]
        return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class ChatImporter:
    """Runs import jobs on one thread; jobs are kept for the API to report on."""

    def __init__(self, indexer: IndexService, events: EventBus) -> None:
        self.indexer = indexer
        self.chats = indexer.chats
        self.events = events
        self._jobs: dict[int, ImportJob] = {}
        self._queue: queue.Queue[ImportJob | None] = queue.Queue()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._next_id = 0
        self._last_progress = 0.0
        self._stopping = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="labmind-import", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the batch in hand; a stopped import resumes by importing again."""
        if self._thread is None:
            return
        self._stopping.set()
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def submit(self, path: Path, *, auto: bool = False) -> ImportJob:
        with self._lock:
            self._next_id += 1
            job = ImportJob(id=self._next_id, path=str(path), auto=auto)
            self._jobs[job.id] = job
        self._queue.put(job)
        return job.snapshot()

    def job(self, job_id: int) -> ImportJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.snapshot()

    def is_pending(self, path: Path) -> bool:
        """Whether a job for ``path`` is queued or running."""
        with self._lock:
            return any(
                j.path == str(path) and j.state in ("queued", "running")
                for j in self._jobs.values()
            )

    def wait(self, job_id: int, timeout: float | None = None) -> ImportJob | None:
        """Block until the job has finished; the job, or None on timeout or unknown id."""
        with self._done:
            finished = self._done.wait_for(
                lambda: (
                    self._jobs.get(job_id) is None or self._jobs[job_id].state in ("done", "failed")
                ),
                timeout,
            )
            job = self._jobs.get(job_id)
            return job.snapshot() if finished and job is not None else None

    # -- the import thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._stopping.is_set():
                self._finish(job, error=f"{Path(job.path).name}: not imported, the daemon stopped")
                continue
            try:
                self._import(job)
            except Exception as exc:  # the thread must outlive any one bad export
                log.exception("import of %s failed", job.path)
                self._finish(job, error=f"{Path(job.path).name}: {type(exc).__name__}: {exc}")

    def _import(self, job: ImportJob) -> None:
        path = Path(job.path)
        with self._lock:
            job.state = "running"
            job.started = time.time()
        try:
            signature = export_signature(path)
            export = open_export(path)
        except (ExportError, OSError) as exc:
            self._finish(job, error=_one_line(exc))
            return
        with self._lock:
            job.kind = export.kind
            job.total_bytes = export.total_bytes
        self._publish(job, force=True)
        run = _Run(job)
        batch: list[Conversation] = []
        chars = 0
        for conv in export.conversations():
            if self._stopping.is_set():
                if self._settle(run):
                    self._finish(
                        job, error=f"{path.name}: stopped with the daemon; import it again"
                    )
                return
            batch.append(conv)
            chars += sum(len(m.text) for m in conv.messages)
            with self._lock:
                job.seen += 1
                job.bytes_read = export.bytes_read
            if len(batch) >= BATCH_CONVERSATIONS or chars >= BATCH_CHARS:
                if not self._send(run, batch):
                    return
                batch, chars = [], 0
            self._publish(job)
        if (batch and not self._send(run, batch)) or not self._settle(run):
            return
        with self._lock:
            job.bytes_read = export.total_bytes
            for problem in export.problems:
                self._add_problem(job, problem)
        self.chats.record_import(
            ImportRecord(
                path=str(path),
                size=signature[0],
                mtime_ns=signature[1],
                kind=export.kind,
                conversations=job.seen,
                problems=job.problem_count,
                error=None,
                at=time.time(),
            )
        )
        self._finish(job)

    def _send(self, run: _Run, batch: list[Conversation]) -> bool:
        """Queue the new and newer conversations of ``batch`` for the indexer.

        The batch before is still being written meanwhile (one in flight: parsing and
        writing overlap, memory stays at two batches); False if that one failed.
        """
        latest: dict[str, Conversation] = {}
        for conv in batch:
            prior = latest.get(conv.id)
            if prior is None or (conv.updated or 0.0) >= (prior.updated or 0.0):
                latest[conv.id] = conv
        stored = self.chats.versions(latest)
        stored.update({i: run.written[i] for i in latest if i in run.written})
        updates: list[ConversationUpdate] = []
        counts = _Counts(unchanged=len(batch) - len(latest))
        for conv in latest.values():
            if conv.id not in stored:
                counts.added += 1
            elif _newer(conv.updated, stored[conv.id]):
                counts.updated += 1
            else:
                counts.unchanged += 1
                continue
            run.written[conv.id] = conv.updated
            updates.append(conversation_update(conv, run.job.path, self.indexer.linker))
        if not self._settle(run):
            return False
        if updates:
            run.in_flight = self.indexer.write_chats(updates)
        run.counts = counts
        return True

    def _settle(self, run: _Run) -> bool:
        """Wait for the batch in flight and count it; False (and the job failed) if it failed."""
        if run.in_flight is not None:
            self.indexer.wait(run.in_flight)
            error = self.indexer.job_error(run.in_flight)
            run.in_flight = None
            if error is not None:
                self._finish(run.job, error=f"{Path(run.job.path).name}: cannot index: {error}")
                return False
        if run.counts is not None:
            with self._lock:
                run.job.added += run.counts.added
                run.job.updated += run.counts.updated
                run.job.unchanged += run.counts.unchanged
            run.counts = None
        return True

    def _add_problem(self, job: ImportJob, problem: str) -> None:
        job.problem_count += 1
        if len(job.problems) < MAX_PROBLEMS_KEPT:
            job.problems.append(problem)

    def _finish(self, job: ImportJob, *, error: str | None = None) -> None:
        with self._done:
            job.state = "failed" if error else "done"
            job.error = error
            job.finished = time.time()
            self._done.notify_all()
        if error and job.auto:
            log.info("not imported: %s", error)
        elif error:
            self.events.publish({"type": "alert", "message": f"import failed: {error}"})
        else:
            log.info(
                "imported %s: %d new, %d updated, %d unchanged, %d problems",
                job.path,
                job.added,
                job.updated,
                job.unchanged,
                job.problem_count,
            )
            if job.added or job.updated:
                self.events.publish(
                    {
                        "type": "imported",
                        "message": f"imported {job.added} new and {job.updated} updated "
                        f"conversations from {Path(job.path).name}",
                    }
                )
        self._publish(job, force=True)

    def _publish(self, job: ImportJob, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        snap = self.job(job.id)
        if snap is None:
            return
        self.events.publish(
            {
                "type": "import",
                "job_id": snap.id,
                "state": snap.state,
                "path": snap.path,
                "bytes_read": snap.bytes_read,
                "total_bytes": snap.total_bytes,
                "seen": snap.seen,
            }
        )


def _newer(incoming: float | None, stored: float | None) -> bool:
    if incoming is None:
        return False
    return stored is None or incoming > stored


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
