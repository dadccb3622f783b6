"""The GUI process's wiring, in this process: the control socket that `labmind popup
--toggle` talks to, one GUI per home, running without a tray, and the hotkey."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from labmind.daemon.client import Paths
from labmind.daemon.gui_control import SOCKET_NAME as CLI_SOCKET_NAME
from labmind.gui.app import LabmindGui
from labmind.gui.control_server import SOCKET_NAME, GuiAlreadyRunning, take_lock
from labmind.gui.hotkey import MemoryHotkey
from labmind.gui.tray_host import ImmediateHost

from .fake_daemon import FakeDaemon, RecordingLauncher


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LABMIND_", "XDG_RUNTIME"))}
    return {**clean, "LABMIND_HOME": str(home)}


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


@pytest.fixture
def gui(
    qtbot: QtBot, env: dict[str, str], daemon: FakeDaemon, caplog: pytest.LogCaptureFixture
) -> Iterator[LabmindGui]:
    caplog.set_level(logging.INFO, logger="labmind.gui")
    paths = Paths.resolve(env)
    paths.ensure_dirs()
    app = LabmindGui(
        paths,
        lambda: daemon,
        launcher=RecordingLauncher(),
        host=ImmediateHost(available=False),
        hotkey=MemoryHotkey(),
    )
    app.start()
    yield app
    app.stop()
    app.popup.close()
    app.dashboard.close()


def labmind(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "labmind.daemon", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(qtbot: QtBot, proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for a CLI call while the GUI's event loop keeps running (it must answer)."""
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=30_000)
    out, err = proc.communicate()
    return proc.returncode, out, err


def test_popup_toggle_goes_to_the_running_gui(
    qtbot: QtBot, gui: LabmindGui, env: dict[str, str]
) -> None:
    assert not gui.popup.isVisible()
    assert finish(qtbot, labmind(env, "popup", "--toggle"))[0] == 0
    assert gui.popup.isVisible()
    assert finish(qtbot, labmind(env, "popup", "--toggle"))[0] == 0
    assert not gui.popup.isVisible()
    assert finish(qtbot, labmind(env, "popup"))[0] == 0
    assert gui.popup.isVisible()
    assert gui.control.received == ["toggle", "toggle", "show"]


def test_the_control_socket_is_private(gui: LabmindGui) -> None:
    mode = gui.control.path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert SOCKET_NAME == CLI_SOCKET_NAME


def test_popup_toggle_imports_no_qt_typer_or_httpx(
    qtbot: QtBot, gui: LabmindGui, env: dict[str, str]
) -> None:
    probe = (
        "import sys\n"
        "sys.argv = ['labmind', 'popup', '--toggle']\n"
        "from labmind.daemon import entry\n"
        "try:\n    entry.main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "heavy = ('PySide6', 'typer', 'httpx', 'pydantic', 'rich')\n"
        "print(code, sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", probe], env=env, stdout=subprocess.PIPE, text=True
    )
    _, out, _ = finish(qtbot, proc)
    assert out.strip() == "0 []"
    assert gui.popup.isVisible()


def test_other_commands_import_no_qt() -> None:
    probe = "import sys, labmind.daemon.cli; print('PySide6' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_labmind_gui_when_one_runs_shows_its_popup(
    qtbot: QtBot, gui: LabmindGui, env: dict[str, str]
) -> None:
    code, out, _ = finish(qtbot, labmind(env, "--no-autostart", "gui"))
    assert code == 0 and "already running" in out
    assert gui.popup.isVisible()


def test_one_gui_per_home(gui: LabmindGui) -> None:
    with pytest.raises(GuiAlreadyRunning):
        handle = take_lock(gui.paths.runtime_dir)
        lock = take_lock(gui.paths.runtime_dir)
        lock.close()
        handle.close()


def test_without_a_tray_it_says_so_once_and_runs_on(
    gui: LabmindGui, caplog: pytest.LogCaptureFixture
) -> None:
    assert gui.tray is None and gui.tray_available is False
    records = caplog.get_records("setup") + caplog.records
    lines = [r.getMessage() for r in records if "no system tray" in r.getMessage()]
    assert len(lines) == 1


def test_the_configured_hotkey_toggles_the_popup(qtbot: QtBot, gui: LabmindGui) -> None:
    assert isinstance(gui.hotkey, MemoryHotkey)
    hotkey = gui.hotkey
    qtbot.waitUntil(lambda: hotkey.chord == "<ctrl>+<alt>+k")
    hotkey.press()
    qtbot.waitUntil(gui.popup.isVisible)
    hotkey.press()
    qtbot.waitUntil(lambda: not gui.popup.isVisible())
