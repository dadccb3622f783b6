"""Start labmind at login: systemd user units, XDG autostart, a LaunchAgent, a Windows
start-up script; and take them away again.

`Services` turns the platform and the user's folders into a plan (the files it writes
and the service-manager commands it runs); `install` and `uninstall` carry plans out
through the `Commands` seam. Uninstall removes only files that say labmind wrote them
(icons: only when they are byte for byte labmind's).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import service_files as files
from .paths import HOME_ENV
from .system_commands import CommandFailed, Commands

Kind = Literal["systemd", "autostart", "launchd", "windows"]
Role = Literal["daemon", "gui"]

UNITS: dict[Role, str] = {"daemon": "labmind-daemon.service", "gui": "labmind-gui.service"}
LABELS: dict[Role, str] = {"daemon": "dev.labmind.daemon", "gui": "dev.labmind.gui"}
AUTOSTART: dict[Role, str] = {"daemon": "labmind-daemon.desktop", "gui": "labmind-gui.desktop"}
LAUNCHER = "labmind.desktop"
STARTUP_SCRIPT = "labmind.cmd"
GRAPHICAL = "graphical-session.target"


class ServiceError(Exception):
    """Services cannot be installed here; one line that says why and what to do."""


@dataclass(frozen=True)
class FileSpec:
    path: Path
    data: bytes
    what: str

    def written_by_us(self) -> bool:
        """Whether the file on disk is one labmind wrote (text: the marker; else: same bytes)."""
        try:
            current = self.path.read_bytes()
        except OSError:
            return False
        if self.path.suffix == ".png" or self.path.suffix == ".svg":
            return current == self.data
        return files.MARKER.encode() in current


@dataclass
class Plan:
    kind: Kind
    write: list[FileSpec] = field(default_factory=list)
    remove: list[FileSpec] = field(default_factory=list)
    before: list[tuple[str, ...]] = field(default_factory=list)
    """Commands to run before the files change (stop what runs)."""
    after: list[tuple[str, ...]] = field(default_factory=list)
    """Commands to run after the files changed (reload, enable, start)."""
    start_daemon: bool = False
    """Start the daemon from here (autostart and Windows have no manager to ask)."""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    what: str
    path: Path
    state: str
    """``missing``, ``not labmind's``, or how the service manager sees it."""


@dataclass(frozen=True)
class Folders:
    home: Path
    config_home: Path
    data_home: Path
    appdata: Path | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Folders:
        home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
        config_home = env.get("XDG_CONFIG_HOME", "")
        data_home = env.get("XDG_DATA_HOME", "")
        return cls(
            home=home,
            config_home=Path(config_home) if config_home else home / ".config",
            data_home=Path(data_home) if data_home else home / ".local" / "share",
            appdata=Path(env["APPDATA"]) if env.get("APPDATA") else None,
        )


