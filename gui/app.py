"""`labmind gui`: the tray process. Builds the windows (hidden), links to the daemon,
and serves the control socket that `labmind popup --toggle` talks to."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication

from labmind.daemon.client import DaemonClient, Paths
from labmind.daemon.protocol import ConfigView, Event

from .connection import DaemonLink
from .control_server import SOCKET_NAME, ControlServer, GuiAlreadyRunning, take_lock
from .conversation import ConversationView
from .daemon_api import ApiFactory, DaemonApi
from .dashboard import Dashboard
from .editor import DetachedLauncher, Launcher
from .hotkey import HotkeyBackend, HotkeyUnavailable, choose_backend
from .popup import SearchPopup
from .tasks import TaskRunner
from .tray import Tray, TrayActions
from .tray_host import TrayHost, default_host

log = logging.getLogger("labmind.gui")


class LabmindGui(QObject):
    """Every window of the GUI process, wired to one daemon link."""

    hotkey_pressed = Signal()

    def __init__(
        self,
        paths: Paths,
        factory: ApiFactory,
        *,
        launcher: Launcher | None = None,
        host: TrayHost | None = None,
        use_tray: bool = True,
        hotkey: HotkeyBackend | None = None,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.api: DaemonApi = factory()
        self.launcher = launcher or DetachedLauncher()
        self.runner = TaskRunner(self)
        self.link = DaemonLink(factory, self)
        self.conversation = ConversationView(self.api, self.runner)
        self.dashboard = Dashboard(self.api, self.runner)
        self.popup = SearchPopup(
            self.api,
            self.runner,
            self.launcher,
            open_chat=self.conversation.open_chat,
            open_run=lambda run_id: self.dashboard.open_tab("experiments", run_id),
        )
        self.popup.ensurePolished()
        self.tray: Tray | None = None
        self.tray_available: bool | None = None
        self._host = host if host is not None else default_host() if use_tray else None
        self.control = ControlServer(paths.runtime_dir, self.command, self)
        self.hotkey = hotkey
        self.hotkey_chord: str | None = None
        self.hotkey_pressed.connect(self.popup.toggle)
        self.link.connected.connect(self._online)
        self.link.disconnected.connect(self._offline)
        self.link.event_received.connect(self._event)
        self.popup.set_offline(self.link.reason)
        self.dashboard.set_offline(self.link.reason)

    def start(self) -> None:
        self.control.listen()
        self.link.start()
        if self._host is None:
            self.tray_available = False
        else:
            self._host.when_ready(self._tray_ready)

    def stop(self) -> None:
        if self.hotkey is not None:
            self.hotkey.stop()
        self.link.stop()
        self.control.close()
        if self.tray is not None:
            self.tray.hide()
        self.runner.forget_all()
        self.runner.wait_idle(2000)
        self.api.close()

    def command(self, name: str) -> None:
        if name == "toggle":
            self.popup.toggle()
        elif name == "show":
            self.popup.present()
        elif name == "hide":
            self.popup.hide()
        elif name == "dashboard":
            self.dashboard.open_tab("experiments")

    def open_data_folder(self) -> None:
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        self.launcher.launch([opener, str(self.paths.data_dir)])

    def _tray_ready(self, available: bool) -> None:
        from PySide6.QtWidgets import QSystemTrayIcon

        if not available or not QSystemTrayIcon.isSystemTrayAvailable():
            self.tray_available = False
            log.warning(
                "no system tray available; running without one "
                "(labmind popup --toggle and the dashboard still work)"
            )
            return
        actions = TrayActions(
            search=self.popup.present,
            dashboard=self.dashboard.open_tab,
            open_data_folder=self.open_data_folder,
            quit=QApplication.quit,
        )
        self.tray = Tray(self.api, self.runner, actions)
        if self.link.online:
            self.tray.came_online()
        else:
            self.tray.went_offline(self.link.reason)
        self.tray.show()
        self.tray_available = True
        log.info("tray icon shown")

    def _online(self) -> None:
        log.info("connected to the labmind daemon")
        self.popup.set_online()
        self.dashboard.set_online()
        if self.tray is not None:
            self.tray.came_online()
        self.runner.submit(self.api.config, self._config_loaded, lambda _error: None)

    def _offline(self, reason: str) -> None:
        self.popup.set_offline(reason)
        self.dashboard.set_offline(reason)
        if self.tray is not None:
            self.tray.went_offline(reason)

    def _event(self, event: Event) -> None:
        if self.tray is not None:
            self.tray.on_event(event)
        self.dashboard.on_event(event)

    def _config_loaded(self, view: ConfigView) -> None:
        gui = view.values.get("gui")
        chord = str(gui.get("hotkey", "")) if isinstance(gui, dict) else ""
        if self.tray is not None:
            self.tray.set_hotkey(chord)
        if chord and chord != self.hotkey_chord:
            self._listen_for(chord)

    def _listen_for(self, chord: str) -> None:
        backend = self.hotkey if self.hotkey is not None else choose_backend()
        self.hotkey = backend
        try:
            backend.start(chord, self.hotkey_pressed.emit)
        except HotkeyUnavailable as exc:
            log.warning("no global hotkey: %s", exc)
            return
        self.hotkey_chord = chord
        log.info("hotkey %s shows the search popup (%s)", chord, backend.name)


def _ask_running_gui(paths: Paths, command: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2.0)
            conn.connect(str(paths.runtime_dir / SOCKET_NAME))
            conn.sendall(command.encode() + b"\n")
            return conn.recv(64).startswith(b"ok")
    except OSError:
        return False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="labmind gui", description="The labmind tray.")
    parser.add_argument("--show-popup", action="store_true", help="Show the search popup.")
    parser.add_argument("--no-tray", action="store_true", help="Run without a tray icon.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    paths = Paths.resolve()
    paths.ensure_dirs()
    try:
        lock = take_lock(paths.runtime_dir)
    except GuiAlreadyRunning as exc:
        if args.show_popup and _ask_running_gui(paths, "show"):
            return 0
        print(f"labmind: {exc}", file=sys.stderr)
        return 0
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("labmind")
    app.setDesktopFileName("labmind")
    app.setQuitOnLastWindowClosed(False)
    gui = LabmindGui(paths, lambda: DaemonClient(paths), use_tray=not args.no_tray)
    gui.start()
    if args.show_popup:
        gui.popup.present()
    try:
        return app.exec()
    finally:
        gui.stop()
        lock.close()
