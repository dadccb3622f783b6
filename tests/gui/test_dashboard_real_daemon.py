"""The dashboard against a real daemon: a running run's log follows live, and a folder's
snapshot is picked and restored (the daemon refuses a folder that is not empty)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from labmind.daemon.client import DaemonClient, DaemonError
from labmind.gui.dashboard import Dashboard
from labmind.gui.tasks import TaskRunner
from tests.e2e.conftest import Lab

pytestmark = pytest.mark.slow

TRAIN = """
import os, sys, time
print("epoch 1 loss 0.9", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
print("epoch 2 loss 0.4", flush=True)
"""


@pytest.fixture
def configured(lab: Lab) -> Lab:
    lab.configure('[embedder]\nenabled = false\n[backup]\nhost = "lab"\nquiet_s = 0\n')
    return lab


@pytest.fixture
def dashboard(qtbot: QtBot, configured: Lab) -> Iterator[tuple[Dashboard, DaemonClient]]:
    configured.cli("start")
    client = DaemonClient(configured.paths)
    runner = TaskRunner()
    window = Dashboard(client, runner)
    qtbot.addWidget(window)
    yield window, client
    window.experiments.follower.stop()
    runner.forget_all()
    runner.wait_idle()
    client.close()


def test_a_running_runs_output_appears_without_reselecting_it(
    qtbot: QtBot, configured: Lab, dashboard: tuple[Dashboard, DaemonClient], tmp_path: Path
) -> None:
    window, client = dashboard
    go = tmp_path / "go"
    (tmp_path / "train.py").write_text(TRAIN)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps({"name": "follow", "command": f"{sys.executable} train.py {go}", "workdir": "."})
    )
    [run] = configured.json("exp", "submit", str(spec))["runs"]
    window.open_tab("experiments", run["id"])
    tab = window.experiments
    qtbot.waitUntil(lambda: "epoch 1 loss 0.9" in tab.log.toPlainText(), timeout=30_000)
    assert tab.follower.run_id == run["id"]
    assert tab.follower.following
    go.touch()
    qtbot.waitUntil(lambda: "epoch 2 loss 0.4" in tab.log.toPlainText(), timeout=30_000)
    qtbot.waitUntil(lambda: not tab.follower.following, timeout=30_000)
    assert tab.log.toPlainText().count("epoch 1 loss 0.9") == 1

    full = b"epoch 1 loss 0.9\nepoch 2 loss 0.4\n"
    tail = client.exp_log(run["id"], tail=20)
    assert (tail.text, tail.offset, tail.finished) == ("epoch 2 loss 0.4\n", len(full), True)
    with pytest.raises(DaemonError, match="tail must be"):
        client.exp_log(run["id"], tail=0)


def test_a_snapshot_is_picked_and_restored_into_a_new_folder(
    qtbot: QtBot, configured: Lab, dashboard: tuple[Dashboard, DaemonClient], tmp_path: Path
) -> None:
    window, client = dashboard
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "plan.md").write_text("version one\n")
    configured.cli("watch", "add", str(folder))
    [first] = client.backup_now(str(folder))
    (folder / "plan.md").write_text("version two\n")
    [second] = client.backup_now(str(folder))
    assert first.snapshot and second.snapshot and first.snapshot != second.snapshot

    window.open_tab("backups")
    tab = window.backups
    qtbot.waitUntil(lambda: tab.table.rowCount() == 1, timeout=10_000)
    tab.restore_button.click()
    dialog = tab.restore_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2, timeout=10_000)
    assert [e.commit for e in dialog.entries] == [second.snapshot, first.snapshot]

    dialog.table.setCurrentCell(1, 0)
    target = tmp_path / "restored"
    dialog.target.setText(str(target))
    dialog.restore_button.click()
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=30_000)
    assert (target / "plan.md").read_text() == "version one\n"
    assert f"to {target}" in dialog.status.text()

    dialog.restore_button.click()
    qtbot.waitUntil(lambda: "not empty" in dialog.status.text(), timeout=30_000)
    assert "\n" not in dialog.status.text()
    assert (target / "plan.md").read_text() == "version one\n"
