"""The GUI against a real daemon: the popup searches an indexed folder, and the GUI rides
out a daemon restart without its event loop ever waiting on the socket."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from labmind.daemon.client import DaemonClient, DaemonError
from labmind.gui.app import LabmindGui
from labmind.gui.connection import NOT_RUNNING
from labmind.gui.popup import SearchPopup
from labmind.gui.tasks import TaskRunner
from labmind.gui.tray_host import ImmediateHost
from tests.e2e.conftest import CLI, Lab

from .fake_daemon import RecordingLauncher

pytestmark = pytest.mark.slow

SOURCE = '''"""Data loading for the experiments."""


def make_loader(dataset, batch_size):
    """Shuffle the dataset into batches for one epoch."""
    order = list(range(len(dataset)))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
'''


@pytest.fixture
def indexed(lexical_lab: Lab, tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "loader.py").write_text(SOURCE)
    lexical_lab.cli("index", str(folder), "--wait")
    yield lexical_lab, folder / "loader.py"


def test_typing_in_the_popup_searches_the_real_daemon(
    qtbot: QtBot, indexed: tuple[Lab, Path]
) -> None:
    lab, source = indexed
    client = DaemonClient(lab.paths)
    runner = TaskRunner()
    launcher = RecordingLauncher()
    popup = SearchPopup(client, runner, launcher, editor=lambda p, n: ["code", "-g", f"{p}:{n}"])
    qtbot.addWidget(popup)
    popup.present()
    QTest.keyClicks(popup.query, "shuffle batches")
    qtbot.waitUntil(lambda: popup.results.count() > 0, timeout=10_000)
    assert popup.hits[0].path == str(source.resolve())
    qtbot.waitUntil(lambda: "def make_loader" in popup.preview.code.toPlainText())
    QTest.keyClick(popup.query, Qt.Key.Key_Return)
    (command,) = launcher.commands
    assert command[:2] == ["code", "-g"] and command[2].startswith(f"{source.resolve()}:")
    runner.forget_all()
    runner.wait_idle()
    client.close()


def run_cli(qtbot: QtBot, lab: Lab, *args: str) -> None:
    """A CLI command, waited for with the event loop running."""
    proc = subprocess.Popen([*CLI, *args], env=lab.env, stdout=subprocess.DEVNULL)
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=60_000)
    assert proc.returncode == 0


def test_the_gui_reconnects_after_the_daemon_restarts(qtbot: QtBot, lexical_lab: Lab) -> None:
    lab = lexical_lab
    lab.cli("start")
    paths = lab.paths
    gui = LabmindGui(
        paths,
        lambda: DaemonClient(paths),
        launcher=RecordingLauncher(),
        host=ImmediateHost(available=False),
    )
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(20)
    gui.start()
    try:
        qtbot.waitUntil(lambda: gui.link.online, timeout=15_000)
        first_pid = lab.paths.pid_file.read_text().strip()
        run_cli(qtbot, lab, "stop")
        qtbot.waitUntil(lambda: not gui.link.online, timeout=15_000)
        assert gui.popup.status.text() == NOT_RUNNING
        assert not gui.dashboard.banner.isHidden()
        run_cli(qtbot, lab, "start")
        qtbot.waitUntil(lambda: gui.link.online, timeout=20_000)
        assert lab.paths.pid_file.read_text().strip() != first_pid
        assert gui.dashboard.banner.isHidden() and gui.popup.status.text() == ""
        QTest.keyClicks(gui.popup.query, "anything")
        qtbot.waitUntil(lambda: "no results" in gui.popup.status.text(), timeout=10_000)
    finally:
        timer.stop()
        gui.stop()
        gui.popup.close()
        gui.dashboard.close()
    # the event loop kept turning the whole time (no call waited on the socket)
    assert len(gaps) > 20
    assert max(gaps[1:]) < 0.5


def test_the_settings_routes_validate_and_save(lexical_lab: Lab) -> None:
    lexical_lab.cli("start")
    with DaemonClient(lexical_lab.paths) as client:
        view = client.config()
        assert view.file == str(lexical_lab.paths.config_file)
        assert view.values["embedder"]["enabled"] is False
        with pytest.raises(DaemonError) as refused:
            client.config_set("index.debounce_ms", "soon")
        assert refused.value.status_code == 400
        assert "index.debounce_ms" in refused.value.message
        assert "\n" not in refused.value.message
        saved = client.config_set("index.debounce_ms", "450")
    assert saved.values["index"]["debounce_ms"] == 450
    assert "debounce_ms = 450" in lexical_lab.paths.config_file.read_text()
