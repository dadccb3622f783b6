"""The pynput backend on a real X server (Xvfb), pressed with xdotool; and the choice of
backend by session type."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from labmind.gui.hotkey import MemoryHotkey, NoHotkey, choose_backend
from labmind.gui.hotkey_portal import PortalHotkey
from labmind.gui.hotkey_pynput import PynputHotkey

from .xvfb import Xvfb, have_xvfb

WAIT_S = 10.0

needs_x = pytest.mark.skipif(
    not (have_xvfb() and shutil.which("xdotool")), reason="needs Xvfb and xdotool (make venv)"
)


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with Xvfb() as server:
        monkeypatch.setenv("DISPLAY", server.display)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        yield server.display


def press(display: str, keys: str) -> None:
    env = {**os.environ, "DISPLAY": display}
    subprocess.run(["xdotool", "key", keys], env=env, check=True, timeout=WAIT_S)


@needs_x
@pytest.mark.parametrize(
    ("chord", "keys"),
    [("<ctrl>+<alt>+k", "ctrl+alt+k"), ("<ctrl>+<shift>+<f5>", "ctrl+shift+F5")],
)
def test_the_chord_pressed_on_x11_calls_back_once(display: str, chord: str, keys: str) -> None:
    calls: list[str] = []
    fired = threading.Event()

    def toggle() -> None:
        calls.append(threading.current_thread().name)
        fired.set()

    backend = choose_backend()
    assert isinstance(backend, PynputHotkey)
    backend.start(chord, toggle)
    try:
        press(display, "ctrl+alt+j")
        press(display, keys)
        assert fired.wait(WAIT_S), f"{keys} did not reach the hotkey"
    finally:
        backend.stop()
    assert len(calls) == 1
    assert calls[0] != threading.main_thread().name
    backend.stop()


@needs_x
def test_a_failing_callback_does_not_stop_the_listener(display: str) -> None:
    fired = threading.Event()
    calls: list[int] = []

    def toggle() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("popup broke")
        fired.set()

    backend = PynputHotkey()
    backend.start("<ctrl>+<alt>+k", toggle)
    try:
        press(display, "ctrl+alt+k")
        press(display, "ctrl+alt+k")
        assert fired.wait(WAIT_S)
    finally:
        backend.stop()


def test_without_a_display_pynput_says_why_in_one_line() -> None:
    probe = (
        "from labmind.gui.hotkey_pynput import PynputHotkey\n"
        "from labmind.gui.hotkey import HotkeyUnavailable\n"
        "try:\n"
        "    PynputHotkey().start('<ctrl>+<alt>+k', print)\n"
        "except HotkeyUnavailable as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("pynput cannot listen for keys here")
    assert "labmind popup --toggle" in lines[0]


def test_importing_the_hotkey_modules_loads_no_pynput() -> None:
    probe = (
        "import sys, labmind.gui.hotkey, labmind.gui.hotkey_pynput, labmind.gui.hotkey_portal\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pynput', 'dbus_fast'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        (
            {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"},
            "linux",
            PortalHotkey,
        ),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", PortalHotkey),
        (
            {"XDG_SESSION_TYPE": "x11", "DISPLAY": ":0", "WAYLAND_DISPLAY": "w"},
            "linux",
            PynputHotkey,
        ),
        ({"DISPLAY": ":0"}, "linux", PynputHotkey),
        ({}, "linux", NoHotkey),
        ({}, "darwin", PynputHotkey),
        ({}, "win32", PynputHotkey),
    ],
)
def test_the_backend_follows_the_session_type(
    env: dict[str, str], platform: str, expected: type
) -> None:
    assert isinstance(choose_backend(env, platform), expected)


def test_no_display_explains_the_universal_path() -> None:
    backend = choose_backend({}, "linux")
    with pytest.raises(Exception, match=r"no display.*labmind popup --toggle"):
        backend.start("<ctrl>+<alt>+k", lambda: None)


def test_the_memory_backend_presses_like_the_chord() -> None:
    pressed: list[int] = []
    backend = MemoryHotkey()
    backend.start("<ctrl>+<alt>+k", lambda: pressed.append(1))
    backend.press()
    backend.stop()
    backend.press()
    assert pressed == [1]
