"""The global hotkey through pynput's `GlobalHotKeys` (X11, Windows, macOS).

pynput picks its platform backend when it is imported and raises without a display, so it
is imported in `start`, never at module import.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .hotkey import UNIVERSAL, HotkeyCallback, HotkeyUnavailable

log = logging.getLogger("labmind.gui.hotkey")

JOIN_S = 5.0


class PynputHotkey:
    name = "pynput"

    def __init__(self) -> None:
        self._listener: Any = None

    def start(self, chord: str, callback: HotkeyCallback) -> None:
        self.stop()
        keyboard = _keyboard()
        try:
            keyboard.HotKey.parse(chord)
        except ValueError as exc:
            raise HotkeyUnavailable(f"cannot read the hotkey {chord!r}: {exc}") from None
        listener = keyboard.GlobalHotKeys({chord: _guarded(callback)})
        listener.start()
        listener.wait()
        if not listener.is_alive():
            raise HotkeyUnavailable(f"pynput's key listener stopped at once; {UNIVERSAL}")
        self._listener = listener

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            _wake_x11_listener(listener)
            listener.join(JOIN_S)


def _keyboard() -> Any:
    try:
        return importlib.import_module("pynput.keyboard")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("pynput"):
            raise HotkeyUnavailable(
                "pynput is not installed (pip install 'labmind[gui]')"
            ) from None
        raise HotkeyUnavailable(f"pynput cannot load: {exc}") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HotkeyUnavailable(
            f"pynput cannot listen for keys here ({first}); {UNIVERSAL}"
        ) from None


def _guarded(callback: HotkeyCallback) -> HotkeyCallback:
    """A callback whose errors are logged: one raising would stop pynput's listener."""

    def run() -> None:
        try:
            callback()
        except Exception:
            log.exception("the hotkey's action failed")

    return run


def _wake_x11_listener(listener: Any) -> None:
    """End the X11 listener's wait for the next key event.

    pynput's Xlib listener disables its RECORD context on the connection that is blocked
    reading, without a flush, so `stop` only takes effect at the next key press; sending
    the request on its other connection ends the wait at once.
    """
    display, context = getattr(listener, "_display_stop", None), getattr(listener, "_context", None)
    if display is None or context is None:
        return
    try:
        display.record_disable_context(context)
        display.flush()
    except Exception as exc:
        log.debug("could not wake the X11 key listener: %s", exc)
