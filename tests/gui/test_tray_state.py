"""What the tray shows, from status and events; its icons and labels."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytestqt.qtbot import QtBot

from labmind.daemon.protocol import Event
from labmind.gui.editor import editor_command
from labmind.gui.icons import status_pixmap
from labmind.gui.time_text import ago
from labmind.gui.tray import display_chord
from labmind.gui.tray_state import TrayMode, TrayState


def mode_of(state: TrayState) -> TrayMode:
    return state.mode


def test_modes_follow_the_daemon() -> None:
    state = TrayState()
    assert mode_of(state) is TrayMode.OFFLINE
    assert state.tooltip() == "labmind: daemon not running"
    state.online = True
    assert mode_of(state) is TrayMode.IDLE
    state.apply_event(
        Event(type="progress", data={"scanning": True, "pending_files": 30, "processed_files": 10})
    )
    assert mode_of(state) is TrayMode.INDEXING and state.progress == 0.25
    state.apply_event(
        Event(type="progress", data={"scanning": False, "pending_files": 0, "processed_files": 40})
    )
    state.apply_event(Event(type="embedded", data={"embedded": 5, "total": 10}))
    assert mode_of(state) is TrayMode.INDEXING and state.progress == 0.5
    state.apply_event(Event(type="embedded", data={"embedded": 10, "total": 10}))
    assert mode_of(state) is TrayMode.IDLE
    state.apply_event(Event(type="backup_paused", data={"paused": True}))
    assert mode_of(state) is TrayMode.PAUSED
    state.apply_event(
        Event(
            type="experiment",
            data={"event": "failed", "run": "r1", "summary": "CUDA out of memory"},
        )
    )
    assert mode_of(state) is TrayMode.ALERT
    assert state.alerts[-1].text == "run r1 failed: CUDA out of memory"
    assert state.alerts[-1].run == "r1"
    state.mark_seen()
    assert mode_of(state) is TrayMode.PAUSED
    state.go_offline("daemon not running")
    assert mode_of(state) is TrayMode.OFFLINE


def test_paused_when_indexing_or_backups_are_and_the_tooltip_says_which() -> None:
    state = TrayState(online=True)
    state.apply_event(Event(type="index_paused", data={"paused": True}))
    assert mode_of(state) is TrayMode.PAUSED and state.paused
    assert "indexing paused" in state.tooltip() and "backups paused" not in state.tooltip()
    state.apply_event(Event(type="backup_paused", data={"paused": True}))
    assert "indexing paused\nbackups paused" in state.tooltip()
    state.apply_event(Event(type="index_paused", data={"paused": False}))
    assert mode_of(state) is TrayMode.PAUSED and "indexing paused" not in state.tooltip()
    state.apply_event(Event(type="backup_paused", data={"paused": False}))
    assert mode_of(state) is TrayMode.IDLE and not state.paused


def test_events_that_are_not_alerts_change_nothing() -> None:
    state = TrayState(online=True)
    assert not state.apply_event(Event(type="experiment", data={"event": "running", "run": "r"}))
    assert not state.alerts


@pytest.mark.parametrize("mode", list(TrayMode))
def test_every_mode_has_an_icon(qtbot: QtBot, mode: TrayMode) -> None:
    image = status_pixmap(mode, 0.4).toImage()
    assert image.width() == 64
    assert image.pixelColor(32, 32).alpha() > 0 or mode is TrayMode.OFFLINE


def test_labels() -> None:
    assert display_chord("<ctrl>+<alt>+k") == "Ctrl+Alt+K"
    assert display_chord("<cmd>+<shift>+space") == "Super+Shift+Space"
    assert ago(None) == "never"
    assert ago(100.0, now=100.0 + 7200) == "2 h ago"
    assert ago(100.0, now=130.0) == "just now"


def which(*present: str) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in present else None


def test_editor_commands() -> None:
    assert editor_command("/a.py", 7, env={}, which=which("code")) == ["code", "-g", "/a.py:7"]
    assert editor_command("/a.py", 7, env={"EDITOR": "nvim"}, which=which("xterm")) == [
        "xterm",
        "-e",
        "nvim",
        "+7",
        "/a.py",
    ]
    assert editor_command("/a.py", 7, env={}, which=which("xdg-open")) == ["xdg-open", "/a.py"]
    env = {"LABMIND_EDITOR": "emacsclient -n +{line} {path}"}
    assert editor_command("/a b.py", 3, env=env, which=which()) == [
        "emacsclient",
        "-n",
        "+3",
        "/a b.py",
    ]
    env = {"LABMIND_EDITOR": "code", "EDITOR": "vim"}
    assert editor_command("/a.py", 1, env=env, which=which()) == ["code", "-g", "/a.py:1"]
