"""The experiment queue in the store: sweeps, their runs, and every attempt of a run.

A run's ``status`` is one of ``queued``, ``starting`` (an attempt's folder is made and
its wrapper is being launched: after a crash the folder tells whether it was),
``running``, ``succeeded``, ``failed``, ``cancelled``, ``needs_approval``. Each attempt
keeps the parameters and command it ran and the change that led to it, so a run's
lineage reads top to bottom.

Each write is a transaction of its own, unless it is made inside :meth:`ExperimentStore.batch`
on the same thread: then everything written there commits together (the queue records a
tick's ends, starts and launches so), and reads on that thread see it before the commit.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .store import Store

ACTIVE = ("starting", "running")
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    sweep_id: str
    idx: int
    name: str
    status: str
    priority: int
    params: dict[str, Any]
    command: str
    attempt: int
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    signal: int | None
    failure: str | None
    summary: str | None
    run_dir: str | None
    pid: int | None
    pgid: int | None
    start_time: float | None
    gpus: list[str]
    """UUIDs of the GPUs the current attempt runs on (none for a CPU run)."""
    proposal: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    attempt: int
    params: dict[str, Any]
    command: str
    change: str | None
    gpus: list[str]
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    signal: int | None
    failure: str | None
    summary: str | None


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    idx: int
    name: str
    params: dict[str, Any]
    command: str


@dataclass(frozen=True, slots=True)
class NextAttempt:
    """The parameters and command of a run's next attempt, and what changed."""

    params: dict[str, Any]
    command: str
    change: str


def _queue_next(tx: sqlite3.Connection, run_id: str, attempt: int, then: NextAttempt) -> None:
    tx.execute(
        "UPDATE runs SET status='queued', params=?, command=?, proposal=NULL WHERE id=?",
        (json.dumps(then.params), then.command, run_id),
    )
    tx.execute(
        "INSERT OR REPLACE INTO attempts(run_id, attempt, params, command, change) "
        "VALUES (?, ?, ?, ?, ?)",
        (run_id, attempt, json.dumps(then.params), then.command, then.change),
    )


_RUN_SELECT = (
    "SELECT id, sweep_id, idx, name, status, priority, params, command, attempt, "
    "submitted_at, started_at, ended_at, exit_code, signal, failure, summary, run_dir, "
    "pid, pgid, start_time, gpus, proposal FROM runs"
)
_ATTEMPT_SELECT = (
    "SELECT attempt, params, command, change, gpus, started_at, ended_at, exit_code, signal, "
    "failure, summary FROM attempts"
)


def _run(row: tuple[Any, ...]) -> RunRow:
    values = list(row)
    values[6] = json.loads(values[6])
    values[20] = json.loads(values[20] or "[]")
    values[21] = None if values[21] is None else json.loads(values[21])
    return RunRow(*values)


def _attempt(row: tuple[Any, ...]) -> AttemptRow:
    values = list(row)
    values[1] = json.loads(values[1])
    values[4] = json.loads(values[4] or "[]")
    return AttemptRow(*values)


