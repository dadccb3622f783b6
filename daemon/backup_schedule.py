"""When backups run: APScheduler jobs per backed-up folder, run one at a time.

Each folder has an interval job (its first run soon after start-up), a quiet-period
job that every edit pushes back (so a snapshot follows a burst of saves once it is
over) and, while its remote is unreachable, a retry job at the backoff time. All jobs
call one function with the folder's path and why it runs; a single worker thread runs
them, so two backups never overlap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

STARTUP_DELAY_S = 10.0
"""The first interval run of a folder comes this long after it is scheduled."""

Runner = Callable[[str, str], None]
"""Called with a folder's path and the reason (``interval``, ``quiet``, ``retry``)."""


def _at(seconds_from_now: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds_from_now)


class BackupScheduler:
    """Interval, quiet-period and retry jobs per folder on one background thread."""

    def __init__(self, run: Runner) -> None:
        self._run = run
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop; a backup in progress is finished first."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def schedule(
        self, path: str, interval_s: float, *, first_in_s: float = STARTUP_DELAY_S
    ) -> None:
        """Back up ``path`` every ``interval_s``, the first time in ``first_in_s``."""
        self._scheduler.add_job(
            self._run,
            IntervalTrigger(seconds=interval_s, timezone=UTC),
            args=(path, "interval"),
            id=f"interval:{path}",
            replace_existing=True,
            next_run_time=_at(first_in_s),
        )

    def forget(self, path: str) -> None:
        for kind in ("interval", "quiet", "retry"):
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(f"{kind}:{path}")

    def edited(self, path: str, quiet_s: float) -> None:
        """An edit in ``path``: back it up once ``quiet_s`` pass without another one."""
        self._once(path, "quiet", quiet_s)

    def retry(self, path: str, in_s: float) -> None:
        """Try ``path`` again in ``in_s`` (its remote was unreachable)."""
        self._once(path, "retry", in_s)

    def next_run(self, path: str) -> float | None:
        """When ``path`` is next backed up (any job), as a Unix time."""
        times = [
            job.next_run_time.timestamp()
            for kind in ("interval", "quiet", "retry")
            if (job := self._scheduler.get_job(f"{kind}:{path}")) is not None
            and job.next_run_time is not None
        ]
        return min(times, default=None)

    def _once(self, path: str, kind: str, in_s: float) -> None:
        self._scheduler.add_job(
            self._run,
            DateTrigger(run_date=_at(in_s), timezone=UTC),
            args=(path, kind),
            id=f"{kind}:{path}",
            replace_existing=True,
        )
