"""The dashboard window: experiments, outliers, backups, indexing and settings tabs."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QTabWidget, QVBoxLayout, QWidget

from labmind.daemon.protocol import Event

from .backups_tab import BackupsTab
from .daemon_api import DaemonApi
from .experiments_tab import ExperimentsTab
from .indexing_tab import IndexingTab
from .outliers_tab import OutliersTab
from .settings_tab import SettingsTab
from .tasks import TaskRunner

TABS = ("experiments", "outliers", "backups", "indexing", "settings")
EVENT_TABS = {
    "experiment": ("experiments", "outliers"),
    "backup": ("backups",),
    "backup_paused": ("backups",),
    "progress": ("indexing",),
    "index_paused": ("indexing",),
    "embedded": ("indexing",),
    "indexed": ("indexing",),
    "watch": ("indexing", "backups"),
}
REFRESH_MS = 400


class Dashboard(QWidget):
    def __init__(self, api: DaemonApi, runner: TaskRunner) -> None:
        super().__init__(None)
        self.setWindowTitle("labmind")
        self.resize(1100, 700)
        self.banner = QLabel("", self)
        self.banner.setStyleSheet("background:#fef3c7;color:#92400e;padding:6px;")
        self.banner.hide()
        self.experiments = ExperimentsTab(api, runner, self)
        self.outliers = OutliersTab(api, runner, self)
        self.backups = BackupsTab(api, runner, self)
        self.indexing = IndexingTab(api, runner, self)
        self.settings = SettingsTab(api, runner, self)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.experiments, "Experiments")
        self.tabs.addTab(self.outliers, "Outliers")
        self.tabs.addTab(self.backups, "Backups")
        self.tabs.addTab(self.indexing, "Indexing")
        self.tabs.addTab(self.settings, "Settings")
        self.tabs.currentChanged.connect(lambda _index: self.refresh_current())
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        self._stale: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh_stale)

    def tab(self, name: str) -> QWidget:
        widget = self.tabs.widget(TABS.index(name))
        assert widget is not None
        return widget

    def current_name(self) -> str:
        return TABS[self.tabs.currentIndex()]

    def open_tab(self, name: str, run_id: str | None = None) -> None:
        """Show the window on tab `name` (and run `run_id` in the experiments tab)."""
        self.tabs.blockSignals(True)
        self.tabs.setCurrentIndex(TABS.index(name))
        self.tabs.blockSignals(False)
        if name == "experiments" and run_id is not None:
            self.experiments.show_run(run_id)
        else:
            self.refresh_current()
        self.show()
        self.raise_()
        self.activateWindow()

    def refresh_current(self) -> None:
        self._refresh(self.current_name())

    def set_offline(self, reason: str) -> None:
        self.banner.setText(f"{reason} — start it with `labmind start`; reconnecting…")
        self.banner.show()

    def set_online(self) -> None:
        self.banner.hide()
        if self.isVisible():
            self.refresh_current()

    def on_event(self, event: Event) -> None:
        """Refresh the tabs an event touches (coalesced, and only the one in view)."""
        self._stale.update(EVENT_TABS.get(event.type, ()))
        if self.isVisible() and self.current_name() in self._stale and not self._timer.isActive():
            self._timer.start()

    def _refresh_stale(self) -> None:
        name = self.current_name()
        if name in self._stale:
            self._stale.discard(name)
            self._refresh(name)

    def _refresh(self, name: str) -> None:
        widget = self.tab(name)
        refresh = getattr(widget, "refresh", None)
        if callable(refresh):
            refresh()
