"""The notification sink: what a desktop notification is, and where it is shown.

`Notifier` is the seam between the daemon and the desktop: `SystemNotifier` shows
notifications through the operating system (D-Bus on Linux), `MemoryNotifier` keeps them
in a list for tests. A pressed button comes back as the `Action` it was made from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

Urgency = Literal["low", "normal", "critical"]


@dataclass(frozen=True)
class Action:
    """A button on a notification: ``key`` says what it does, ``run`` what it does it to."""

    key: str
    label: str
    run: str | None = None


@dataclass(frozen=True)
class Notification:
    title: str
    body: str
    urgency: Urgency = "normal"
    actions: tuple[Action, ...] = ()
    group: str = ""
    """Notifications of one group are rate-limited together (one sweep's failures, …)."""
    replace: bool = False
    """Take the place of the group's notification still on screen (a summary does)."""


ActionCallback = Callable[[Action], None]
"""Called on the daemon's event loop when the user presses a notification's button."""


class Notifier(Protocol):
    async def connect(self) -> bool:
        """Look for the notification service now; whether it is there (never raises)."""
        ...

    async def send(self, notification: Notification, on_action: ActionCallback) -> bool:
        """Show ``notification``; whether it was delivered (never raises)."""
        ...

    async def close(self) -> None: ...


@dataclass
class Sent:
    notification: Notification
    on_action: ActionCallback


@dataclass
class MemoryNotifier:
    """A `Notifier` that keeps what it is sent; `press` acts as the user would."""

    sent: list[Sent] = field(default_factory=list)
    delivers: bool = True
    closed: bool = False

    async def connect(self) -> bool:
        return self.delivers

    async def send(self, notification: Notification, on_action: ActionCallback) -> bool:
        if self.delivers:
            self.sent.append(Sent(notification, on_action))
        return self.delivers

    async def close(self) -> None:
        self.closed = True

    @property
    def notifications(self) -> list[Notification]:
        return [s.notification for s in self.sent]

    def press(self, index: int, key: str) -> None:
        """Press the button ``key`` of the ``index``-th notification sent."""
        sent = self.sent[index]
        action = next((a for a in sent.notification.actions if a.key == key), None)
        if action is None:
            raise KeyError(f"notification {index} has no action {key!r}")
        sent.on_action(action)
