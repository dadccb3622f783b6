"""The tray's "Pause indexing and backup" item: it pauses (and resumes) both, says which
it will do, and shows the paused icon when either is paused — with a fake daemon, and
with a real one across a restart."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from labmind.daemon.client import DaemonClient
from labmind.daemon.protocol import Event
from labmind.gui.daemon_api import DaemonApi
from labmind.gui.tasks import TaskRunner
from labmind.gui.tray import PAUSE_LABEL, RESUME_LABEL, Tray, TrayActions
from labmind.gui.tray_state import TrayMode
from tests.e2e.conftest import Lab

from .fake_daemon import FakeDaemon


def mode(tray: Tray) -> TrayMode:
    return tray.mode


def make_tray(api: DaemonApi, runner: TaskRunner) -> Tray:
    def nothing(*_args: object) -> None:
        return None

    tray = Tray(api, runner, TrayActions(nothing, nothing, nothing, nothing))
    tray.came_online()
    return tray


def test_the_item_pauses_and_resumes_indexing_and_backups(qtbot: QtBot, runner: TaskRunner) -> None:
    daemon = FakeDaemon()
    tray = make_tray(daemon, runner)
    qtbot.waitUntil(tray.pause_action.isEnabled)
    assert tray.pause_action.text() == PAUSE_LABEL and mode(tray) is TrayMode.IDLE

    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: tray.pause_action.text() == RESUME_LABEL)
    assert daemon.called("index_pause") == [(True,)]
    assert daemon.called("backup_pause") == [(True,)]
    assert mode(tray) is TrayMode.PAUSED
    assert "indexing paused" in tray.icon.toolTip() and "backups paused" in tray.icon.toolTip()

    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: tray.pause_action.text() == PAUSE_LABEL)
    assert daemon.called("index_pause") == [(True,), (False,)]
    assert daemon.called("backup_pause") == [(True,), (False,)]
    assert mode(tray) is TrayMode.IDLE


def test_either_pause_offers_to_resume_both(qtbot: QtBot, runner: TaskRunner) -> None:
    daemon = FakeDaemon(index_paused=True)
    tray = make_tray(daemon, runner)
    qtbot.waitUntil(lambda: tray.pause_action.text() == RESUME_LABEL)
    assert mode(tray) is TrayMode.PAUSED and "indexing paused" in tray.icon.toolTip()
    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: tray.pause_action.text() == PAUSE_LABEL)
    assert daemon.called("index_pause") == [(False,)]
    assert daemon.called("backup_pause") == [(False,)]

    tray.on_event(Event(type="backup_paused", data={"paused": True}))
    assert tray.pause_action.text() == RESUME_LABEL and mode(tray) is TrayMode.PAUSED
    assert "backups paused" in tray.icon.toolTip()


@pytest.mark.slow
def test_the_item_pauses_a_real_daemon_and_the_pause_outlives_a_restart(
    qtbot: QtBot, runner: TaskRunner, lexical_lab: Lab
) -> None:
    lab = lexical_lab
    lab.cli("start")
    client = DaemonClient(lab.paths)
    try:
        tray = make_tray(client, runner)
        qtbot.waitUntil(tray.pause_action.isEnabled, timeout=10_000)
        assert tray.pause_action.text() == PAUSE_LABEL
        tray.pause_action.trigger()
        qtbot.waitUntil(lambda: tray.pause_action.text() == RESUME_LABEL, timeout=10_000)
        assert client.status().indexing_paused and client.backup_status().paused

        lab.cli("stop")
        lab.cli("start")
        assert client.status().indexing_paused and client.backup_status().paused
        again = make_tray(client, runner)
        qtbot.waitUntil(
            lambda: again.pause_action.isEnabled() and again.pause_action.text() == RESUME_LABEL,
            timeout=10_000,
        )
        assert mode(again) is TrayMode.PAUSED
        again.pause_action.trigger()
        qtbot.waitUntil(lambda: again.pause_action.text() == PAUSE_LABEL, timeout=10_000)
        assert not client.status().indexing_paused and not client.backup_status().paused
    finally:
        runner.forget_all()
        runner.wait_idle()
        client.close()
