"""`Notifier` over the desktop's notification service, through desktop-notifier.

On Linux that is ``org.freedesktop.Notifications`` on the D-Bus session bus
(``DBUS_SESSION_BUS_ADDRESS``); buttons come back as ``ActionInvoked`` signals on the
daemon's event loop. At start-up (and before a notification, at most every
``retry_after_s`` while it is missing) the session bus is asked whether a notification
service is there: a headless machine, a daemon started outside a desktop session or a
desktop without a notification server gets one log line and no notifications, and the
daemon goes on. desktop-notifier is imported on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .notifier import Action, ActionCallback, Notification

if TYPE_CHECKING:
    import desktop_notifier

log = logging.getLogger("labmind.notifications")

SERVICE: Final = "org.freedesktop.Notifications"
SERVICE_PATH: Final = "/org/freedesktop/Notifications"
PROBE_TIMEOUT_S: Final = 5.0
RETRY_AFTER_S: Final = 300.0
ON_SCREEN_KEPT: Final = 256
"""Groups whose latest notification is remembered, so that a summary can replace it."""


class NotificationServiceMissing(Exception):
    """No notification service answers; the message says where it was looked for."""


class SystemNotifier:
    """Desktop notifications for ``app_name``; create and use on the daemon's event loop."""

    def __init__(
        self,
        app_name: str = "labmind",
        *,
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app_name = app_name
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._notifier: desktop_notifier.DesktopNotifier | None = None
        self._markup = False
        self._missing_since: float | None = None
        self._warned = False
        self._on_screen: dict[str, str] = {}
        self._connecting = asyncio.Lock()

    async def connect(self) -> bool:
        return await self._connected() is not None

    async def send(self, notification: Notification, on_action: ActionCallback) -> bool:
        notifier = await self._connected()
        if notifier is None:
            return False
        from desktop_notifier import Button
        from desktop_notifier import Notification as Native

        delivered: list[bool] = []
        native = Native(
            title=notification.title,
            message=html.escape(notification.body, quote=False)
            if self._markup
            else notification.body,
            urgency=_urgency(notification.urgency),
            buttons=tuple(
                Button(title=a.label, identifier=a.key, on_pressed=_pressed(on_action, a))
                for a in notification.actions
            ),
            on_dispatched=lambda: delivered.append(True),
            thread=notification.group or None,
        )
        shown = self._on_screen.get(notification.group) if notification.group else None
        if notification.replace and shown is not None:
            with contextlib.suppress(Exception):
                await notifier.clear(shown)
        await notifier.send_notification(native)
        if not delivered:
            self._lost(notifier, "the notification service did not take the notification")
            return False
        if notification.group:
            self._on_screen.pop(notification.group, None)
            self._on_screen[notification.group] = native.identifier
            while len(self._on_screen) > ON_SCREEN_KEPT:
                del self._on_screen[next(iter(self._on_screen))]
        return True

    async def close(self) -> None:
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            _disconnect(notifier)

    async def _connected(self) -> desktop_notifier.DesktopNotifier | None:
        async with self._connecting:
            return await self._connect()

    async def _connect(self) -> desktop_notifier.DesktopNotifier | None:
        if self._notifier is not None:
            return self._notifier
        now = self._clock()
        if self._missing_since is not None and now - self._missing_since < self.retry_after_s:
            return None
        try:
            capabilities = await asyncio.wait_for(_probe(), PROBE_TIMEOUT_S)
        except (NotificationServiceMissing, TimeoutError) as exc:
            reason = str(exc) or "the D-Bus session bus did not answer in time"
            self._missing(reason)
            return None
        from desktop_notifier import DesktopNotifier

        self._markup = "body-markup" in capabilities
        self._notifier = DesktopNotifier(app_name=self.app_name, app_icon=None)
        if self._warned:
            log.info("desktop notifications are available again")
        self._missing_since = None
        self._warned = False
        return self._notifier

    def _missing(self, reason: str) -> None:
        self._missing_since = self._clock()
        if not self._warned:
            log.warning("no desktop notifications: %s", reason)
            self._warned = True

    def _lost(self, notifier: desktop_notifier.DesktopNotifier, reason: str) -> None:
        if self._notifier is notifier:
            self._notifier = None
        _disconnect(notifier)
        self._on_screen.clear()
        self._missing(reason)


def _pressed(on_action: ActionCallback, action: Action) -> Callable[[], None]:
    return lambda: on_action(action)


def _urgency(urgency: str) -> desktop_notifier.Urgency:
    from desktop_notifier import Urgency

    return {"low": Urgency.Low, "critical": Urgency.Critical}.get(urgency, Urgency.Normal)


def _disconnect(notifier: desktop_notifier.DesktopNotifier) -> None:
    """Close the notifier's bus connection (desktop-notifier keeps it for its lifetime)."""
    bus: Any = getattr(getattr(notifier, "_backend", None), "bus", None)
    if bus is not None:
        with contextlib.suppress(Exception):
            bus.disconnect()


async def _probe() -> frozenset[str]:
    """The notification service's capabilities; raises `NotificationServiceMissing`."""
    if not sys.platform.startswith("linux"):
        return frozenset()
    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus
    from dbus_fast.errors import DBusError, InvalidAddressError

    try:
        bus = await MessageBus(bus_type=BusType.SESSION).connect()
    except (InvalidAddressError, KeyError):
        raise NotificationServiceMissing(
            "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)"
        ) from None
    except (OSError, DBusError, ValueError) as exc:
        raise NotificationServiceMissing(
            f"cannot connect to the D-Bus session bus: {exc}"
        ) from None
    try:
        reply = await bus.call(
            Message(
                destination=SERVICE,
                path=SERVICE_PATH,
                interface=SERVICE,
                member="GetCapabilities",
            )
        )
    except (OSError, DBusError, EOFError) as exc:
        raise NotificationServiceMissing(f"the D-Bus session bus went away: {exc}") from None
    finally:
        bus.disconnect()
    if reply is None or reply.message_type != MessageType.METHOD_RETURN:
        error = "" if reply is None else f" ({reply.error_name})"
        raise NotificationServiceMissing(f"no {SERVICE} service on the D-Bus session bus{error}")
    return frozenset(str(c) for c in reply.body[0])
