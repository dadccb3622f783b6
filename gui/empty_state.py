"""A panel that shows a deliberate message (what to do next) until it has content."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget


class EmptyState(QStackedWidget):
    def __init__(self, content: QWidget, message: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = QLabel(message, self)
        self.message.setObjectName("empty")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #6b7280; font-size: 15px; padding: 24px;")
        self.addWidget(self.message)
        self.addWidget(content)

    def set_empty(self, empty: bool, message: str | None = None) -> None:
        if message is not None:
            self.message.setText(message)
        self.setCurrentIndex(0 if empty else 1)

    @property
    def is_empty(self) -> bool:
        return self.currentIndex() == 0
