"""Fakes and helpers shared by the notification tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labmind.daemon.notification_rules import RunRef
from labmind.daemon.notifications import ActionError

SWEEP = "5eed"
SWEEP_NAME = "lr-sweep"


@dataclass
class FakeRuns:
    """Runs ``5eed-<n>`` of sweep ``lr-sweep``; records what the buttons asked for."""

    logs: dict[str, Path] = field(default_factory=dict)
    approved: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    looked_up: list[str] = field(default_factory=list)
    refuse: str | None = None

    def describe(self, run_id: str) -> RunRef | None:
        self.looked_up.append(run_id)
        sweep = run_id.rsplit("-", 1)[0]
        return RunRef(run_id, sweep, SWEEP_NAME if sweep == SWEEP else sweep)

    def approve(self, run_id: str) -> None:
        self._check()
        self.approved.append(run_id)

    def retry(self, run_id: str) -> None:
        self._check()
        self.retried.append(run_id)

    def log_file(self, run_id: str) -> Path | None:
        return self.logs.get(run_id)

    def _check(self) -> None:
        if self.refuse is not None:
            raise ActionError(self.refuse)


def failed(n: int, summary: str = "CUDA out of memory", tail: str = "", sweep: str = SWEEP) -> Any:
    return {
        "type": "experiment",
        "event": "failed",
        "run": f"{sweep}-{n}",
        "summary": summary,
        "log_tail": tail,
    }


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
