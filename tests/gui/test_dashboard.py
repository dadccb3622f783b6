"""The dashboard with a fake daemon: each tab shows what the daemon says, its buttons call
the daemon, empty tabs say what to do, a running run's log follows live, and a restore is
picked from the folder's snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from labmind.daemon.protocol import Event
from labmind.gui.dashboard import Dashboard
from labmind.gui.experiments_tab import EMPTY
from labmind.gui.log_follow import TAIL_BYTES
from labmind.gui.restore_dialog import RestoreDialog
from labmind.gui.tasks import TaskRunner

from .fake_daemon import FakeDaemon, held, repo, run_info, snapshot


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon(
        runs=[
            run_info("a1", "needs_approval"),
            run_info("b2", "failed", exit_code=1, failure="cuda_oom"),
            run_info("c3", "running"),
        ],
        repos=[repo("/src/project", held_back=[]), repo("/src/notes")],
    )


@pytest.fixture
def dashboard(qtbot: QtBot, daemon: FakeDaemon, runner: TaskRunner) -> Dashboard:
    window = Dashboard(daemon, runner)
    qtbot.addWidget(window)
    return window


def cell(table: QTableWidget, row: int, column: int) -> str:
    item = table.item(row, column)
    return "" if item is None else item.text()


def open_run(qtbot: QtBot, dashboard: Dashboard, run_id: str) -> None:
    dashboard.open_tab("experiments", run_id)
    tab = dashboard.experiments
    qtbot.waitUntil(lambda: tab.detail is not None and tab.detail.run.id == run_id)


def test_experiments_list_runs_with_params_metrics_plot_and_log(
    qtbot: QtBot, dashboard: Dashboard
) -> None:
    open_run(qtbot, dashboard, "b2")
    tab = dashboard.experiments
    assert tab.table.rowCount() == 3
    assert "lr=0.001" in tab.summary.text() and "cuda_oom" in tab.summary.text()
    assert "loss 0.5" in tab.summary.text()
    assert set(tab.plot.series) == {"loss", "acc"}
    # The log comes in its own request, which may answer after the run's detail.
    qtbot.waitUntil(lambda: "epoch 2" in tab.log.toPlainText())


def log_reads(daemon: FakeDaemon, run_id: str) -> list[tuple[int, int | None]]:
    return [(offset, tail) for rid, offset, tail in daemon.called("exp_log") if rid == run_id]


def test_a_running_runs_log_follows_without_reselecting_it(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    open_run(qtbot, dashboard, "c3")
    tab = dashboard.experiments
    qtbot.waitUntil(lambda: "epoch 2" in tab.log.toPlainText())
    assert tab.follower.following
    start = len(b"epoch 1 loss 0.9\nepoch 2 loss 0.5\n")
    details = len(daemon.called("exp_run"))
    daemon.append_log("c3", "epoch 3 loss 0.3\n")
    qtbot.waitUntil(lambda: "epoch 3 loss 0.3" in tab.log.toPlainText())
    daemon.append_log("c3", "epoch 4 ")
    daemon.append_log("c3", "loss 0.2\n")
    qtbot.waitUntil(lambda: "epoch 4 loss 0.2" in tab.log.toPlainText())
    assert tab.log.toPlainText().count("epoch 1") == 1
    assert len(daemon.called("exp_run")) == details
    reads = log_reads(daemon, "c3")
    assert reads[0] == (0, TAIL_BYTES)
    assert all(tail is None and offset >= start for offset, tail in reads[1:])


def test_the_log_stays_where_the_user_scrolled_and_follows_at_the_bottom(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    daemon.logs["c3"] = "".join(f"step {i}\n" for i in range(300)).encode()
    open_run(qtbot, dashboard, "c3")
    tab = dashboard.experiments
    bar = tab.log.verticalScrollBar()
    qtbot.waitUntil(lambda: "step 299" in tab.log.toPlainText())
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    daemon.append_log("c3", "step 300\n")
    qtbot.waitUntil(lambda: "step 300" in tab.log.toPlainText())
    assert bar.value() == bar.maximum()
    bar.setValue(10)
    daemon.append_log("c3", "".join(f"step {i}\n" for i in range(301, 340)))
    qtbot.waitUntil(lambda: "step 339" in tab.log.toPlainText())
    assert bar.value() == 10 and bar.maximum() > 10
    bar.setValue(bar.maximum())
    daemon.append_log("c3", "step 340\n")
    qtbot.waitUntil(lambda: "step 340" in tab.log.toPlainText())
    assert bar.value() == bar.maximum()


def test_following_stops_when_the_run_ends(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    open_run(qtbot, dashboard, "c3")
    tab = dashboard.experiments
    qtbot.waitUntil(lambda: "epoch 2" in tab.log.toPlainText() and tab.follower.following)
    daemon.append_log("c3", "done\n")
    daemon.set_status("c3", "succeeded")
    qtbot.waitUntil(lambda: not tab.follower.following)
    assert tab.log.toPlainText().endswith("done\n")


def test_a_finished_runs_log_is_shown_and_not_followed(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    open_run(qtbot, dashboard, "b2")
    tab = dashboard.experiments
    qtbot.waitUntil(lambda: "epoch 2" in tab.log.toPlainText())
    assert not tab.follower.following
    assert log_reads(daemon, "b2") == [(0, TAIL_BYTES)]


def test_picking_another_run_shows_its_log(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    daemon.logs["a1"] = b"waiting for approval\n"
    open_run(qtbot, dashboard, "c3")
    tab = dashboard.experiments
    qtbot.waitUntil(lambda: "epoch 2" in tab.log.toPlainText())
    tab.table.setCurrentCell(next(i for i, r in enumerate(tab.runs) if r.id == "a1"), 0)
    qtbot.waitUntil(lambda: tab.log.toPlainText() == "waiting for approval\n")
    assert not tab.follower.following


@pytest.mark.parametrize(
    ("run_id", "action", "enabled"),
    [
        ("a1", "approve", {"approve", "cancel"}),
        ("b2", "retry", {"retry"}),
        ("c3", "cancel", {"cancel"}),
    ],
)
def test_run_buttons_call_the_daemon(
    qtbot: QtBot,
    dashboard: Dashboard,
    daemon: FakeDaemon,
    run_id: str,
    action: str,
    enabled: set[str],
) -> None:
    open_run(qtbot, dashboard, run_id)
    tab = dashboard.experiments
    assert {name for name, button in tab.buttons.items() if button.isEnabled()} == enabled
    tab.buttons[action].click()
    qtbot.waitUntil(lambda: daemon.called("exp_action") == [(run_id, action)])
    qtbot.waitUntil(lambda: action in tab.message.text())


def test_no_experiments_is_a_deliberate_empty_state(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    daemon.runs = []
    dashboard.open_tab("experiments")
    qtbot.waitUntil(lambda: daemon.called("exp_runs") != [])
    qtbot.waitUntil(lambda: dashboard.experiments.empty.is_empty)
    assert dashboard.experiments.empty.message.text() == EMPTY
    assert "labmind exp submit spec.yaml" in EMPTY


def test_outliers_tab_shows_the_flagged_samples_of_a_run(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    dashboard.open_tab("outliers")
    tab = dashboard.outliers
    qtbot.waitUntil(lambda: tab.report is not None)
    assert tab.table.rowCount() == 1
    assert cell(tab.table, 0, 0) == "7"
    assert "label_error" in cell(tab.table, 0, 2)
    assert daemon.called("exp_outliers")[0][0] in {"a1", "b2", "c3"}


def test_backups_tab_backs_up(qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon) -> None:
    daemon.repos = [repo("/src/project"), repo("/src/keys", held_back=[held(".env")])]
    dashboard.open_tab("backups")
    tab = dashboard.backups
    qtbot.waitUntil(lambda: tab.table.rowCount() == 2)
    assert cell(tab.table, 0, 2) == "5 min ago"
    tab.table.setCurrentCell(1, 0)
    assert tab.held.item(0).text() == ".env — secret"
    tab.backup_button.click()
    qtbot.waitUntil(lambda: daemon.called("backup_now") == [("/src/keys",)])


def open_restore(qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon) -> RestoreDialog:
    daemon.repos = [repo("/src/project"), repo("/src/notes")]
    daemon.snapshots["/src/project"] = [
        snapshot("c" * 40, 120, files=4, pushed=False),
        snapshot("b" * 40, 3600, files=1, pushed=True),
        snapshot("a" * 40, 86400 * 2, files=12, pushed=True),
    ]
    dashboard.open_tab("backups")
    tab = dashboard.backups
    qtbot.waitUntil(lambda: tab.table.rowCount() == 2)
    tab.table.setCurrentCell(0, 0)
    tab.restore_button.click()
    dialog = tab.restore_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 3)
    return dialog


def test_restore_lists_the_snapshots_and_restores_the_picked_one(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon, tmp_path: Path
) -> None:
    dialog = open_restore(qtbot, dashboard, daemon)
    assert daemon.called("backup_log")[0][0] == "/src/project"
    assert [cell(dialog.table, r, 1) for r in range(3)] == ["c" * 10, "b" * 10, "a" * 10]
    assert cell(dialog.table, 0, 2) == "4 files changed"
    assert "2 min ago" in cell(dialog.table, 0, 0) and "2 d ago" in cell(dialog.table, 2, 0)
    assert [cell(dialog.table, r, 3) for r in range(3)] == ["no", "yes", "yes"]
    assert dialog.target.text() == "/src/project-restored-cccccccccc"
    dialog.table.setCurrentCell(1, 0)
    assert dialog.target.text() == "/src/project-restored-bbbbbbbbbb"
    target = str(tmp_path / "two-hours-ago")
    dialog.target.selectAll()
    QTest.keyClicks(dialog.target, target)
    dialog.table.setCurrentCell(1, 0)
    assert dialog.target.text() == target
    dialog.restore_button.click()
    qtbot.waitUntil(lambda: dialog.outcome is not None)
    (request,) = daemon.called("backup_restore")[0]
    assert (request.path, request.at, request.to) == ("/src/project", "b" * 40, target)
    assert "restored 3 files of bbbbbbbbbb" in dialog.status.text()
    assert target in dialog.status.text()
    assert f"restored 3 files of bbbbbbbbbb to {target}" == dashboard.backups.message.text()


def test_a_refused_restore_shows_the_daemons_line_and_can_be_retried(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    dialog = open_restore(qtbot, dashboard, daemon)
    daemon.not_empty.add("/home/me/full")
    dialog.target.setText("/home/me/full")
    dialog.restore_button.click()
    qtbot.waitUntil(lambda: "not empty" in dialog.status.text())
    assert dialog.status.text() == (
        "/home/me/full is not empty; restore writes only into a new folder"
    )
    assert dialog.outcome is None and dialog.restore_button.isEnabled()
    dialog.target.setText("/home/me/new")
    dialog.restore_button.click()
    qtbot.waitUntil(lambda: dialog.outcome is not None)
    assert dialog.outcome is not None and dialog.outcome.target == "/home/me/new"


def test_restore_says_when_a_folder_has_no_snapshots(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    daemon.repos = [repo("/src/project")]
    daemon.snapshots["/src/project"] = []
    dashboard.open_tab("backups")
    tab = dashboard.backups
    qtbot.waitUntil(lambda: tab.table.rowCount() == 1)
    tab.restore_button.click()
    dialog = tab.restore_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: "no snapshots" in dialog.status.text())
    assert not dialog.restore_button.isEnabled()


def test_no_backups_is_a_deliberate_empty_state(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    daemon.repos = []
    dashboard.open_tab("backups")
    qtbot.waitUntil(lambda: dashboard.backups.status is not None)
    assert dashboard.backups.empty.is_empty
    assert "labmind watch add" in dashboard.backups.empty.message.text()


def test_indexing_tab_shows_counts(qtbot: QtBot, dashboard: Dashboard) -> None:
    dashboard.open_tab("indexing")
    tab = dashboard.indexing
    qtbot.waitUntil(lambda: tab.text("files") == "12" and tab.text("state") == "idle")
    assert tab.text("vectors").startswith("40 / 40")


def test_indexing_tab_pauses_and_resumes_indexing(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    dashboard.open_tab("indexing")
    tab = dashboard.indexing
    qtbot.waitUntil(lambda: tab.pause_button.isEnabled())
    assert tab.pause_button.text() == "Pause indexing"
    tab.pause_button.click()
    qtbot.waitUntil(lambda: tab.text("state").startswith("paused"))
    assert daemon.called("index_pause") == [(True,)]
    assert "2 change(s) wait" in tab.text("state")
    assert tab.pause_button.text() == "Resume indexing"
    qtbot.waitUntil(lambda: tab.pause_button.isEnabled())
    tab.pause_button.click()
    qtbot.waitUntil(lambda: tab.text("state") == "idle")
    assert daemon.called("index_pause") == [(True,), (False,)]
    assert tab.pause_button.text() == "Pause indexing"


def test_a_pause_from_elsewhere_shows_in_the_indexing_tab(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    dashboard.open_tab("indexing")
    tab = dashboard.indexing
    qtbot.waitUntil(lambda: tab.text("state") == "idle")
    daemon.index_paused = True
    dashboard.on_event(Event(type="index_paused", data={"paused": True}))
    qtbot.waitUntil(lambda: tab.text("state").startswith("paused"))
    assert tab.pause_button.text() == "Resume indexing"


def test_settings_apply_changes_through_the_daemon_and_show_its_error(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon
) -> None:
    dashboard.open_tab("settings")
    tab = dashboard.settings
    qtbot.waitUntil(lambda: tab.table.rowCount() == 3)
    tab.set_value("index.debounce_ms", "soon")
    tab.apply()
    qtbot.waitUntil(lambda: "expected an integer" in tab.error.text())
    assert daemon.called("config_set") == [("index.debounce_ms", "soon")]
    tab.set_value("index.debounce_ms", "500")
    tab.apply()
    qtbot.waitUntil(lambda: daemon.config_values["index"]["debounce_ms"] == 500)
    qtbot.waitUntil(lambda: tab.error.text() == "" and tab.changes() == [])


def test_offline_banner(dashboard: Dashboard) -> None:
    dashboard.set_offline("daemon not running")
    assert "daemon not running" in dashboard.banner.text()
    assert not dashboard.banner.isHidden()
    dashboard.set_online()
    assert dashboard.banner.isHidden()
