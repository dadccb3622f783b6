"""Dashboard tab: experiment runs, with params, latest metrics, a plot, the log (followed
live while the run runs, see log_follow.py), and approve / retry / cancel."""

from __future__ import annotations

import html
import json
from functools import partial

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labmind.daemon.protocol import RunDetail, RunInfo

from .daemon_api import DaemonApi
from .empty_state import EmptyState
from .log_follow import LogFollower
from .metrics_plot import MetricsPlot
from .row_table import row_table
from .tasks import TaskRunner

EMPTY = "No experiments yet — labmind exp submit spec.yaml"
COLUMNS = ("Run", "Name", "Status", "Attempt", "Params")
ACTIONS = {
    "approve": ("needs_approval",),
    "retry": ("failed", "cancelled"),
    "cancel": ("queued", "running", "needs_approval"),
}


def params_text(params: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def latest_metrics(metrics: dict[str, list[float]]) -> str:
    return "  ".join(
        f"{name} {values[-1]:.4g}" for name, values in sorted(metrics.items()) if values
    )


class ExperimentsTab(QWidget):
    def __init__(self, api: DaemonApi, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self.runs: list[RunInfo] = []
        self.detail: RunDetail | None = None
        self._wanted: str | None = None

        self.table = row_table(COLUMNS, self)
        self.table.setWordWrap(False)
        self.table.currentCellChanged.connect(lambda row, *_: self._select(row))

        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plot = MetricsPlot(self)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setFont(QFont("monospace"))
        self.follower = LogFollower(api, runner, self.log, self)
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for action in ACTIONS:
            button = QPushButton(action.capitalize(), self)
            button.setEnabled(False)
            button.clicked.connect(partial(self.act, action))
            self.buttons[action] = button
            row.addWidget(button)
        row.addStretch(1)
        self.message = QLabel("", self)
        row.addWidget(self.message)

        side = QWidget(self)
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.summary)
        side_layout.addLayout(row)
        side_layout.addWidget(self.plot, 2)
        side_layout.addWidget(QLabel("Log", self))
        side_layout.addWidget(self.log, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.table)
        splitter.addWidget(side)
        splitter.setSizes([420, 560])
        self.empty = EmptyState(splitter, EMPTY, self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)

    def refresh(self) -> None:
        self._runner.submit(self._api.exp_runs, self._loaded, self._failed)

    def show_run(self, run_id: str | None) -> None:
        self._wanted = run_id
        self.refresh()

    def act(self, action: str) -> None:
        run = self.current_run()
        if run is None:
            return
        self.message.setText(f"{action}…")
        self._runner.submit(
            partial(self._api.exp_action, run.id, action),
            lambda info: self._acted(action, info),
            self._failed,
        )

    def current_run(self) -> RunInfo | None:
        row = self.table.currentRow()
        return self.runs[row] if 0 <= row < len(self.runs) else None

    def _acted(self, action: str, info: RunInfo) -> None:
        self.message.setText(f"{action}: run {info.id} is {info.status.replace('_', ' ')}")
        self._wanted = info.id
        self.refresh()

    def _failed(self, error: Exception) -> None:
        self.message.setText(str(error))

    def _loaded(self, runs: list[RunInfo]) -> None:
        current = self.current_run()
        keep = self._wanted or (current.id if current is not None else None)
        self._wanted = None
        self.runs = sorted(runs, key=lambda r: r.submitted_at, reverse=True)
        self.empty.set_empty(not self.runs)
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            status = run.status.replace("_", " ") + (f" ({run.failure})" if run.failure else "")
            cells = (
                run.id,
                run.name,
                status,
                str(run.attempt),
                params_text(run.params),
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)
        if not self.runs:
            self.follower.stop()
            return
        rows = [i for i, run in enumerate(self.runs) if keep and run.id.startswith(keep)]
        target = rows[0] if rows else 0
        self.table.setCurrentCell(target, 0)
        self._select(target)

    def _select(self, row: int) -> None:
        run = self.runs[row] if 0 <= row < len(self.runs) else None
        for action, statuses in ACTIONS.items():
            self.buttons[action].setEnabled(run is not None and run.status in statuses)
        if run is None:
            return
        self.follower.show(run)
        self._runner.submit(partial(self._api.exp_run, run.id), self._detail_loaded, self._failed)

    def _detail_loaded(self, detail: RunDetail) -> None:
        current = self.current_run()
        if current is None or current.id != detail.run.id:
            return
        self.detail = detail
        run = detail.run
        lines = [
            f"<b>{html.escape(run.name)}</b> · {run.id} · <b>{run.status.replace('_', ' ')}</b>"
            f" · attempt {run.attempt}"
            + (f" · exit {run.exit_code}" if run.exit_code is not None else ""),
            f"params: {html.escape(params_text(run.params)) or '—'}",
            f"latest: {latest_metrics(detail.metrics) or '—'}",
        ]
        if run.failure or run.summary:
            lines.append(html.escape(f"failure: {run.failure or ''} {run.summary or ''}".strip()))
        if detail.proposal:
            lines.append(html.escape(f"proposal: {json.dumps(detail.proposal)}"))
        self.summary.setText("<br>".join(lines))
        self.plot.set_metrics(detail.metrics)
