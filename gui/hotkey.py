"""The global hotkey that shows the search popup: the backend seam and the choice of backend.

The tray process calls ``choose_backend().start(chord, popup.toggle)``. ``chord`` is the
config's ``gui.hotkey`` (pynput syntax: ``<ctrl>+<alt>+k``); the callback runs on the
backend's own thread, so a Qt caller hands it to the GUI thread (a queued signal).
Where no backend can listen, `start` raises `HotkeyUnavailable` with one line that says
why; the universal path then is a desktop shortcut for ``labmind popup --toggle``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Protocol

HotkeyCallback = Callable[[], None]

UNIVERSAL = (
    "bind `labmind popup --toggle` in your desktop's keyboard settings "
    "(`labmind hotkey install` does it for GNOME, KDE and XFCE)"
)


class HotkeyUnavailable(Exception):
    """No global hotkey from this backend here; the message is one line for the user."""


class HotkeyBackend(Protocol):
    name: str

    def start(self, chord: str, callback: HotkeyCallback) -> None:
        """Call ``callback`` (from a background thread) whenever ``chord`` is pressed;
        raises `HotkeyUnavailable`. Starting again replaces the previous chord."""
        ...

    def stop(self) -> None:
        """Stop listening; safe to call more than once."""
        ...


class NoHotkey:
    """The backend where nothing can listen: `start` says why."""

    name = "none"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def start(self, chord: str, callback: HotkeyCallback) -> None:
        raise HotkeyUnavailable(self.reason)

    def stop(self) -> None:
        return None


class MemoryHotkey:
    """A backend for tests: `press` does what the chord would."""

    name = "memory"

    def __init__(self) -> None:
        self.chord: str | None = None
        self._callback: HotkeyCallback | None = None

    def start(self, chord: str, callback: HotkeyCallback) -> None:
        self.chord, self._callback = chord, callback

    def stop(self) -> None:
        self.chord, self._callback = None, None

    def press(self) -> None:
        if self._callback is not None:
            self._callback()


def choose_backend(
    env: Mapping[str, str] = os.environ, platform: str = sys.platform
) -> HotkeyBackend:
    """pynput on Windows, macOS and X11; the GlobalShortcuts portal on Wayland."""
    if platform in ("win32", "darwin"):
        from .hotkey_pynput import PynputHotkey

        return PynputHotkey()
    session = env.get("XDG_SESSION_TYPE", "").lower()
    wayland = session == "wayland" or (session != "x11" and bool(env.get("WAYLAND_DISPLAY")))
    if wayland:
        from .hotkey_portal import PortalHotkey

        return PortalHotkey()
    if env.get("DISPLAY"):
        from .hotkey_pynput import PynputHotkey

        return PynputHotkey()
    return NoHotkey(f"no display (neither WAYLAND_DISPLAY nor DISPLAY is set); {UNIVERSAL}")
