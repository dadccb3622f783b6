"""The installed Qt binding must keep Python's reference counts: PySide6 6.12.0 on
Python 3.11 returns None from every void method without a reference, and a GUI process
dies ("deallocating None") after a few thousand calls."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

CALLS = 2000


def test_void_methods_keep_none_alive(qtbot: QtBot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    timer = QTimer()
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        label.setText("x")
        timer.start(1000)
        timer.stop()
        QApplication.processEvents()
    assert sys.getrefcount(None) - before > -CALLS // 2
