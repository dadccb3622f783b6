"""Desktop notifications from the daemon's events, rate-limited, with actions that act.

`NotificationService` reads the event bus on the daemon's event loop, asks
`notification_rules` what each event should say, lets `Throttle` hold back what would
flood the user (per group: one sweep's failures, one folder's backup alerts), and hands
the result to a `Notifier`. Buttons come back as `Action`s: Approve and Retry take the
same path as ``labmind exp approve|retry RUN``; Open logs hands the run's output log to
the user's opener. With ``notifications.enabled`` off nothing is shown and the
notification service is never contacted; with ``do_not_disturb`` on nothing is shown
and nothing is kept to show later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Protocol

from labmind.trainers.run_dir import OUTPUT_LOG

from .config import NotificationsConfig
from .events import EventBus
from .experiments import ExperimentService
from .notification_rules import (
    APPROVE,
    OPEN_LOGS,
    RETRY,
    Notice,
    RunRef,
    notice_for,
    summarise,
    wants_run,
)
from .notification_throttle import Release, Throttle
from .notifier import Action, Notification, Notifier
from .opener import Opener, OpenError
from .server import ApiError

log = logging.getLogger("labmind.notifications")


class ActionError(Exception):
    """A notification's action could not be done; the message says why, in one line."""


class Runs(Protocol):
    """The experiment runs, as notifications need them."""

    def describe(self, run_id: str) -> RunRef | None: ...
    def approve(self, run_id: str) -> None: ...
    def retry(self, run_id: str) -> None: ...
    def log_file(self, run_id: str) -> Path | None: ...


class ExperimentRuns:
    """`Runs` over the daemon's `ExperimentService` (the code behind ``labmind exp``)."""

    def __init__(self, experiments: ExperimentService) -> None:
        self.experiments = experiments

    def describe(self, run_id: str) -> RunRef | None:
        run = self.experiments.records.run(run_id)
        if run is None:
            return None
        spec = self.experiments.records.sweep_spec(run.sweep_id) or {}
        return RunRef(run.id, run.sweep_id, str(spec.get("name") or run.sweep_id))

    def approve(self, run_id: str) -> None:
        self._act(run_id, "approve")

    def retry(self, run_id: str) -> None:
        self._act(run_id, "retry")

    def log_file(self, run_id: str) -> Path | None:
        try:
            run = self.experiments.find(run_id)
        except ApiError as exc:
            raise ActionError(exc.detail) from exc
        return None if run.run_dir is None else Path(run.run_dir) / OUTPUT_LOG

    def _act(self, run_id: str, action: str) -> None:
        try:
            self.experiments.act(run_id, action)
        except ApiError as exc:
            raise ActionError(exc.detail) from exc


