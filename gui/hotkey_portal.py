"""The global hotkey through the ``org.freedesktop.portal.GlobalShortcuts`` portal (Wayland).

`start` asks the portal for its interface version (no portal, or no GlobalShortcuts in it:
`HotkeyUnavailable`), creates a session (``CreateSession``) and then asks to bind the
chord (``BindShortcuts``). The desktop may show the user a dialog for the binding, so
`start` does not wait for it; `wait_bound` does. ``Activated`` signals for the session's
shortcut call the callback. All D-Bus work runs on an event loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final

from .hotkey import UNIVERSAL, HotkeyCallback, HotkeyUnavailable

if TYPE_CHECKING:
    from dbus_fast import Message
    from dbus_fast.aio import MessageBus

log = logging.getLogger("labmind.gui.hotkey")

PORTAL: Final = "org.freedesktop.portal.Desktop"
PORTAL_PATH: Final = "/org/freedesktop/portal/desktop"
SHORTCUTS: Final = "org.freedesktop.portal.GlobalShortcuts"
REQUEST: Final = "org.freedesktop.portal.Request"
SESSION: Final = "org.freedesktop.portal.Session"
SHORTCUT_ID: Final = "labmind-search"
DESCRIPTION: Final = "Show the labmind search"
TIMEOUT_S: Final = 10.0

_MODIFIERS: Final = {"<ctrl>": "CTRL", "<alt>": "ALT", "<shift>": "SHIFT", "<cmd>": "LOGO"}
_KEYS: Final = {
    "space": "space",
    "tab": "Tab",
    "enter": "Return",
    "esc": "Escape",
    "backspace": "BackSpace",
    "insert": "Insert",
    "delete": "Delete",
    "home": "Home",
    "end": "End",
    "page_up": "Page_Up",
    "page_down": "Page_Down",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    **{f"f{n}": f"F{n}" for n in range(1, 25)},
}


def xdg_trigger(chord: str) -> str:
    """``<ctrl>+<alt>+k`` in the XDG shortcuts syntax the portal takes: ``CTRL+ALT+k``."""
    *mods, key = [part.strip().lower() for part in chord.split("+")]
    words = []
    for mod in mods:
        if mod not in _MODIFIERS:
            raise HotkeyUnavailable(f"cannot read the hotkey {chord!r}: {mod!r} is no modifier")
        words.append(_MODIFIERS[mod])
    name = key.removeprefix("<").removesuffix(">")
    if key.startswith("<") and name in _KEYS:
        words.append(_KEYS[name])
    elif len(key) == 1:
        words.append(key)
    else:
        raise HotkeyUnavailable(f"cannot read the hotkey {chord!r}: {key!r} is no key")
    return "+".join(words)


class PortalHotkey:
    name = "portal"

    def __init__(self, bus_address: str | None = None, timeout_s: float = TIMEOUT_S) -> None:
        self.bus_address = bus_address
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bus: MessageBus | None = None
        self._session = ""
        self._callback: HotkeyCallback | None = None
        self._pending: dict[str, asyncio.Future[tuple[int, dict[str, Any]]]] = {}
        self._bound = threading.Event()
        self._bound_as = ""
        self._bind_error = ""

    def start(self, chord: str, callback: HotkeyCallback) -> None:
        self.stop()
        trigger = xdg_trigger(chord)
        self._bound.clear()
        self._bound_as = self._bind_error = ""
        self._callback = callback
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="hotkey-portal", daemon=True)
        self._thread.start()
        try:
            self._call(self._open(trigger))
        except BaseException:
            self.stop()
            raise

    def wait_bound(self, timeout: float) -> str:
        """The trigger the desktop reports once the binding is made (may be empty);
        raises `HotkeyUnavailable` when the user or the desktop refused it."""
        if not self._bound.wait(timeout):
            raise HotkeyUnavailable("the desktop has not confirmed the hotkey yet")
        if self._bind_error:
            raise HotkeyUnavailable(self._bind_error)
        return self._bound_as

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(self.timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout_s)
        loop.close()
        self._callback = None

    # -- on the portal thread --------------------------------------------------------------

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            future.result(self.timeout_s + 1)
        except TimeoutError:
            future.cancel()
            raise HotkeyUnavailable(
                f"the desktop portal did not answer in {self.timeout_s:.0f} s; {UNIVERSAL}"
            ) from None

    async def _open(self, trigger: str) -> None:
        from dbus_fast import BusType, Message, MessageType, Variant
        from dbus_fast.aio import MessageBus
        from dbus_fast.errors import DBusError, InvalidAddressError

        try:
            bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SESSION).connect()
        except (InvalidAddressError, KeyError):
            raise HotkeyUnavailable(f"no D-Bus session bus; {UNIVERSAL}") from None
        except (OSError, DBusError, ValueError) as exc:
            raise HotkeyUnavailable(
                f"cannot reach the D-Bus session bus ({exc}); {UNIVERSAL}"
            ) from None
        self._bus = bus
        reply = await self._send(
            Message(
                destination=PORTAL,
                path=PORTAL_PATH,
                interface="org.freedesktop.DBus.Properties",
                member="Get",
                signature="ss",
                body=[SHORTCUTS, "version"],
            )
        )
        if reply.message_type != MessageType.METHOD_RETURN:
            raise HotkeyUnavailable(
                f"this desktop has no GlobalShortcuts portal ({reply.error_name}); {UNIVERSAL}"
            )
        bus.add_message_handler(self._on_message)
        for rule in (
            f"type='signal',sender='{PORTAL}',interface='{REQUEST}',member='Response'",
            f"type='signal',sender='{PORTAL}',interface='{SHORTCUTS}',member='Activated'",
        ):
            await self._send(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="AddMatch",
                    signature="s",
                    body=[rule],
                )
            )
        token = _token()
        results = await self._request(
            "CreateSession",
            "a{sv}",
            [{"handle_token": Variant("s", token), "session_handle_token": Variant("s", _token())}],
            token,
        )
        handle = results.get("session_handle")
        if handle is None:
            raise HotkeyUnavailable("the GlobalShortcuts portal created no session")
        self._session = str(handle.value)
        assert self._loop is not None
        self._loop.create_task(self._bind(trigger))

    async def _bind(self, trigger: str) -> None:
        from dbus_fast import Variant

        token = _token()
        shortcut = {
            "description": Variant("s", DESCRIPTION),
            "preferred_trigger": Variant("s", trigger),
        }
        try:
            results = await self._request(
                "BindShortcuts",
                "oa(sa{sv})sa{sv}",
                [
                    self._session,
                    [[SHORTCUT_ID, shortcut]],
                    "",
                    {"handle_token": Variant("s", token)},
                ],
                token,
                timeout=None,
            )
        except HotkeyUnavailable as exc:
            self._bind_error = str(exc)
            log.warning("global hotkey: %s", exc)
        else:
            bound = results.get("shortcuts")
            for shortcut_id, props in bound.value if bound is not None else []:
                if shortcut_id == SHORTCUT_ID and "trigger_description" in props:
                    self._bound_as = str(props["trigger_description"].value)
            log.info("global hotkey bound through the portal: %s", self._bound_as or trigger)
        finally:
            self._bound.set()

    async def _request(
        self,
        member: str,
        signature: str,
        body: list[Any],
        token: str,
        timeout: float | None = TIMEOUT_S,
    ) -> dict[str, Any]:
        from dbus_fast import Message, MessageType

        assert self._bus is not None and self._bus.unique_name is not None and self._loop
        sender = self._bus.unique_name.removeprefix(":").replace(".", "_")
        path = f"{PORTAL_PATH}/request/{sender}/{token}"
        response: asyncio.Future[tuple[int, dict[str, Any]]] = self._loop.create_future()
        self._pending[path] = response
        reply = await self._send(
            Message(
                destination=PORTAL,
                path=PORTAL_PATH,
                interface=SHORTCUTS,
                member=member,
                signature=signature,
                body=body,
            )
        )
        if reply.message_type != MessageType.METHOD_RETURN:
            self._pending.pop(path, None)
            raise HotkeyUnavailable(f"the portal refused {member}: {reply.error_name} {reply.body}")
        handle = str(reply.body[0])
        if handle != path:
            self._pending[handle] = self._pending.pop(path)
        try:
            code, results = await asyncio.wait_for(response, timeout)
        except TimeoutError:
            raise HotkeyUnavailable(f"the portal did not finish {member}") from None
        if code != 0:
            what = "cancelled" if code == 1 else "refused"
            raise HotkeyUnavailable(f"the desktop {what} the hotkey ({member}); {UNIVERSAL}")
        return results

    async def _send(self, message: Message) -> Message:
        assert self._bus is not None
        reply = await asyncio.wait_for(self._bus.call(message), self.timeout_s)
        assert reply is not None
        return reply

    def _on_message(self, message: Message) -> None:
        from dbus_fast import MessageType

        if message.message_type != MessageType.SIGNAL:
            return
        if message.interface == REQUEST and message.member == "Response":
            future = self._pending.pop(message.path or "", None)
            if future is not None and not future.done():
                future.set_result((int(message.body[0]), dict(message.body[1])))
        elif message.interface == SHORTCUTS and message.member == "Activated":
            session, shortcut_id = message.body[0], message.body[1]
            if session == self._session and shortcut_id == SHORTCUT_ID and self._callback:
                try:
                    self._callback()
                except Exception:
                    log.exception("the hotkey's action failed")

    async def _close(self) -> None:
        from dbus_fast import Message

        bus, self._bus = self._bus, None
        if bus is None:
            return
        if self._session:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    bus.call(
                        Message(
                            destination=PORTAL,
                            path=self._session,
                            interface=SESSION,
                            member="Close",
                        )
                    ),
                    self.timeout_s,
                )
        self._session = ""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        bus.disconnect()


def _token() -> str:
    return f"labmind_{secrets.token_hex(8)}"
