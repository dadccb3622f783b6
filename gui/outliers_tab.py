"""Dashboard tab: the samples a run's tracker flagged, and its loss spikes."""

from __future__ import annotations

from functools import partial

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labmind.daemon.protocol import RunInfo, RunOutliers

from .daemon_api import DaemonApi
from .empty_state import EmptyState
from .tasks import TaskRunner

NO_RUNS = "No runs yet — labmind exp submit spec.yaml"
NO_FLAGS = (
    "No flagged samples for this run — wrap the dataset in labmind.trainers.track."
    "IndexedDataset and call SampleTracker in the training loop"
)
COLUMNS = ("Sample", "Score", "Reasons", "Label", "Predicted", "Step")
LIMIT = 200


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class OutliersTab(QWidget):
    def __init__(self, api: DaemonApi, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self.report: RunOutliers | None = None
        self.run_picker = QComboBox(self)
        self.run_picker.currentIndexChanged.connect(self._picked)
        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        content = QWidget(self)
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.summary)
        inner.addWidget(self.table, 1)
        self.empty = EmptyState(content, NO_RUNS, self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Run:", self))
        top.addWidget(self.run_picker, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.empty, 1)
        self.empty.set_empty(True)

    def refresh(self) -> None:
        self._runner.submit(self._api.exp_runs, self._runs_loaded, self._failed)

    def _failed(self, error: Exception) -> None:
        self.summary.setText(str(error))

    def _runs_loaded(self, runs: list[RunInfo]) -> None:
        current = self.run_picker.currentData()
        ordered = sorted(runs, key=lambda r: r.submitted_at, reverse=True)
        self.run_picker.blockSignals(True)
        self.run_picker.clear()
        for run in ordered:
            self.run_picker.addItem(f"{run.id} · {run.name} · {run.status}", run.id)
        self.run_picker.blockSignals(False)
        if not ordered:
            self.empty.set_empty(True, NO_RUNS)
            return
        index = max(0, self.run_picker.findData(current))
        self.run_picker.setCurrentIndex(index)
        self._picked(index)

    def _picked(self, index: int) -> None:
        run_id = self.run_picker.itemData(index)
        if not isinstance(run_id, str):
            return
        self._runner.submit(
            partial(self._api.exp_outliers, run_id, LIMIT), self._loaded, self._failed
        )

    def _loaded(self, report: RunOutliers) -> None:
        if self.run_picker.currentData() != report.run:
            return
        self.report = report
        if not report.flagged and not report.spike_count:
            self.empty.set_empty(True, NO_FLAGS)
            return
        self.empty.set_empty(False)
        reasons = ", ".join(f"{name} {count}" for name, count in sorted(report.reasons.items()))
        self.summary.setText(
            f"{report.flagged} flagged ({reasons or 'none'}) · {report.spike_count} loss spikes"
            f" · attempt {report.attempt}"
        )
        self.table.setRowCount(len(report.samples))
        for row, sample in enumerate(report.samples):
            cells = (
                sample.sample,
                sample.score,
                ", ".join(sample.reasons),
                sample.label,
                sample.predicted,
                sample.step,
            )
            for column, value in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(_cell(value)))