class Services:
    def __init__(
        self,
        commands: Commands,
        labmind: Sequence[str],
        *,
        env: Mapping[str, str] = os.environ,
        platform: str = sys.platform,
        uid: int | None = None,
    ) -> None:
        self.commands = commands
        self.labmind = list(labmind)
        self.folders = Folders.from_env(env)
        self.platform = platform
        self.uid = uid if uid is not None else (os.getuid() if hasattr(os, "getuid") else 0)
        self.environment = {HOME_ENV: env[HOME_ENV]} if env.get(HOME_ENV) else {}

    # -- where things go -------------------------------------------------------------------

    def kind(self, *, autostart: bool = False) -> Kind:
        if self.platform == "darwin":
            return "launchd"
        if self.platform == "win32":
            return "windows"
        if autostart or not self.systemd_available():
            return "autostart"
        return "systemd"

    def systemd_available(self) -> bool:
        if not self.commands.which("systemctl"):
            return False
        return self.commands.run(("systemctl", "--user", "show-environment")).ok

    def unit_path(self, role: Role) -> Path:
        return self.folders.config_home / "systemd" / "user" / UNITS[role]

    def autostart_path(self, role: Role) -> Path:
        return self.folders.config_home / "autostart" / AUTOSTART[role]

    def launch_agent_path(self, role: Role) -> Path:
        return self.folders.home / "Library" / "LaunchAgents" / f"{LABELS[role]}.plist"

    def startup_script_path(self) -> Path:
        if self.folders.appdata is None:
            raise ServiceError("APPDATA is not set; cannot find the Start-up folder")
        startup = ("Microsoft", "Windows", "Start Menu", "Programs", "Startup")
        return self.folders.appdata.joinpath(*startup, STARTUP_SCRIPT)

    # -- what gets written -----------------------------------------------------------------

    def files_for(self, kind: Kind, *, gui: bool) -> list[FileSpec]:
        roles: list[Role] = ["daemon", "gui"] if gui else ["daemon"]
        if kind == "systemd":
            env = files.systemd_environment(self.environment)
            values = {"labmind": files.systemd_exec(self.labmind), "environment": env}
            made = [
                self._text(self.unit_path(r), f"systemd/{UNITS[r]}", values, f"{r} unit")
                for r in roles
            ]
            return made + self._desktop_files()
        if kind == "autostart":
            values = {"labmind": files.desktop_exec(self.labmind)}
            made = [
                self._text(
                    self.autostart_path(r), f"autostart/{AUTOSTART[r]}", values, f"{r} autostart"
                )
                for r in roles
            ]
            return made + self._desktop_files()
        if kind == "launchd":
            logs = self.folders.home / "Library" / "Logs"
            return [
                self._text(
                    self.launch_agent_path(r),
                    f"macos/{LABELS[r]}.plist",
                    {
                        "program_arguments": files.plist_strings(self.labmind),
                        "environment": files.plist_environment(self.environment),
                        "log": str(logs / f"labmind-{r}.log"),
                    },
                    f"{r} LaunchAgent",
                )
                for r in roles
            ]
        gui_line = f'start "" {files.cmd_words(self.labmind)} gui\r\n' if gui else ""
        values = {
            "labmind": files.cmd_words(self.labmind),
            "environment": files.cmd_environment(self.environment),
            "gui": gui_line,
        }
        script = "windows/labmind-startup.cmd"
        return [self._text(self.startup_script_path(), script, values, "start-up script")]

    def _desktop_files(self) -> list[FileSpec]:
        values = {"labmind": files.desktop_exec(self.labmind)}
        launcher = self.folders.data_home / "applications" / LAUNCHER
        icons = self.folders.data_home / "icons" / "hicolor"
        made = [self._text(launcher, f"applications/{LAUNCHER}", values, "launcher")]
        made += [FileSpec(icons / name, data, "icon") for name, data in files.icon_files().items()]
        return made

    def _text(self, path: Path, template: str, values: Mapping[str, str], what: str) -> FileSpec:
        return FileSpec(path, files.render(template, values).encode(), what)

    def all_files(self) -> list[FileSpec]:
        """Every file any install on this platform may have written."""
        if self.platform in ("darwin", "win32"):
            return self.files_for(self.kind(), gui=True)
        seen: dict[Path, FileSpec] = {}
        for kind in ("systemd", "autostart"):
            for spec in self.files_for(kind, gui=True):
                seen.setdefault(spec.path, spec)
        return list(seen.values())

    # -- plans -----------------------------------------------------------------------------

    def install_plan(
        self, *, gui: bool = True, start: bool = True, autostart: bool = False
    ) -> Plan:
        kind = self.kind(autostart=autostart)
        plan = Plan(kind, write=self.files_for(kind, gui=gui))
        for spec in plan.write:
            if spec.path.exists() and not spec.written_by_us():
                plan.notes.append(f"replaces {spec.path}, which labmind did not write")
        roles: list[Role] = ["daemon", "gui"] if gui else ["daemon"]
        if kind == "systemd":
            plan.after.append(("systemctl", "--user", "daemon-reload"))
            graphical = self._graphical_session()
            for role in roles:
                now = start and (role == "daemon" or graphical)
                plan.after.append(
                    ("systemctl", "--user", "enable", *(("--now",) if now else ()), UNITS[role])
                )
            if gui and start and not graphical:
                plan.notes.append(
                    f"no {GRAPHICAL} is active: the tray starts with your next desktop session "
                    "(a desktop that does not start that target needs --autostart)"
                )
        elif kind == "launchd":
            for role in roles if start else []:
                if self._launchd_loaded(role):
                    plan.after.append(("launchctl", "bootout", f"gui/{self.uid}/{LABELS[role]}"))
                plan.after.append(
                    ("launchctl", "bootstrap", f"gui/{self.uid}", str(self.launch_agent_path(role)))
                )
        else:
            plan.start_daemon = start
            if gui:
                plan.notes.append("the tray starts at your next login (or run `labmind gui` now)")
        return plan

    def uninstall_plan(self) -> Plan:
        ours = [spec for spec in self.all_files() if spec.written_by_us()]
        plan = Plan(self.kind(), remove=ours)
        for spec in self.all_files():
            if spec.path.exists() and spec not in ours:
                plan.notes.append(f"leaves {spec.path}: labmind did not write it")
        paths = {spec.path for spec in ours}
        units = [UNITS[r] for r in ("daemon", "gui") if self.unit_path(r) in paths]
        if units and self.commands.which("systemctl"):
            plan.before.append(("systemctl", "--user", "disable", "--now", *units))
            plan.after.append(("systemctl", "--user", "daemon-reload"))
        if self.platform == "darwin":
            for role in ("daemon", "gui"):
                if self.launch_agent_path(role) in paths and self._launchd_loaded(role):
                    plan.before.append(("launchctl", "bootout", f"gui/{self.uid}/{LABELS[role]}"))
        return plan

    def apply(self, plan: Plan) -> None:
        for argv in plan.before:
            self._run(argv)
        for spec in plan.write:
            spec.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = spec.path.with_name(f".{spec.path.name}.tmp")
            tmp.write_bytes(spec.data)
            tmp.replace(spec.path)
        for spec in plan.remove:
            spec.path.unlink(missing_ok=True)
        for argv in plan.after:
            self._run(argv)

    def _run(self, argv: tuple[str, ...]) -> None:
        result = self.commands.run(argv)
        if not result.ok:
            raise CommandFailed(argv, result)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> list[Entry]:
        entries = []
        for spec in self.all_files():
            if spec.what == "icon":
                continue
            if not spec.path.exists():
                state = "missing"
            elif not spec.written_by_us():
                state = "not labmind's"
            else:
                state = self._state(spec)
            entries.append(Entry(spec.what, spec.path, state))
        return entries

    def _state(self, spec: FileSpec) -> str:
        for role in ("daemon", "gui"):
            if spec.path == self.unit_path(role) and self.commands.which("systemctl"):
                enabled = self.commands.run(("systemctl", "--user", "is-enabled", UNITS[role]))
                active = self.commands.run(("systemctl", "--user", "is-active", UNITS[role]))
                return f"{_word(enabled.stdout, 'unknown')}, {_word(active.stdout, 'unknown')}"
            if self.platform == "darwin" and spec.path == self.launch_agent_path(role):
                result = self.commands.run(("launchctl", "print", f"gui/{self.uid}/{LABELS[role]}"))
                if not result.ok:
                    return "installed, not loaded"
                running = "state = running" in result.stdout
                return "loaded, running" if running else "loaded, not running"
        return "installed"

    def _graphical_session(self) -> bool:
        result = self.commands.run(("systemctl", "--user", "is-active", GRAPHICAL))
        return result.ok

    def _launchd_loaded(self, role: Role) -> bool:
        return self.commands.run(("launchctl", "print", f"gui/{self.uid}/{LABELS[role]}")).ok


def _word(text: str, default: str) -> str:
    words = text.split()
    return words[0] if words else default
