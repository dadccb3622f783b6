"""The dashboard with a fake daemon: each tab shows what the daemon says, its buttons call
the daemon, and empty tabs say what to do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from labmind.daemon.protocol import RestoreRequest
from labmind.gui.dashboard import Dashboard
from labmind.gui.experiments_tab import EMPTY
from labmind.gui.tasks import TaskRunner

from .fake_daemon import FakeDaemon, held, repo, run_info


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
def runner() -> Iterator[TaskRunner]:
    tasks = TaskRunner()
    yield tasks
    tasks.forget_all()
    tasks.wait_idle()


@pytest.fixture
def restores() -> list[str]:
    return []


@pytest.fixture
def dashboard(
    qtbot: QtBot, daemon: FakeDaemon, runner: TaskRunner, restores: list[str]
) -> Dashboard:
    def ask(path: str) -> RestoreRequest:
        restores.append(path)
        return RestoreRequest(path=path, at="2h", to="/tmp/restored")

    window = Dashboard(daemon, runner, ask_restore=ask)
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
    assert "epoch 2" in tab.log.toPlainText()


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


def test_backups_tab_backs_up_and_restores(
    qtbot: QtBot, dashboard: Dashboard, daemon: FakeDaemon, restores: list[str]
) -> None:
    daemon.repos = [repo("/src/project"), repo("/src/keys", held_back=[held(".env")])]
    dashboard.open_tab("backups")
    tab = dashboard.backups
    qtbot.waitUntil(lambda: tab.table.rowCount() == 2)
    assert cell(tab.table, 0, 2) == "5 min ago"
    tab.table.setCurrentCell(1, 0)
    assert tab.held.item(0).text() == ".env — secret"
    tab.backup_button.click()
    qtbot.waitUntil(lambda: daemon.called("backup_now") == [("/src/keys",)])
    tab.table.setCurrentCell(0, 0)
    tab.restore_button.click()
    assert restores == ["/src/project"]
    qtbot.waitUntil(lambda: len(daemon.called("backup_restore")) == 1)
    (request,) = daemon.called("backup_restore")[0]
    assert (request.path, request.at, request.to) == ("/src/project", "2h", "/tmp/restored")
    qtbot.waitUntil(lambda: "restored 3 files" in tab.message.text())


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
