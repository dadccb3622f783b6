"""A fake ``org.kde.StatusNotifierWatcher`` (the panel side of the tray protocol) on a
private session bus, and a reader for the menu a StatusNotifierItem exports.

The watcher says a host is registered, so Qt shows its tray icon as a StatusNotifierItem,
and it records every ``RegisterStatusNotifierItem`` call. `read_menu` asks the item for
its ``Menu`` path and reads the whole tree with ``com.canonical.dbusmenu.GetLayout``.

D-Bus reads the signatures from the annotations at class creation, so this module does
not use ``from __future__ import annotations``.
"""

import asyncio
import threading
import time
from typing import Annotated, Any

from dbus_fast import BusType, Message, MessageType, NameFlag, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusInt32, DBusSignature, DBusStr
from dbus_fast.service import (
    ServiceInterface,
    dbus_method,
    dbus_property,
    dbus_signal,
)

from ..bus_service import BusService

WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"
WAIT_S = 10.0

DBusStrings = Annotated[list[str], DBusSignature("as")]


class _Watcher(ServiceInterface):
    def __init__(self, owner: "FakeWatcher") -> None:
        super().__init__(WATCHER)
        self._owner = owner

    @dbus_method()
    def RegisterStatusNotifierItem(self, service: DBusStr) -> None:  # noqa: N802 - D-Bus
        self._owner._register(service)
        self.StatusNotifierItemRegistered(service)

    @dbus_method()
    def RegisterStatusNotifierHost(self, service: DBusStr) -> None:  # noqa: N802
        return None

    @dbus_property(access=PropertyAccess.READ)
    def RegisteredStatusNotifierItems(self) -> DBusStrings:  # noqa: N802
        return list(self._owner.items)

    @dbus_property(access=PropertyAccess.READ)
    def IsStatusNotifierHostRegistered(self) -> DBusBool:  # noqa: N802
        return True

    @dbus_property(access=PropertyAccess.READ)
    def ProtocolVersion(self) -> DBusInt32:  # noqa: N802
        return 0

    @dbus_signal()
    def StatusNotifierItemRegistered(self, service: str) -> DBusStr:  # noqa: N802
        return service


class FakeWatcher(BusService):
    """Owns the watcher name on the bus at ``address`` until closed, from its own thread."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self._items: list[str] = []
        self._lock = threading.Lock()

    @property
    def items(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def _register(self, service: str) -> None:
        with self._lock:
            self._items.append(service)

    def wait_for_item(self, timeout: float = 30.0) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.items:
                return self.items[0]
            time.sleep(0.05)
        return None

    async def _serve(self) -> None:
        bus = await MessageBus(bus_address=self.address, bus_type=BusType.SESSION).connect()
        bus.export(WATCHER_PATH, _Watcher(self))
        await bus.request_name(WATCHER, NameFlag.DO_NOT_QUEUE)
        self._bus = bus


def read_menu(address: str, service: str) -> dict[str, Any]:
    """The item's menu as ``{"label": …, "children": […]}`` (labels without mnemonics)."""
    return asyncio.run(_read_menu(address, service))


async def _call(bus: MessageBus, message: Message) -> list[Any]:
    reply = await bus.call(message)
    assert reply is not None
    if reply.message_type == MessageType.ERROR:
        raise RuntimeError(f"{reply.error_name}: {reply.body}")
    return list(reply.body)


async def _read_menu(address: str, service: str) -> dict[str, Any]:
    bus = await MessageBus(bus_address=address, bus_type=BusType.SESSION).connect()
    try:
        name, _, path = service.partition("/")
        item_path = f"/{path}" if path else "/StatusNotifierItem"
        (menu_path,) = await _call(
            bus,
            Message(
                destination=name,
                path=item_path,
                interface="org.freedesktop.DBus.Properties",
                member="Get",
                signature="ss",
                body=["org.kde.StatusNotifierItem", "Menu"],
            ),
        )
        _revision, layout = await _call(
            bus,
            Message(
                destination=name,
                path=menu_path.value,
                interface="com.canonical.dbusmenu",
                member="GetLayout",
                signature="iias",
                body=[0, -1, []],
            ),
        )
        return _node(layout)
    finally:
        bus.disconnect()


def _node(layout: list[Any]) -> dict[str, Any]:
    _id, props, children = layout
    label = props.get("label")
    text = label.value if isinstance(label, Variant) else ""
    visible = props.get("visible")
    return {
        "label": text.replace("_", "") if isinstance(text, str) else "",
        "enabled": (props.get("enabled") or Variant("b", True)).value,
        "visible": True if visible is None else visible.value,
        "type": (props.get("type") or Variant("s", "standard")).value,
        "children": [_node(child.value) for child in children],
    }
