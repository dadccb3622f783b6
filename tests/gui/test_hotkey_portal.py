"""The GlobalShortcuts portal backend against a fake portal on a private session bus."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from labmind.gui.hotkey import HotkeyUnavailable
from labmind.gui.hotkey_portal import SHORTCUT_ID, PortalHotkey, xdg_trigger

from ..daemon.dbus_notifications import SessionBus, have_dbus_daemon
from .fake_portal import FakePortal

pytestmark = pytest.mark.skipif(not have_dbus_daemon(), reason="needs dbus-daemon (make venv)")

WAIT_S = 10.0


@pytest.fixture
def bus() -> Iterator[SessionBus]:
    with SessionBus() as bus:
        yield bus


def test_chords_become_xdg_triggers() -> None:
    assert xdg_trigger("<ctrl>+<alt>+k") == "CTRL+ALT+k"
    assert xdg_trigger("<cmd>+<shift>+<space>") == "LOGO+SHIFT+space"
    assert xdg_trigger("<ctrl>+<f5>") == "CTRL+F5"
    with pytest.raises(HotkeyUnavailable, match="no modifier"):
        xdg_trigger("<hyper>+k")


def test_binds_the_chord_and_calls_back_on_activation(bus: SessionBus) -> None:
    pressed = threading.Event()
    hotkey = PortalHotkey(bus_address=bus.address)
    with FakePortal(bus.address) as portal:
        try:
            hotkey.start("<ctrl>+<alt>+k", pressed.set)
            assert hotkey.wait_bound(WAIT_S) == "Press CTRL+ALT+k"
            assert portal.bound == {
                SHORTCUT_ID: {
                    "description": "Show the labmind search",
                    "preferred_trigger": "CTRL+ALT+k",
                }
            }
            portal.activate("someone-else")
            portal.activate(SHORTCUT_ID)
            assert pressed.wait(WAIT_S)
        finally:
            hotkey.stop()
        assert portal.wait_closed() == [portal.session]
    hotkey.stop()


def test_a_refused_binding_is_reported(bus: SessionBus) -> None:
    hotkey = PortalHotkey(bus_address=bus.address)
    with FakePortal(bus.address, refuse_bind=True):
        try:
            hotkey.start("<ctrl>+<alt>+k", lambda: None)
            with pytest.raises(HotkeyUnavailable, match="cancelled the hotkey"):
                hotkey.wait_bound(WAIT_S)
        finally:
            hotkey.stop()


def test_no_portal_on_the_bus_is_one_clear_line(bus: SessionBus) -> None:
    hotkey = PortalHotkey(bus_address=bus.address, timeout_s=5)
    with pytest.raises(HotkeyUnavailable) as raised:
        hotkey.start("<ctrl>+<alt>+k", lambda: None)
    message = str(raised.value)
    assert "no GlobalShortcuts portal" in message
    assert "labmind popup --toggle" in message
    assert "\n" not in message


def test_a_portal_without_global_shortcuts_falls_back(bus: SessionBus) -> None:
    hotkey = PortalHotkey(bus_address=bus.address, timeout_s=5)
    with (
        FakePortal(bus.address, shortcuts=False),
        pytest.raises(HotkeyUnavailable, match="no GlobalShortcuts portal"),
    ):
        hotkey.start("<ctrl>+<alt>+k", lambda: None)


def test_no_session_bus_is_unavailable() -> None:
    hotkey = PortalHotkey(bus_address="unix:path=/nonexistent/labmind-bus", timeout_s=5)
    with pytest.raises(HotkeyUnavailable, match="D-Bus session bus"):
        hotkey.start("<ctrl>+<alt>+k", lambda: None)
