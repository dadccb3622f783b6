"""The restore dialog: a folder's snapshots (newest first), the one to restore, and a new or
empty folder to restore it into. Loading and restoring run off the GUI thread; the
daemon's one-line refusal (a folder that is not empty, say) shows in the dialog."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labmind.daemon.protocol import RestoreRequest, RestoreResult, SnapshotEntry

from .daemon_api import DaemonApi
from .row_table import row_table
from .tasks import TaskRunner
from .time_text import ago

SNAPSHOTS_SHOWN = 200
SHORT = 10
COLUMNS = ("When", "Snapshot", "Changes", "Pushed")


def when_text(when: float) -> str:
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(when))} ({ago(when)})"


def changes_text(message: str) -> str:
    """``labmind snapshot of main: 4 files changed`` → ``4 files changed``."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first.split(": ", 1)[1] if ": " in first else first


def default_target(path: str, commit: str) -> str:
    """A new folder beside the backed-up one, named for the snapshot."""
    folder = Path(path)
    return str(folder.parent / f"{folder.name}-restored-{commit[:SHORT]}")


class RestoreDialog(QDialog):
    restored = Signal(object)
    """A `RestoreResult`, once a restore is done."""

    def __init__(
        self, api: DaemonApi, runner: TaskRunner, path: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self.path = path
        self.entries: list[SnapshotEntry] = []
        self.outcome: RestoreResult | None = None
        self._target_edited = False
        self.setWindowTitle(f"Restore {Path(path).name}")
        self.resize(720, 460)

        self.table = row_table(COLUMNS, self)
        self.table.currentCellChanged.connect(lambda row, *_: self._picked(row))
        self.target = QLineEdit(self)
        self.target.setPlaceholderText("a new or empty folder")
        self.target.textEdited.connect(self._edited)
        self.browse_button = QPushButton("Browse…", self)
        self.browse_button.clicked.connect(self.browse)
        self.status = QLabel("loading snapshots…", self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.restore_button = QPushButton("Restore", self)
        self.restore_button.setDefault(True)
        self.restore_button.setEnabled(False)
        self.restore_button.clicked.connect(self.restore)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.reject)

        target_row = QHBoxLayout()
        target_row.addWidget(QLabel("Restore into:", self))
        target_row.addWidget(self.target, 1)
        target_row.addWidget(self.browse_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Snapshots of {path}, newest first:", self))
        layout.addWidget(self.table, 1)
        layout.addLayout(target_row)
        layout.addLayout(buttons)

    def load(self) -> None:
        self._runner.submit(
            partial(self._api.backup_log, self.path, None, SNAPSHOTS_SHOWN),
            self._loaded,
            self._load_failed,
            owner=self,
        )

    def selected(self) -> SnapshotEntry | None:
        row = self.table.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def browse(self) -> None:
        start = self.target.text().strip() or str(Path(self.path).parent)
        folder = QFileDialog.getExistingDirectory(
            self, "Restore into (a new or empty folder)", str(Path(start).parent)
        )
        if folder:
            self.target.setText(folder)
            self._target_edited = True

    def restore(self) -> None:
        entry = self.selected()
        target = self.target.text().strip()
        if entry is None:
            self.status.setText("pick a snapshot to restore")
            return
        if not target:
            self.status.setText("choose a new or empty folder to restore into")
            return
        request = RestoreRequest(path=self.path, at=entry.commit, to=target)
        self._busy(True)
        self.status.setText(f"restoring {entry.commit[:SHORT]} into {target}…")
        self._runner.submit(
            partial(self._api.backup_restore, request), self._restored, self._refused, owner=self
        )

    def _edited(self, _text: str) -> None:
        self._target_edited = True

    def _busy(self, busy: bool) -> None:
        self.restore_button.setEnabled(not busy and self.selected() is not None)
        self.table.setEnabled(not busy)
        self.target.setEnabled(not busy)
        self.browse_button.setEnabled(not busy)

    def _loaded(self, entries: list[SnapshotEntry]) -> None:
        self.entries = entries
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            cells = (
                when_text(entry.time),
                entry.commit[:SHORT],
                changes_text(entry.message),
                "yes" if entry.pushed else "no",
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        if not entries:
            self.status.setText(f"no snapshots of {self.path} yet; back it up first")
            return
        self.status.setText("pick a snapshot and a new or empty folder")
        self.table.setCurrentCell(0, 0)

    def _load_failed(self, error: Exception) -> None:
        self.status.setText(str(error))

    def _picked(self, row: int) -> None:
        entry = self.entries[row] if 0 <= row < len(self.entries) else None
        self.restore_button.setEnabled(entry is not None)
        if entry is not None and not self._target_edited:
            self.target.setText(default_target(self.path, entry.commit))

    def _restored(self, result: RestoreResult) -> None:
        self.outcome = result
        self._busy(False)
        self.status.setText(
            f"restored {result.files} files of {result.commit[:SHORT]} "
            f"({when_text(result.time)}) to {result.target}"
        )
        self.restored.emit(result)

    def _refused(self, error: Exception) -> None:
        self._busy(False)
        self.status.setText(str(error))
