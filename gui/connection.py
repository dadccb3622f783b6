"""The GUI's link to the daemon: whether it answers, and its event stream.

A background thread follows `/events`; when the daemon goes away it reconnects with
backoff. Everything reaches the GUI thread through queued signals, so the event loop
never waits on the socket.
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Signal, Slot

from labmind.daemon.client import DaemonUnavailable
from labmind.daemon.protocol import Event

from .daemon_api import ApiFactory, DaemonApi

log = logging.getLogger(__name__)

FIRST_RETRY_S = 0.25
MAX_RETRY_S = 5.0
NOT_RUNNING = "daemon not running"


def backoff_delays(first: float = FIRST_RETRY_S, most: float = MAX_RETRY_S) -> list[float]:
    """The waits between reconnection attempts: doubling, then `most` for ever after."""
    delays = [first]
    while delays[-1] * 2 < most:
        delays.append(delays[-1] * 2)
    return [*delays, most]


class DaemonLink(QObject):
    """`connected` when the daemon answers, `disconnected(reason)` when it stops, and each
    stream event as `event_received(Event)`; all emitted on the GUI thread."""

    connected = Signal()
    disconnected = Signal(str)
    event_received = Signal(object)

    _raw_up = Signal()
    _raw_down = Signal(str)
    _raw_event = Signal(object)

    def __init__(self, factory: ApiFactory, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: DaemonApi | None = None
        self._lock = threading.Lock()
        self.online = False
        self.reason = NOT_RUNNING
        self._raw_up.connect(self._on_up)
        self._raw_down.connect(self._on_down)
        self._raw_event.connect(self._on_event)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._follow, name="labmind-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._lock:
            client = self._client
        if client is not None:
            client.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _follow(self) -> None:
        delays = backoff_delays()
        attempt = 0
        was_up: bool | None = None
        while not self._stop.is_set():
            client = self._factory()
            with self._lock:
                self._client = client
            try:
                client.status()
            except Exception as exc:
                self._drop(client)
                if self._stop.is_set():
                    return
                if was_up is not False:
                    reason = NOT_RUNNING if isinstance(exc, DaemonUnavailable) else str(exc)
                    log.info("labmind daemon unavailable: %s", reason)
                    self._raw_down.emit(reason or NOT_RUNNING)
                    was_up = False
                self._stop.wait(delays[min(attempt, len(delays) - 1)])
                attempt += 1
                continue
            attempt = 0
            was_up = True
            self._raw_up.emit()
            try:
                for event in client.events():
                    if self._stop.is_set():
                        break
                    self._raw_event.emit(event)
            except Exception as exc:
                log.debug("event stream ended: %s", exc)
            finally:
                self._drop(client)
            self._stop.wait(FIRST_RETRY_S / 5)

    def _drop(self, client: DaemonApi) -> None:
        with self._lock:
            self._client = None
        client.close()

    @Slot()
    def _on_up(self) -> None:
        self.online = True
        self.reason = ""
        self.connected.emit()

    @Slot(str)
    def _on_down(self, reason: str) -> None:
        self.online = False
        self.reason = reason
        self.disconnected.emit(reason)

    @Slot(object)
    def _on_event(self, event: Event) -> None:
        self.event_received.emit(event)
