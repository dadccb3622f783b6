"""A fake ``org.freedesktop.portal.Desktop`` with the GlobalShortcuts interface, on a bus.

It answers ``CreateSession`` and ``BindShortcuts`` the way xdg-desktop-portal does (a
request object path as the reply, then a ``Response`` signal on that path, computed from
the caller's unique name and ``handle_token``), records the shortcuts it was asked to
bind and emits ``Activated`` when a test presses one. With ``shortcuts=False`` the
portal is there but has no GlobalShortcuts interface (as on older desktops).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dbus_fast import BusType, Message, MessageType, NameFlag, RequestNameReply, Variant
from dbus_fast.aio import MessageBus

from ..bus_service import BusService

NAME = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
WAIT_S = 10.0


class FakePortal(BusService):
    def __init__(self, address: str, *, shortcuts: bool = True, refuse_bind: bool = False) -> None:
        super().__init__(address)
        self.shortcuts = shortcuts
        self.refuse_bind = refuse_bind
        self.bound: dict[str, dict[str, Any]] = {}
        self.closed_sessions: list[str] = []
        self.session = ""
        self._lock = threading.Lock()

    def activate(self, shortcut_id: str) -> None:
        """Press the shortcut, as the compositor would."""

        def emit() -> None:
            assert self._bus is not None
            self._bus.send(
                Message.new_signal(
                    PATH,
                    SHORTCUTS,
                    "Activated",
                    "osta{sv}",
                    [self.session, shortcut_id, int(time.time() * 1000), {}],
                )
            )

        self._loop.call_soon_threadsafe(emit)

    def wait_closed(self, timeout: float = WAIT_S) -> list[str]:
        deadline = time.monotonic() + timeout
        while not self.closed_sessions and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.closed_sessions)

    async def _serve(self) -> None:
        bus = await MessageBus(bus_address=self.address, bus_type=BusType.SESSION).connect()
        bus.add_message_handler(self._handle)
        reply = await bus.request_name(NAME, NameFlag.DO_NOT_QUEUE)
        if reply != RequestNameReply.PRIMARY_OWNER:
            bus.disconnect()
            raise RuntimeError(f"cannot own {NAME}: {reply}")
        self._bus = bus

    def _handle(self, msg: Message) -> bool | None:
        if msg.message_type != MessageType.METHOD_CALL or self._bus is None:
            return None
        if msg.interface == "org.freedesktop.portal.Session" and msg.member == "Close":
            self.closed_sessions.append(msg.path or "")
            self._bus.send(Message.new_method_return(msg))
            return True
        if msg.path != PATH:
            return None
        if msg.interface == "org.freedesktop.DBus.Properties" and msg.member == "Get":
            if self.shortcuts and msg.body == [SHORTCUTS, "version"]:
                self._bus.send(Message.new_method_return(msg, "v", [Variant("u", 1)]))
            else:
                self._bus.send(
                    Message.new_error(
                        msg, "org.freedesktop.DBus.Error.InvalidArgs", "No such interface"
                    )
                )
            return True
        if msg.interface != SHORTCUTS or not self.shortcuts:
            self._bus.send(Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "no"))
            return True
        if msg.member == "CreateSession":
            options = msg.body[0]
            self.session = f"{PATH}/session/{_sender(msg)}/{options['session_handle_token'].value}"
            self._respond(msg, options, 0, {"session_handle": Variant("s", self.session)})
            return True
        if msg.member == "BindShortcuts":
            session, shortcuts, _parent, options = msg.body
            assert session == self.session
            with self._lock:
                self.bound = {
                    sid: {k: v.value for k, v in props.items()} for sid, props in shortcuts
                }
            bound = [
                [
                    sid,
                    {
                        "description": props["description"],
                        "trigger_description": Variant(
                            "s", f"Press {props['preferred_trigger'].value}"
                        ),
                    },
                ]
                for sid, props in shortcuts
            ]
            code = 1 if self.refuse_bind else 0
            self._respond(msg, options, code, {"shortcuts": Variant("a(sa{sv})", bound)})
            return True
        return None

    def _respond(
        self, msg: Message, options: dict[str, Variant], code: int, results: dict[str, Variant]
    ) -> None:
        assert self._bus is not None
        request = f"{PATH}/request/{_sender(msg)}/{options['handle_token'].value}"
        self._bus.send(Message.new_method_return(msg, "o", [request]))
        self._bus.send(
            Message.new_signal(
                request, "org.freedesktop.portal.Request", "Response", "ua{sv}", [code, results]
            )
        )


def _sender(msg: Message) -> str:
    return (msg.sender or "").removeprefix(":").replace(".", "_")
