"""Dashboard tab: backup status per folder, files held back, Back up now and Restore (a
picker of the folder's snapshots, see restore_dialog.py)."""

from __future__ import annotations

from functools import partial

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labmind.daemon.protocol import BackupOutcome, BackupStatus, RestoreResult

from .daemon_api import DaemonApi
from .empty_state import EmptyState
from .restore_dialog import RestoreDialog
from .row_table import row_table
from .tasks import TaskRunner
from .time_text import ago

EMPTY = "No backed-up folders yet — labmind watch add PATH (every watched folder is backed up)"
COLUMNS = ("Folder", "Branch", "Last backup", "Changed", "Unpushed", "Push", "Problem")


class BackupsTab(QWidget):
    def __init__(self, api: DaemonApi, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self.status: BackupStatus | None = None
        self.restore_dialog: RestoreDialog | None = None
        self.state = QLabel("", self)
        self.table = row_table(COLUMNS, self)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_held(row))
        self.held = QListWidget(self)
        self.backup_button = QPushButton("Back up now", self)
        self.backup_button.clicked.connect(self.backup_now)
        self.restore_button = QPushButton("Restore…", self)
        self.restore_button.clicked.connect(self.restore)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        content = QWidget(self)
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.table, 2)
        inner.addWidget(QLabel("Held back (never put in a snapshot):", self))
        inner.addWidget(self.held, 1)
        self.empty = EmptyState(content, EMPTY, self)
        buttons = QHBoxLayout()
        buttons.addWidget(self.state, 1)
        buttons.addWidget(self.backup_button)
        buttons.addWidget(self.restore_button)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.empty, 1)
        layout.addWidget(self.message)

    def refresh(self) -> None:
        self._runner.submit(self._api.backup_status, self._loaded, self._failed)

    def selected_path(self) -> str | None:
        row = self.table.currentRow()
        if self.status is None or not 0 <= row < len(self.status.repos):
            return None
        return self.status.repos[row].path

    def backup_now(self) -> None:
        path = self.selected_path()
        self.message.setText(f"backing up {path or 'every folder'}…")
        self._runner.submit(partial(self._api.backup_now, path), self._backed_up, self._failed)

    def restore(self) -> RestoreDialog | None:
        """Open the snapshot picker for the selected folder (non-blocking)."""
        path = self.selected_path()
        if path is None:
            self.message.setText("pick a folder to restore")
            return None
        if self.restore_dialog is not None:
            self.restore_dialog.close()
        dialog = RestoreDialog(self._api, self._runner, path, self)
        dialog.restored.connect(self._restored)
        dialog.finished.connect(lambda _code: self._dialog_closed(dialog))
        self.restore_dialog = dialog
        dialog.open()
        dialog.load()
        return dialog

    def _dialog_closed(self, dialog: RestoreDialog) -> None:
        if self.restore_dialog is dialog:
            self.restore_dialog = None
        dialog.deleteLater()

    def _backed_up(self, outcomes: list[BackupOutcome]) -> None:
        made = sum(1 for o in outcomes if o.created)
        errors = [f"{o.path}: {o.error}" for o in outcomes if o.error]
        self.message.setText(
            "; ".join(errors) if errors else f"{made} new snapshot(s), {len(outcomes)} folder(s)"
        )
        self.refresh()

    def _restored(self, result: RestoreResult) -> None:
        self.message.setText(
            f"restored {result.files} files of {result.commit[:10]} to {result.target}"
        )

    def _failed(self, error: Exception) -> None:
        self.message.setText(str(error))

    def _loaded(self, status: BackupStatus) -> None:
        self.status = status
        flags = [
            "on" if status.enabled else "off",
            "paused" if status.paused else "",
            "push on" if status.push else "push off",
        ]
        self.state.setText("Backups: " + ", ".join(f for f in flags if f))
        self.empty.set_empty(not status.repos)
        self.table.setRowCount(len(status.repos))
        for row, repo in enumerate(status.repos):
            push = ", ".join(f"{p.branch}: {p.status}" for p in repo.pushes) or "—"
            cells = (
                repo.path,
                repo.branch or "—",
                ago(repo.last_snapshot_at),
                str(repo.files_changed),
                str(repo.unpushed),
                push,
                repo.error or "",
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        if status.repos:
            self.table.setCurrentCell(max(0, self.table.currentRow()), 0)
            self._show_held(self.table.currentRow())

    def _show_held(self, row: int) -> None:
        self.held.clear()
        if self.status is None or not 0 <= row < len(self.status.repos):
            return
        repo = self.status.repos[row]
        for item in repo.held_back:
            self.held.addItem(f"{item.path} — {item.reason}")
        if not repo.held_back:
            self.held.addItem("nothing held back")
