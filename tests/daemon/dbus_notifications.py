"""A private D-Bus session bus and a fake ``org.freedesktop.Notifications`` service on it.

`SessionBus` runs ``dbus-daemon --session`` for one test (nothing else is on it);
`NotificationServer` owns the notification service name on that bus from a thread of
its own, records every ``Notify`` call and emits ``ActionInvoked`` as a notification
server does when the user presses a button.

D-Bus reads the signatures from the annotations at class creation, so this module does
not use ``from __future__ import annotations``.
"""

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

from dbus_fast import BusType, NameFlag, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusDict, DBusInt32, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

from ..bus_service import BusService
from ..processes import stop

BUS_START_S = 10.0
WAIT_S = 10.0
NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


def have_dbus_daemon() -> bool:
    return shutil.which("dbus-daemon") is not None


# A session bus with no service folders: nothing on this machine (dunst, a portal) is
# started on demand, so a test sees exactly the services it starts itself.
_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SessionBus:
    """A private session bus: ``address`` goes into ``DBUS_SESSION_BUS_ADDRESS``."""

    def __init__(self) -> None:
        self.address = ""
        self._process: subprocess.Popen[str] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> "SessionBus":
        self._folder = tempfile.TemporaryDirectory(prefix="lm-bus-")
        config = Path(self._folder.name) / "session.conf"
        config.write_text(_CONFIG)
        self._process = subprocess.Popen(
            [
                "dbus-daemon",
                f"--config-file={config}",
                "--nofork",
                "--nopidfile",
                "--print-address=1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError("dbus-daemon printed no address")
        self.address = line
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        if process is None:
            return
        stop(process, BUS_START_S)
        if process.stdout is not None:
            process.stdout.close()


DBusStrings = Annotated[list[str], DBusSignature("as")]


@dataclass(frozen=True)
class NotifyCall:
    id: int
    app_name: str
    replaces_id: int
    title: str
    body: str
    actions: dict[str, str]
    """Action key → label, as sent (``default`` included when the client asks for it)."""
    hints: dict[str, Any]
    timeout: int


class _Interface(ServiceInterface):
    def __init__(self, server: "NotificationServer") -> None:
        super().__init__(NAME)
        self._server = server

    @dbus_method()
    def Notify(  # noqa: N802 - D-Bus method names
        self,
        app_name: DBusStr,
        replaces_id: DBusUInt32,
        app_icon: DBusStr,
        summary: DBusStr,
        body: DBusStr,
        actions: DBusStrings,
        hints: DBusDict,
        expire_timeout: DBusInt32,
    ) -> DBusUInt32:
        return self._server._notify(
            app_name, replaces_id, summary, body, actions, hints, expire_timeout
        )

    @dbus_method()
    def GetCapabilities(self) -> DBusStrings:  # noqa: N802
        return list(self._server.capabilities)

    @dbus_method()
    def GetServerInformation(  # noqa: N802
        self,
    ) -> Annotated[tuple[str, str, str, str], DBusSignature("ssss")]:
        return ("labmind-test", "labmind", "1.0", "1.2")

    @dbus_method()
    def CloseNotification(self, id: DBusUInt32) -> None:  # noqa: N802
        self._server._closed(id)

    @dbus_signal()
    def ActionInvoked(  # noqa: N802
        self, id: int, key: str
    ) -> Annotated[tuple[int, str], DBusSignature("us")]:
        return (id, key)

    @dbus_signal()
    def NotificationClosed(  # noqa: N802
        self, id: int, reason: int
    ) -> Annotated[tuple[int, int], DBusSignature("uu")]:
        return (id, reason)


class NotificationServer(BusService):
    """Owns ``org.freedesktop.Notifications`` on the bus at ``address`` until closed."""

    def __init__(self, address: str, capabilities: tuple[str, ...] = ("actions", "body")) -> None:
        super().__init__(address)
        self.capabilities = capabilities
        self.closed: list[int] = []
        self._calls: list[NotifyCall] = []
        self._lock = threading.Lock()
        self._next_id = 0
        self._interface = _Interface(self)

    @property
    def calls(self) -> list[NotifyCall]:
        with self._lock:
            return list(self._calls)

    def wait_for(
        self, predicate: Callable[[list[NotifyCall]], bool], timeout: float = WAIT_S
    ) -> list[NotifyCall]:
        """The calls so far, once ``predicate`` holds for them (or the deadline passed)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.calls) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.calls

    def invoke(self, notification_id: int, key: str) -> None:
        """Press the button ``key`` of a notification, as the user would."""

        def emit() -> None:
            self._interface.ActionInvoked(notification_id, key)
            self._interface.NotificationClosed(notification_id, 2)

        self._loop.call_soon_threadsafe(emit)

    async def _serve(self) -> None:
        bus = await MessageBus(bus_address=self.address, bus_type=BusType.SESSION).connect()
        bus.export(PATH, self._interface)
        reply = await bus.request_name(NAME, NameFlag.DO_NOT_QUEUE)
        if reply != RequestNameReply.PRIMARY_OWNER:
            bus.disconnect()
            raise RuntimeError(f"cannot own {NAME}: {reply}")
        self._bus = bus

    def _notify(
        self,
        app_name: str,
        replaces_id: int,
        title: str,
        body: str,
        actions: list[str],
        hints: dict[str, Variant],
        timeout: int,
    ) -> int:
        with self._lock:
            self._next_id += 1
            call = NotifyCall(
                id=self._next_id,
                app_name=app_name,
                replaces_id=replaces_id,
                title=title,
                body=body,
                actions=dict(zip(actions[::2], actions[1::2], strict=True)),
                hints={k: v.value for k, v in hints.items()},
                timeout=timeout,
            )
            self._calls.append(call)
            return call.id

    def _closed(self, notification_id: int) -> None:
        with self._lock:
            self.closed.append(notification_id)
        self._interface.NotificationClosed(notification_id, 3)