class ExperimentStore:
    """Sweeps, runs and attempts on the daemon's `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._specs: dict[str, dict[str, Any]] = {}
        self._local = threading.local()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every write this thread makes inside (nested: the outer one)."""
        with self._write() as tx:
            outer = getattr(self._local, "tx", None)
            self._local.tx = tx
            try:
                yield
            finally:
                self._local.tx = outer

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        tx: sqlite3.Connection | None = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx
            return
        with self.store.transaction() as tx:
            yield tx

    def add_sweep(
        self,
        sweep_id: str,
        *,
        name: str,
        spec_path: str,
        spec: dict[str, Any],
        priority: int,
        at: float,
        code_commit: str | None,
        runs: Sequence[NewRun],
    ) -> None:
        with self._write() as tx:
            tx.execute(
                "INSERT INTO sweeps(id, name, spec_path, spec, submitted_at, code_commit) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sweep_id, name, spec_path, json.dumps(spec), at, code_commit),
            )
            tx.executemany(
                "INSERT INTO runs(id, sweep_id, idx, name, status, priority, params, command, "
                "submitted_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                [
                    (r.id, sweep_id, r.idx, r.name, priority, json.dumps(r.params), r.command, at)
                    for r in runs
                ],
            )

    def sweep_spec(self, sweep_id: str) -> dict[str, Any] | None:
        """What the queue keeps of a sweep's spec (read once: a sweep never changes)."""
        spec = self._specs.get(sweep_id)
        if spec is None:
            row = (
                self.store.reader()
                .execute("SELECT spec FROM sweeps WHERE id=?", (sweep_id,))
                .fetchone()
            )
            if row is None:
                return None
            spec = self._specs[sweep_id] = dict(json.loads(row[0]))
        return spec

    def sweep_code(self, sweep_id: str) -> str | None:
        """The commit holding the code the sweep was submitted with."""
        row = (
            self.store.reader()
            .execute("SELECT code_commit FROM sweeps WHERE id=?", (sweep_id,))
            .fetchone()
        )
        return None if row is None or row[0] is None else str(row[0])

    def runs(self, *, statuses: Sequence[str] = (), sweep_id: str | None = None) -> list[RunRow]:
        clauses: list[str] = []
        args: list[object] = []
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if sweep_id is not None:
            clauses.append("sweep_id=?")
            args.append(sweep_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.store.reader().execute(
            f"{_RUN_SELECT}{where} ORDER BY submitted_at, sweep_id, idx", args
        )
        return [_run(tuple(r)) for r in rows]

    def queued(self) -> Iterator[RunRow]:
        """Queued runs in the order they should start: priority, then first come (read as
        the caller goes, so stopping early costs nothing for the runs behind)."""
        rows = self.store.reader().execute(
            f"{_RUN_SELECT} WHERE status='queued' ORDER BY priority DESC, submitted_at, idx"
        )
        return (_run(tuple(r)) for r in rows)

    def queued_sweeps(self) -> list[str]:
        """The sweeps that have queued runs."""
        rows = self.store.reader().execute(
            "SELECT DISTINCT sweep_id FROM runs WHERE status='queued'"
        )
        return [str(r[0]) for r in rows]

    def sweep_pending(self, sweep_id: str) -> bool:
        """Whether any run of the sweep has not ended (read through the queue's index)."""
        row = (
            self.store.reader()
            .execute(
                "SELECT 1 FROM runs WHERE status IN "
                "('queued', 'starting', 'running', 'needs_approval') AND sweep_id=? LIMIT 1",
                (sweep_id,),
            )
            .fetchone()
        )
        return row is not None

    def sweep_counts(self, sweep_id: str) -> dict[str, int]:
        """How many of the sweep's runs are in each status."""
        rows = self.store.reader().execute(
            "SELECT status, count(*) FROM runs WHERE sweep_id=? GROUP BY status", (sweep_id,)
        )
        return {str(status): int(count) for status, count in rows}

    def run(self, run_id: str) -> RunRow | None:
        row = self.store.reader().execute(f"{_RUN_SELECT} WHERE id=?", (run_id,)).fetchone()
        return None if row is None else _run(tuple(row))

    def find(self, prefix: str) -> list[RunRow]:
        """Runs whose id starts with ``prefix`` (an exact id first)."""
        exact = self.run(prefix)
        if exact is not None:
            return [exact]
        rows = self.store.reader().execute(
            f"{_RUN_SELECT} WHERE id >= ? AND id < ? ORDER BY id", (prefix, prefix + "\uffff")
        )
        return [_run(tuple(r)) for r in rows]

    def sweep_names_done(self, names: Sequence[str]) -> bool:
        """Whether every run of every sweep named so has succeeded (and there is one)."""
        reader = self.store.reader()
        for name in names:
            row = reader.execute(
                "SELECT count(*), sum(r.status='succeeded') FROM runs r "
                "JOIN sweeps s ON s.id = r.sweep_id WHERE s.name=?",
                (name,),
            ).fetchone()
            if not row[0] or row[0] != row[1]:
                return False
        return True

    def start_attempt(
        self, run_id: str, attempt: int, run_dir: str, *, gpus: Sequence[str], at: float
    ) -> None:
        """Record that ``attempt`` is about to be launched in ``run_dir`` on ``gpus``."""
        devices = json.dumps(list(gpus))
        with self._write() as tx:
            tx.execute(
                "UPDATE runs SET status='starting', attempt=?, run_dir=?, started_at=?, gpus=?, "
                "ended_at=NULL, exit_code=NULL, signal=NULL, failure=NULL, summary=NULL, "
                "pid=NULL, pgid=NULL, start_time=NULL WHERE id=?",
                (attempt, run_dir, at, devices, run_id),
            )
            # A retry's attempt row exists already (with the parameters it changed).
            tx.execute(
                "INSERT INTO attempts(run_id, attempt, params, command, gpus, started_at) "
                "SELECT id, ?, params, command, ?, ? FROM runs WHERE id=? "
                "ON CONFLICT(run_id, attempt) DO UPDATE SET "
                "started_at=excluded.started_at, gpus=excluded.gpus",
                (attempt, devices, at, run_id),
            )

    def running(
        self,
        run_id: str,
        *,
        pid: int,
        pgid: int | None,
        start_time: float,
        started_at: float | None = None,
    ) -> None:
        """The attempt's command runs; ``started_at`` corrects when it started (an attempt
        lined up behind another starts later than it was recorded as starting)."""
        with self._write() as tx:
            tx.execute(
                "UPDATE runs SET status='running', pid=?, pgid=?, start_time=?, "
                "started_at=coalesce(?, started_at) WHERE id=?",
                (pid, pgid, start_time, started_at, run_id),
            )
            if started_at is not None:
                tx.execute(
                    "UPDATE attempts SET started_at=? WHERE run_id=? AND attempt="
                    "(SELECT attempt FROM runs WHERE id=?)",
                    (started_at, run_id, run_id),
                )

    def finish_attempt(
        self,
        run_id: str,
        *,
        status: str,
        exit_code: int | None,
        signal: int | None,
        failure: str | None,
        summary: str | None,
        at: float,
        then: NextAttempt | None = None,
    ) -> None:
        """Record how the current attempt ended and, with ``then``, queue the next one in
        the same transaction (a daemon that dies in between loses neither)."""
        with self._write() as tx:
            attempt = tx.execute("SELECT attempt FROM runs WHERE id=?", (run_id,)).fetchone()[0]
            tx.execute(
                "UPDATE runs SET status=?, ended_at=?, exit_code=?, signal=?, failure=?, "
                "summary=?, pid=NULL WHERE id=?",
                (status, at, exit_code, signal, failure, summary, run_id),
            )
            tx.execute(
                "UPDATE attempts SET ended_at=?, exit_code=?, signal=?, failure=?, summary=? "
                "WHERE run_id=? AND attempt=?",
                (at, exit_code, signal, failure, summary, run_id, attempt),
            )
            if then is not None:
                _queue_next(tx, run_id, attempt + 1, then)

    def retry(self, run_id: str, then: NextAttempt, *, attempt: int) -> None:
        """Queue ``attempt`` of a finished run; ``then`` says with what and why."""
        with self._write() as tx:
            _queue_next(tx, run_id, attempt, then)

    def retry_if_waiting(self, run_id: str, then: NextAttempt, *, attempt: int) -> bool:
        """Queue ``attempt`` if the run still waits for advice on the attempt before it."""
        with self._write() as tx:
            row = tx.execute(
                "SELECT status, attempt, proposal FROM runs WHERE id=?", (run_id,)
            ).fetchone()
            if row is None or (row[0], row[1], row[2]) != ("needs_approval", attempt - 1, None):
                return False
            _queue_next(tx, run_id, attempt, then)
            return True

    def propose_if_waiting(self, run_id: str, proposal: dict[str, Any], *, attempt: int) -> bool:
        """File ``proposal`` for a run waiting for advice, unless someone acted meanwhile."""
        with self._write() as tx:
            cursor = tx.execute(
                "UPDATE runs SET proposal=? WHERE id=? AND status='needs_approval' "
                "AND proposal IS NULL AND attempt=?",
                (json.dumps(proposal), run_id, attempt),
            )
            return cursor.rowcount == 1

    def give_up_waiting(self, run_id: str, summary: str) -> bool:
        """A run whose advice will not come is failed, with ``summary`` saying why."""
        with self._write() as tx:
            cursor = tx.execute(
                "UPDATE runs SET status='failed', summary=? "
                "WHERE id=? AND status='needs_approval' AND proposal IS NULL",
                (summary, run_id),
            )
            return cursor.rowcount == 1

    def requeue(self, run_id: str) -> None:
        """Put back a run whose attempt never started (its number is used again)."""
        with self._write() as tx:
            tx.execute(
                "UPDATE runs SET status='queued', attempt=attempt-1, run_dir=NULL, "
                "started_at=NULL WHERE id=? AND status='starting'",
                (run_id,),
            )

    def set_status(
        self, run_id: str, status: str, *, proposal: dict[str, Any] | None = None
    ) -> None:
        with self._write() as tx:
            tx.execute(
                "UPDATE runs SET status=?, proposal=? WHERE id=?",
                (status, None if proposal is None else json.dumps(proposal), run_id),
            )

    def attempts(self, run_id: str) -> list[AttemptRow]:
        rows = self.store.reader().execute(
            f"{_ATTEMPT_SELECT} WHERE run_id=? ORDER BY attempt", (run_id,)
        )
        return [_attempt(tuple(r)) for r in rows]
