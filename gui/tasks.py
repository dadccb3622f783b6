"""Calls to the daemon off the GUI thread: a thread pool, with results delivered back on
the GUI thread through a queued signal."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

T = TypeVar("T")

Done = Callable[[Any], None]
Failed = Callable[[Exception], None]


class _Job(QRunnable):
    def __init__(self, runner: TaskRunner, token: int, work: Callable[[], object]) -> None:
        super().__init__()
        self._runner = runner
        self._token = token
        self._work = work

    def run(self) -> None:
        try:
            result = self._work()
        except Exception as exc:
            self._runner.finished.emit(self._token, None, exc)
            return
        self._runner.finished.emit(self._token, result, None)


class TaskRunner(QObject):
    """`submit(work, done, failed)`: `work` runs on a pool thread; `done(result)` or
    `failed(exception)` runs later on the thread that owns the runner (the GUI thread)."""

    finished = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._tokens = itertools.count(1)
        self._pending: dict[int, tuple[Done, Failed | None, QObject | None]] = {}
        self.finished.connect(self._deliver)

    def submit(
        self,
        work: Callable[[], T],
        done: Callable[[T], None],
        failed: Failed | None = None,
        *,
        owner: QObject | None = None,
    ) -> int:
        """Run `work`; the callbacks are skipped if `owner` was deleted meanwhile."""
        token = next(self._tokens)
        self._pending[token] = (done, failed, owner)
        self._pool.start(_Job(self, token, work))
        return token

    def forget(self, token: int) -> None:
        """Drop the callbacks of a call whose answer is no longer wanted."""
        self._pending.pop(token, None)

    def forget_all(self) -> None:
        """Drop every pending callback (the windows they would update are going away)."""
        self._pending.clear()

    @property
    def busy(self) -> int:
        return len(self._pending)

    def wait_idle(self, msecs: int = 5000) -> bool:
        return self._pool.waitForDone(msecs)

    @Slot(int, object, object)
    def _deliver(self, token: int, result: object, error: object) -> None:
        callbacks = self._pending.pop(token, None)
        if callbacks is None:
            return
        done, failed, owner = callbacks
        if owner is not None and not shiboken6.isValid(owner):
            return
        if isinstance(error, Exception):
            if failed is not None:
                failed(error)
            return
        done(result)
