"""`SystemNotifier` against a real private D-Bus session bus and a fake notification server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

import pytest

from labmind.daemon.config import NotificationsConfig
from labmind.daemon.events import EventBus
from labmind.daemon.notifications import NotificationService
from labmind.daemon.notifier import Action, Notification
from labmind.daemon.opener import RecordingOpener
from labmind.daemon.system_notifier import SystemNotifier

from .dbus_notifications import NotificationServer, NotifyCall, SessionBus, have_dbus_daemon
from .notification_fakes import FakeRuns, failed, until

pytestmark = pytest.mark.skipif(not have_dbus_daemon(), reason="needs dbus-daemon (make venv)")


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionBus]:
    with SessionBus() as bus:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
        yield bus


@pytest.fixture
def server(bus: SessionBus) -> Iterator[NotificationServer]:
    with NotificationServer(bus.address) as server:
        yield server


def calls_of(server: NotificationServer, count: int) -> Callable[[], bool]:
    return lambda: len(server.calls) >= count


def test_title_body_urgency_and_buttons_reach_the_notification_server(
    server: NotificationServer,
) -> None:
    notification = Notification(
        title="Run 5eed-3 failed",
        body="missing module: x\n\nModuleNotFoundError: No module named 'x' <module>",
        urgency="critical",
        actions=(Action("open_logs", "Open logs", "5eed-3"), Action("retry", "Retry", "5eed-3")),
        group="run_failed:5eed",
    )

    async def scenario() -> bool:
        notifier = SystemNotifier()
        try:
            return await notifier.send(notification, lambda action: None)
        finally:
            await notifier.close()

    assert asyncio.run(scenario())

    [call] = server.calls
    assert (call.app_name, call.title, call.body) == (
        "labmind",
        notification.title,
        notification.body,
    )
    assert call.actions == {"default": "", "open_logs": "Open logs", "retry": "Retry"}
    assert call.hints["urgency"] == 2


def test_a_pressed_button_reaches_the_daemon(server: NotificationServer) -> None:
    runs = FakeRuns()

    async def scenario() -> list[NotifyCall]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        notifier = SystemNotifier()
        service = NotificationService(
            bus, notifier, runs, RecordingOpener(), NotificationsConfig(min_interval_s=0)
        )
        service.start()
        try:
            bus.publish(failed(3, "missing module: x", "Traceback\nModuleNotFoundError: x"))
            await until(calls_of(server, 1))
            [call] = server.calls
            server.invoke(call.id, "retry")
            await until(lambda: bool(runs.retried))
            return server.calls
        finally:
            await service.stop()

    [call] = asyncio.run(scenario())

    assert call.title == "Run 5eed-3 failed"
    assert call.body == "missing module: x\n\nTraceback\nModuleNotFoundError: x"
    assert runs.retried == ["5eed-3"]


def test_a_summary_replaces_the_notification_it_stands_for(server: NotificationServer) -> None:
    async def scenario() -> None:
        notifier = SystemNotifier()
        try:
            await notifier.send(Notification("Run 1 failed", "x", group="g"), lambda a: None)
            summary = Notification("2 runs failed", "y", group="g", replace=True)
            await notifier.send(summary, lambda a: None)
        finally:
            await notifier.close()

    asyncio.run(scenario())

    first, summary = server.calls
    assert summary.title == "2 runs failed"
    assert server.closed == [first.id]


def test_a_server_with_markup_gets_an_escaped_body(bus: SessionBus) -> None:
    with NotificationServer(bus.address, capabilities=("actions", "body", "body-markup")) as server:

        async def scenario() -> None:
            notifier = SystemNotifier()
            try:
                await notifier.send(Notification("t", "in <module> & more"), lambda a: None)
            finally:
                await notifier.close()

        asyncio.run(scenario())

    [call] = server.calls
    assert call.body == "in &lt;module&gt; &amp; more"


def test_no_notification_service_is_one_log_line_and_it_is_found_when_it_comes(
    bus: SessionBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="labmind.notifications")
    note = Notification("t", "b")

    async def scenario() -> tuple[bool, bool, bool, list[NotifyCall]]:
        notifier = SystemNotifier(retry_after_s=0.2)
        try:
            first = await notifier.send(note, lambda a: None)
            second = await notifier.send(note, lambda a: None)
            with NotificationServer(bus.address) as server:
                deadline = time.monotonic() + 10
                later = False
                while not later and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    later = await notifier.send(note, lambda a: None)
                calls = server.calls
            return first, second, later, calls
        finally:
            await notifier.close()

    first, second, later, calls = asyncio.run(scenario())

    assert (first, second, later) == (False, False, True)
    assert [c.title for c in calls] == ["t"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "no desktop notifications: no org.freedesktop.Notifications service on the D-Bus "
        "session bus (org.freedesktop.DBus.Error.ServiceUnknown)",
        "desktop notifications are available again",
    ]


def test_no_session_bus_is_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    caplog.set_level(logging.INFO, logger="labmind.notifications")

    async def scenario() -> list[bool]:
        notifier = SystemNotifier()
        return [await notifier.send(Notification("t", "b"), lambda a: None) for _ in range(3)]

    assert asyncio.run(scenario()) == [False, False, False]
    assert [r.getMessage() for r in caplog.records] == [
        "no desktop notifications: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)"
    ]
