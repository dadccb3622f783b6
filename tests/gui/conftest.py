"""GUI tests: widgets render offscreen unless a test picks a display; the e2e `lab`
fixtures give them a real daemon. Without Qt (the `gui` extra) the Qt tests are not
collected."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import lab, lexical_lab  # noqa: F401 - a real daemon for GUI tests

if TYPE_CHECKING:
    from labmind.gui.tasks import TaskRunner

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

QT_TESTS = [
    "test_dashboard.py",
    "test_dashboard_real_daemon.py",
    "test_gui_app.py",
    "test_popup.py",
    "test_qt_binding.py",
    "test_real_daemon.py",
    "test_tray_dbus.py",
    "test_tray_pause.py",
    "test_tray_state.py",
]
collect_ignore = [] if importlib.util.find_spec("PySide6") else QT_TESTS


@pytest.fixture
def runner(qtbot: Any) -> Iterator[TaskRunner]:
    """The GUI's background task runner; its tasks are forgotten and waited for after."""
    from labmind.gui.tasks import TaskRunner

    tasks = TaskRunner()
    yield tasks
    tasks.forget_all()
    tasks.wait_idle()