class NotificationService:
    """Events in, notifications out; call `start` on the daemon's event loop."""

    def __init__(
        self,
        events: EventBus,
        notifier: Notifier,
        runs: Runs,
        opener: Opener,
        config: NotificationsConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = events
        self.notifier = notifier
        self.runs = runs
        self.opener = opener
        self.config = config
        self.throttle: Throttle[Notice] = Throttle(
            config.min_interval_s, clock, amount=lambda notice: notice.amount
        )
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._actions: set[asyncio.Task[None]] = set()

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Read events from now on and show summaries when their window closes."""
        self._loop = asyncio.get_running_loop()
        subscription = self.events.subscribe()
        self._spawn(self._listen(subscription), self._tasks)
        self._spawn(self._flush_when_due(), self._tasks)
        if self._showing():
            self._spawn(self._connect(), self._tasks)

    async def stop(self) -> None:
        """Stop reading events; what is held for a summary is dropped."""
        for task in [*self._tasks, *self._actions]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._actions, return_exceptions=True)
        await self.notifier.close()

    def reconfigure(self, config: NotificationsConfig) -> None:
        """Use ``config`` from now on; may be called from any thread."""
        loop = self._loop
        if loop is None or _running_loop() is loop:
            self._reconfigure(config)
        else:
            loop.call_soon_threadsafe(self._reconfigure, config)

    def _reconfigure(self, config: NotificationsConfig) -> None:
        self.config = config
        self.throttle.interval_s = config.min_interval_s
        if not self._showing():
            self.throttle.clear()
        self._wake.set()

    # -- events in ---------------------------------------------------------------------------

    async def handle(self, event: Mapping[str, Any]) -> None:
        """Show ``event`` now, hold it for a summary, or drop it."""
        if not self._showing():
            return
        notice = notice_for(
            event, await self._describe(event), run_succeeded=self.config.run_succeeded
        )
        if notice is None:
            return
        release = self.throttle.offer(notice.group, notice)
        if release is not None:
            await self._show(release)
        else:
            self._wake.set()

    async def flush(self) -> None:
        """Show the summaries whose window has closed."""
        for release in self.throttle.due():
            await self._show(release)

    async def settle(self) -> None:
        """Wait for the actions pressed so far to be done."""
        while self._actions:
            await asyncio.gather(*list(self._actions), return_exceptions=True)

    async def _listen(self, subscription: AsyncGenerator[dict[str, Any], None]) -> None:
        try:
            async for event in subscription:
                try:
                    await self.handle(event)
                except Exception:
                    log.exception("notification for a %s event failed", event.get("type"))
        finally:
            await subscription.aclose()

    async def _connect(self) -> None:
        if await self.notifier.connect():
            log.info("desktop notifications on")

    async def _flush_when_due(self) -> None:
        while True:
            self._wake.clear()
            due = self.throttle.next_due()
            timeout = None if due is None else max(0.0, due - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            await self.flush()

    async def _describe(self, event: Mapping[str, Any]) -> RunRef | None:
        run_id = event.get("run")
        if not wants_run(event, run_succeeded=self.config.run_succeeded):
            return None  # most run events (started, succeeded) show nothing
        if not isinstance(run_id, str):
            return None
        try:
            return await asyncio.to_thread(self.runs.describe, run_id)
        except Exception as exc:
            log.warning("notification: cannot look up run %s: %s", run_id, exc)
            return None

    # -- notifications out -------------------------------------------------------------------

    def _showing(self) -> bool:
        return self.config.enabled and not self.config.do_not_disturb

    async def _show(self, release: Release[Notice]) -> None:
        if not self._showing():
            return
        if release.single:
            notification = release.latest.notification
        else:
            notification = summarise(release.items, release.count, release.total)
        await self.notifier.send(notification, self._on_action)

    # -- actions back ------------------------------------------------------------------------

    def _on_action(self, action: Action) -> None:
        self._spawn(self._perform(action), self._actions)

    async def _perform(self, action: Action) -> None:
        run = action.run
        try:
            if run is None:
                raise ActionError("the notification names no run")
            if action.key == APPROVE:
                await asyncio.to_thread(self.runs.approve, run)
            elif action.key == RETRY:
                await asyncio.to_thread(self.runs.retry, run)
            elif action.key == OPEN_LOGS:
                await asyncio.to_thread(self._open_log, run)
            else:
                raise ActionError(f"unknown action {action.key!r}")
        except (ActionError, OpenError) as exc:
            log.warning("notification action %s for run %s: %s", action.label, run, exc)
            failed = Notification(
                title=f"{action.label} failed" + (f" for run {run}" if run else ""),
                body=str(exc),
                group="action_failed",
            )
            await self.notifier.send(failed, self._on_action)
        else:
            log.info("notification action %s for run %s", action.label, run)

    def _open_log(self, run: str) -> None:
        path = self.runs.log_file(run)
        if path is None or not path.is_file():
            raise ActionError(f"run {run} has no log yet")
        self.opener.open(path)

    def _spawn(self, work: Coroutine[Any, Any, None], into: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        into.add(task)
        task.add_done_callback(into.discard)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
