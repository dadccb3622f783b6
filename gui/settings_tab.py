"""Dashboard tab: the daemon's settings, edited in place and validated by the daemon."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labmind.daemon.protocol import ConfigView

from .daemon_api import DaemonApi
from .tasks import TaskRunner


def flatten(values: dict[str, Any]) -> list[tuple[str, Any]]:
    """``section.key`` pairs of the settable keys, in file order."""
    rows: list[tuple[str, Any]] = []
    for section, body in values.items():
        if isinstance(body, dict):
            rows += [(f"{section}.{name}", value) for name, value in body.items()]
    return rows


def as_text(value: Any) -> str:
    """A value as `labmind config set` takes it."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


class SettingsTab(QWidget):
    def __init__(self, api: DaemonApi, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self._original: dict[str, str] = {}
        self._queue: list[tuple[str, str]] = []
        self.file = QLabel("", self)
        self.table = QTableWidget(0, 2, self)
        self.table.setHorizontalHeaderLabels(("Setting", "Value"))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.error = QLabel("", self)
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b91c1c;")
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.clicked.connect(self.apply)
        self.revert_button = QPushButton("Revert", self)
        self.revert_button.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        buttons.addWidget(self.error, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.file)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

    def refresh(self) -> None:
        self._runner.submit(self._api.config, self._loaded, self._failed)

    def set_value(self, key: str, text: str) -> None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.text() == key:
                cell = self.table.item(row, 1)
                if cell is not None:
                    cell.setText(text)
                return
        raise KeyError(key)

    def changes(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for row in range(self.table.rowCount()):
            key_item, value_item = self.table.item(row, 0), self.table.item(row, 1)
            if key_item is None or value_item is None:
                continue
            key, text = key_item.text(), value_item.text()
            if self._original.get(key) != text:
                found.append((key, text))
        return found

    def apply(self) -> None:
        self._queue = self.changes()
        if not self._queue:
            self.error.setText("")
            return
        self.apply_button.setEnabled(False)
        self._send_next()

    def _send_next(self) -> None:
        if not self._queue:
            self.apply_button.setEnabled(True)
            self.error.setText("")
            self.refresh()
            return
        key, text = self._queue.pop(0)
        self._runner.submit(
            lambda: self._api.config_set(key, text), lambda _view: self._send_next(), self._failed
        )

    def _failed(self, error: Exception) -> None:
        self._queue = []
        self.apply_button.setEnabled(True)
        self.error.setText(" ".join(str(error).split()))

    def _loaded(self, view: ConfigView) -> None:
        self.file.setText(f"Settings from {view.file}; the daemon checks each change.")
        rows = flatten(view.values)
        self._original = {key: as_text(value) for key, value in rows}
        self.table.setRowCount(len(rows))
        for row, (key, value) in enumerate(rows):
            key_item = QTableWidgetItem(key)
            key_item.setFlags(key_item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(row, 0, key_item)
            value_item = QTableWidgetItem(as_text(value))
            if isinstance(value, dict):
                value_item.setFlags(value_item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(row, 1, value_item)
        self.table.resizeColumnToContents(0)
