"""Following what the training scripts' ``SampleTracker`` flags, and announcing it.

A thread reads the ``outliers.jsonl`` and ``spikes.jsonl`` of every running attempt every
couple of seconds (and of every attempt that ended since the last look, once more), merges
what is new into the store (`OutlierStore`) and publishes one event per run with news::

    {"type": "outliers", "run": "<run id>", "attempt": 1, "new": 3,
     "reasons": {"label_error": 2, "spike": 1}, "spikes": 1}

``new`` counts samples flagged for the first time in that attempt, ``reasons`` splits them
by reason, ``spikes`` counts new loss spikes. With no run going the thread sleeps: an
experiment event (a run started or ended) wakes it, and so does, rarely, its own timer.
The offsets read are stored with the records, so a restarted daemon announces only what
was written since. `report` answers ``GET /exp/runs/{id}/outliers``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from labmind.trainers.outliers_file import OUTLIERS_FILE, SPIKES_FILE, read_outliers, read_spikes

from .events import EventBus
from .experiment_store import ExperimentStore
from .outlier_store import Added, Attempt, OutlierStore
from .protocol import RunOutliers
from .server import ApiError
from .store import Store

log = logging.getLogger("labmind.outliers")

ACTIVE_TICK_S = 2.0
"""How often the files of running attempts are read."""
IDLE_TICK_S = 60.0
"""With no run going the thread looks this rarely (experiment events wake it sooner)."""
RECENT_S = 3600.0
"""At start-up, attempts that ended this recently are read once more (they may have ended
while the daemon was away)."""
ENDED_SLACK_S = 5.0
READ_BYTES = 4 * 1024 * 1024
"""Bytes read from one file at a time."""
READS_PER_DRAIN = 16
"""Reads of one file per look; a file further behind is caught up over the next looks."""


class Publisher(Protocol):
    def publish(self, event: Mapping[str, Any]) -> None: ...


class RunAttempts(Protocol):
    """Which attempts have folders to read (the experiment records)."""

    def running(self) -> list[Attempt]: ...
    def ended_since(self, when: float) -> list[Attempt]: ...
    def latest(self, run_id: str) -> tuple[str, Attempt | None]:
        """The run's full id and its latest attempt (none before one started); raises
        `ApiError` for an unknown or ambiguous id."""
        ...


class StoreAttempts:
    """`RunAttempts` from the experiment tables of the daemon's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.records = ExperimentStore(store)

    def running(self) -> list[Attempt]:
        return self._attempts(
            "SELECT id, attempt, run_dir FROM runs "
            "WHERE status IN ('starting', 'running') AND run_dir IS NOT NULL",
            (),
        )

    def ended_since(self, when: float) -> list[Attempt]:
        return self._attempts(
            "SELECT id, attempt, run_dir FROM runs WHERE ended_at >= ? "
            "AND status NOT IN ('starting', 'running') AND run_dir IS NOT NULL",
            (when,),
        )

    def _attempts(self, query: str, args: tuple[object, ...]) -> list[Attempt]:
        rows = self.store.reader().execute(query, args)
        return [Attempt(str(i), int(n), str(d)) for i, n, d in rows]

    def latest(self, run_id: str) -> tuple[str, Attempt | None]:
        found = self.records.find(run_id)
        if not found:
            raise ApiError(404, f"no run '{run_id}'; see `labmind exp ls`")
        if len(found) > 1:
            raise ApiError(409, f"'{run_id}' names {len(found)} runs; give more of the id")
        run = found[0]
        if run.run_dir is None:
            return run.id, None
        return run.id, Attempt(run.id, run.attempt, run.run_dir)


class OutlierService:
    """The thread that follows the trackers' files, and the outliers route."""

    def __init__(
        self,
        records: OutlierStore,
        attempts: RunAttempts,
        events: Publisher,
        *,
        interval_s: float = ACTIVE_TICK_S,
        idle_s: float = IDLE_TICK_S,
        read_bytes: int = READ_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records = records
        self.attempts = attempts
        self.events = events
        self.interval_s = interval_s
        self.idle_s = idle_s
        self.read_bytes = read_bytes
        self.clock = clock
        self._checked = clock() - RECENT_S
        self._active = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="labmind-outliers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def kick(self) -> None:
        """Look now (a run started or ended)."""
        self._wake.set()

    async def follow(self, bus: EventBus) -> None:
        """Kick on experiment events of ``bus`` while no run is being followed, until it
        closes (run on its loop). While runs go, the regular looks also catch the attempts
        that ended, so a sweep of short runs costs one look per ``interval_s``, not one per
        event."""
        async for event in bus.subscribe():
            if event.get("type") == "experiment" and not self._active:
                self.kick()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("reading the trackers' files failed")
            self._wake.wait(self.interval_s if self._active else self.idle_s)
            self._wake.clear()

    def tick(self) -> None:
        """Read what is new for every running attempt and every one that ended lately."""
        now = self.clock()
        running = self.attempts.running()
        ended = self.attempts.ended_since(self._checked - ENDED_SLACK_S)
        self._checked = now
        self._active = bool(running)
        for attempt in {a.run_dir: a for a in [*ended, *running]}.values():
            if self._stop.is_set():
                return
            self.drain(attempt)

    def drain(self, attempt: Attempt) -> Added:
        """Merge what the attempt's files hold past the stored offsets; announce news."""
        folder = Path(attempt.run_dir)
        added = Added()
        if not (folder / OUTLIERS_FILE).exists() and not (folder / SPIKES_FILE).exists():
            return added  # no tracker wrote anything (most runs): nothing to look up
        with self._lock:
            outliers_at, spikes_at = self.records.offsets(attempt.run_dir)
            for _ in range(READS_PER_DRAIN):
                outliers, outliers_next = read_outliers(
                    folder / OUTLIERS_FILE, outliers_at, max_bytes=self.read_bytes
                )
                spikes, spikes_next = read_spikes(
                    folder / SPIKES_FILE, spikes_at, max_bytes=self.read_bytes
                )
                if (outliers_next, spikes_next) == (outliers_at, spikes_at):
                    break
                added.merge(self.records.add(attempt, outliers, outliers_next, spikes, spikes_next))
                outliers_at, spikes_at = outliers_next, spikes_next
        if added:
            self.events.publish(
                {
                    "type": "outliers",
                    "run": attempt.run_id,
                    "attempt": attempt.attempt,
                    "new": added.samples,
                    "reasons": dict(added.reasons.most_common()),
                    "spikes": added.spikes,
                }
            )
        return added

    def report(self, run_id: str, *, limit: int | None, reason: str | None) -> RunOutliers:
        """The flagged samples and spikes of the run's latest attempt, read up to now."""
        full_id, attempt = self.attempts.latest(run_id)
        if attempt is None:
            return RunOutliers(
                run=full_id,
                attempt=0,
                run_dir=None,
                flagged=0,
                reasons={},
                samples=[],
                spike_count=0,
                spikes=[],
            )
        self.drain(attempt)
        flagged, reasons = self.records.counts(attempt.run_dir)
        spikes, spike_count = self.records.spikes(attempt.run_dir, limit=limit)
        return RunOutliers(
            run=full_id,
            attempt=attempt.attempt,
            run_dir=attempt.run_dir,
            flagged=flagged,
            reasons=reasons,
            samples=self.records.samples(attempt.run_dir, reason=reason, limit=limit),
            spike_count=spike_count,
            spikes=spikes,
        )
