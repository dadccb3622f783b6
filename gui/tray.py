"""The tray icon and its menu: Search…, Dashboard…, Recent alerts, Experiments, Backups,
Pause/Resume indexing and backup, Settings…, Open data folder, Quit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from labmind.daemon.protocol import BackupOutcome, BackupStatus, Event, RunInfo, StatusInfo

from .daemon_api import DaemonApi
from .icons import status_icon
from .tasks import TaskRunner
from .time_text import ago
from .tray_state import TrayMode, TrayState

MENU_RUNS = 8
PAUSE_LABEL = "Pause indexing and backup"
RESUME_LABEL = "Resume indexing and backup"


def display_chord(chord: str) -> str:
    """``<ctrl>+<alt>+k`` as people write it: ``Ctrl+Alt+K``."""
    names = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "cmd": "Super"}
    parts = [part.strip("<>") for part in chord.split("+") if part]
    return "+".join(names.get(p, p.upper() if len(p) == 1 else p.capitalize()) for p in parts)


@dataclass
class TrayActions:
    """What the menu items do; the app wires them to its windows."""

    search: Callable[[], None]
    dashboard: Callable[[str, str | None], None]
    open_data_folder: Callable[[], None]
    quit: Callable[[], None]


class Tray:
    def __init__(
        self,
        api: DaemonApi,
        runner: TaskRunner,
        actions: TrayActions,
        *,
        hotkey: str = "",
        parent: QWidget | None = None,
    ) -> None:
        self._api = api
        self._runner = runner
        self._actions = actions
        self.state = TrayState()
        self.icon = QSystemTrayIcon(parent)
        self.menu = QMenu(parent)
        self.search_action = self.menu.addAction("Search…", actions.search)
        self.set_hotkey(hotkey)
        self.menu.addAction("Dashboard…", lambda: actions.dashboard("experiments", None))
        self.menu.addSeparator()
        self.alerts_menu = self.menu.addMenu("Recent alerts")
        self.alerts_menu.aboutToShow.connect(self.state.mark_seen)
        self.alerts_menu.aboutToShow.connect(self._repaint)
        self.runs_menu = self.menu.addMenu("Experiments")
        self.backups_menu = self.menu.addMenu("Backups")
        self.pause_action = self.menu.addAction(PAUSE_LABEL, self._toggle_pause)
        self.menu.addSeparator()
        self.menu.addAction("Settings…", lambda: actions.dashboard("settings", None))
        self.menu.addAction("Open data folder", actions.open_data_folder)
        self.menu.addSeparator()
        self.menu.addAction("Quit", actions.quit)
        self._runs: list[RunInfo] = []
        self._backups: BackupStatus | None = None
        self._fill_alerts()
        self._fill_runs()
        self._fill_backups()
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self._repaint()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def set_hotkey(self, chord: str) -> None:
        label = "Search…"
        if chord:
            label += f"\t{display_chord(chord)}"
        self.search_action.setText(label)

    # -- daemon state ----------------------------------------------------------------------

    def went_offline(self, reason: str) -> None:
        self.state.go_offline(reason)
        self._repaint()

    def came_online(self) -> None:
        self.state.online = True
        self.refresh()

    def refresh(self) -> None:
        self._runner.submit(self._api.status, self._status, self._ignore)
        self._runner.submit(self._api.exp_runs, self._runs_loaded, self._ignore)
        self._runner.submit(self._api.backup_status, self._backups_loaded, self._ignore)

    def on_event(self, event: Event) -> None:
        if self.state.apply_event(event):
            self._fill_alerts()
            self._repaint()
        if event.type == "experiment":
            self._runner.submit(self._api.exp_runs, self._runs_loaded, self._ignore)
        elif event.type in ("backup", "backup_paused"):
            self._runner.submit(self._api.backup_status, self._backups_loaded, self._ignore)

    def _status(self, status: StatusInfo) -> None:
        self.state.apply_status(status)
        self._repaint()

    def _runs_loaded(self, runs: list[RunInfo]) -> None:
        self._runs = sorted(runs, key=lambda r: r.submitted_at, reverse=True)
        self._fill_runs()

    def _backups_loaded(self, status: BackupStatus) -> None:
        self._backups = status
        self.state.backup_paused = status.paused
        self._fill_backups()
        self._repaint()

    def _ignore(self, _error: Exception) -> None:
        return

    # -- menu ------------------------------------------------------------------------------

    def _fill_alerts(self) -> None:
        self.alerts_menu.clear()
        if not self.state.alerts:
            self._disabled(self.alerts_menu, "No alerts")
            return
        for alert in reversed(self.state.alerts):
            text = alert.text if len(alert.text) <= 80 else alert.text[:79] + "…"
            self.alerts_menu.addAction(
                f"{ago(alert.time)} · {text}",
                partial(self._actions.dashboard, "experiments", alert.run),
            )

    def _fill_runs(self) -> None:
        self.runs_menu.clear()
        self.runs_menu.addAction(
            "Open experiments…", lambda: self._actions.dashboard("experiments", None)
        )
        self.runs_menu.addSeparator()
        if not self._runs:
            self._disabled(self.runs_menu, "No experiments yet")
            return
        for run in self._runs[:MENU_RUNS]:
            self.runs_menu.addAction(
                f"{run.name} — {run.status.replace('_', ' ')}",
                partial(self._actions.dashboard, "experiments", run.id),
            )

    def _fill_backups(self) -> None:
        self.backups_menu.clear()
        status = self._backups
        if status is None or not status.repos:
            self._disabled(self.backups_menu, "No backed-up folders yet")
        else:
            for repo in status.repos:
                mark = " ⚠" if repo.error or repo.held_back else ""
                self._disabled(
                    self.backups_menu,
                    f"{repo.path} — last backup {ago(repo.last_snapshot_at)}{mark}",
                )
        self.backups_menu.addSeparator()
        self.backups_menu.addAction("Back up now", self._backup_now)
        self.backups_menu.addAction(
            "Open backups…", lambda: self._actions.dashboard("backups", None)
        )

    def _disabled(self, menu: QMenu, text: str) -> QAction:
        action = menu.addAction(text)
        action.setEnabled(False)
        return action

    def _backup_now(self) -> None:
        self._runner.submit(self._api.backup_now, self._backed_up, self._ignore)

    def _backed_up(self, _outcomes: list[BackupOutcome]) -> None:
        self._runner.submit(self._api.backup_status, self._backups_loaded, self._ignore)

    def _toggle_pause(self) -> None:
        """Pause indexing and backups, or resume both when either is paused."""
        paused = not self.state.paused

        def work() -> None:
            self._api.index_pause(paused)
            self._api.backup_pause(paused)

        self._runner.submit(work, lambda _none: self._set_paused(paused), self._pause_failed)

    def _set_paused(self, paused: bool) -> None:
        self.state.index_paused = paused
        self.state.backup_paused = paused
        self._repaint()

    def _pause_failed(self, _error: Exception) -> None:
        self.refresh()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self._actions.search()

    def _repaint(self) -> None:
        state = self.state
        self.icon.setIcon(status_icon(state.mode, state.progress))
        self.icon.setToolTip(state.tooltip())
        self.pause_action.setText(RESUME_LABEL if state.paused else PAUSE_LABEL)
        self.pause_action.setEnabled(state.online)
        title = "Recent alerts" + (f" ({state.unseen})" if state.unseen else "")
        self.alerts_menu.setTitle(title)

    @property
    def mode(self) -> TrayMode:
        return self.state.mode
