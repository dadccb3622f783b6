"""Whether a system tray exists, asked only once it can be answered.

On Linux the tray is a StatusNotifierItem, and Qt decides once, on first use, whether
the `org.kde.StatusNotifierWatcher` is there. A tray process started with the session
can come up before the panel, so `StatusNotifierHost` waits for the watcher (up to a
deadline) before the tray icon is created.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, QTimer

WATCHER = "org.kde.StatusNotifierWatcher"
WAIT_MS = 15_000

Ready = Callable[[bool], None]


class TrayHost(Protocol):
    def when_ready(self, ready: Ready) -> None:
        """Call `ready(True)` once a tray can be created, or `ready(False)` if none came."""


class ImmediateHost:
    """A platform whose tray needs no waiting (Windows, macOS), or a test's answer."""

    def __init__(self, available: bool = True) -> None:
        self.available = available

    def when_ready(self, ready: Ready) -> None:
        ready(self.available)


class StatusNotifierHost(QObject):
    """Waits on the session bus for the StatusNotifier watcher, without blocking."""

    def __init__(self, wait_ms: int = WAIT_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._wait_ms = wait_ms
        self._ready: Ready | None = None
        self._watcher: QObject | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(lambda: self._finish(False))

    def when_ready(self, ready: Ready) -> None:
        from PySide6.QtDBus import QDBusConnection, QDBusServiceWatcher

        self._ready = ready
        bus = QDBusConnection.sessionBus()
        if not bus.isConnected():
            self._finish(False)
            return
        interface = bus.interface()
        registered = interface.isServiceRegistered(WATCHER)
        if registered.isValid() and registered.value():
            self._finish(True)
            return
        watcher = QDBusServiceWatcher(
            WATCHER, bus, QDBusServiceWatcher.WatchModeFlag.WatchForRegistration, self
        )
        watcher.serviceRegistered.connect(lambda _name: self._finish(True))
        self._watcher = watcher
        self._timer.start(self._wait_ms)

    def _finish(self, available: bool) -> None:
        ready, self._ready = self._ready, None
        self._timer.stop()
        if ready is not None:
            ready(available)


def default_host() -> TrayHost:
    if sys.platform.startswith("linux"):
        return StatusNotifierHost()
    return ImmediateHost()
