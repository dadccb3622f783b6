"""`labmind service install|uninstall|status` with the user's folders in tmp and a recording
service manager; the generated units are checked by `systemd-analyze verify`."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labmind.daemon import cli_service
from labmind.daemon.cli import app
from labmind.daemon.executable import labmind_argv
from labmind.daemon.service_files import ICON_SIZES, packaging_dir
from labmind.daemon.services import ServiceError, Services
from labmind.daemon.system_commands import CommandResult, RecordingCommands

LABMIND = ["/opt/lab mind/bin/labmind"]


def systemd(*, graphical: bool = True, running: bool = True) -> RecordingCommands:
    def respond(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:3] == ("systemctl", "--user", "show-environment"):
            return CommandResult(0 if running else 1, stderr="Failed to connect to bus")
        if argv[:3] == ("systemctl", "--user", "is-active"):
            active = argv[3] != "graphical-session.target" or graphical
            return CommandResult(0 if active else 3, "active\n" if active else "inactive\n")
        if argv[:3] == ("systemctl", "--user", "is-enabled"):
            return CommandResult(0, "enabled\n")
        return None

    return RecordingCommands(installed={"systemctl"}, respond=respond)


def user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        **extra,
    }


def changes(commands: RecordingCommands) -> list[tuple[str, ...]]:
    queries = ("show-environment", "is-active", "is-enabled", "print")
    return [argv for argv in commands.ran if not any(q in argv for q in queries)]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_systemd_units_are_written_enabled_and_started(tmp_path: Path) -> None:
    commands = systemd()
    services = Services(
        commands, LABMIND, env=user_env(tmp_path, LABMIND_HOME="/srv/lab 1"), platform="linux"
    )
    plan = services.install_plan()
    assert plan.kind == "systemd"
    services.apply(plan)
    assert changes(commands) == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "--now", "labmind-daemon.service"),
        ("systemctl", "--user", "enable", "--now", "labmind-gui.service"),
    ]
    units = tmp_path / "config" / "systemd" / "user"
    daemon = (units / "labmind-daemon.service").read_text()
    assert 'ExecStart="/opt/lab mind/bin/labmind" daemon\n' in daemon
    assert 'Environment="LABMIND_HOME=/srv/lab 1"\n' in daemon
    assert "Type=simple\n" in daemon and "Restart=on-failure\n" in daemon
    assert "WantedBy=default.target\n" in daemon
    gui = (units / "labmind-gui.service").read_text()
    assert 'ExecStart="/opt/lab mind/bin/labmind" gui\n' in gui
    for line in (
        "PartOf=graphical-session.target",
        "After=graphical-session.target labmind-daemon.service",
        "WantedBy=graphical-session.target",
    ):
        assert line + "\n" in gui
    data = tmp_path / "data"
    assert tree(data) == sorted(
        ["applications/labmind.desktop", "icons/hicolor/scalable/apps/labmind.svg"]
        + [f"icons/hicolor/{n}x{n}/apps/labmind.png" for n in ICON_SIZES]
    )
    launcher = (data / "applications" / "labmind.desktop").read_text()
    assert 'Exec="/opt/lab mind/bin/labmind" gui\n' in launcher
    assert 'Exec="/opt/lab mind/bin/labmind" popup --toggle\n' in launcher
    assert not (tmp_path / "config" / "autostart").exists()


def test_without_a_graphical_session_the_tray_waits_for_the_next_one(tmp_path: Path) -> None:
    services = Services(systemd(graphical=False), LABMIND, env=user_env(tmp_path), platform="linux")
    plan = services.install_plan()
    assert plan.after[-1] == ("systemctl", "--user", "enable", "labmind-gui.service")
    assert any("next desktop session" in note for note in plan.notes)
    quiet = services.install_plan(start=False, gui=False)
    assert quiet.after == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "labmind-daemon.service"),
    ]
    assert [spec.path.name for spec in quiet.write][:1] == ["labmind-daemon.service"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_generated_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    services = Services(systemd(), labmind_argv(), env=user_env(tmp_path), platform="linux")
    services.apply(services.install_plan(start=False))
    units = sorted((tmp_path / "config" / "systemd" / "user").glob("*.service"))
    assert len(units) == 2
    out = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert out.returncode == 0, out.stderr
    problems = [line for line in out.stderr.splitlines() if "labmind" in line]
    assert problems == []


def test_without_systemd_xdg_autostart_entries_start_it(tmp_path: Path) -> None:
    for commands in (RecordingCommands(), systemd(running=False)):
        services = Services(commands, LABMIND, env=user_env(tmp_path), platform="linux")
        plan = services.install_plan()
        assert plan.kind == "autostart"
        assert plan.start_daemon
        assert plan.after == []
    services.apply(plan)
    autostart = tmp_path / "config" / "autostart"
    assert tree(autostart) == ["labmind-daemon.desktop", "labmind-gui.desktop"]
    assert (
        'Exec="/opt/lab mind/bin/labmind" start\n'
        in (autostart / "labmind-daemon.desktop").read_text()
    )
    assert (
        'Exec="/opt/lab mind/bin/labmind" gui\n' in (autostart / "labmind-gui.desktop").read_text()
    )
    forced = Services(systemd(), LABMIND, env=user_env(tmp_path), platform="linux")
    assert forced.install_plan(autostart=True).kind == "autostart"


def test_uninstall_removes_exactly_what_install_wrote(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    keep = [
        tmp_path / "config" / "systemd" / "user" / "other.service",
        tmp_path / "data" / "applications" / "editor.desktop",
        tmp_path / "data" / "icons" / "hicolor" / "48x48" / "apps" / "editor.png",
    ]
    for path in keep:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not labmind's\n")
    mine = tmp_path / "config" / "autostart" / "labmind-gui.desktop"
    mine.parent.mkdir(parents=True)
    mine.write_text("[Desktop Entry]\nExec=my-own-tray\n")
    before = set(tree(tmp_path))

    commands = systemd()
    services = Services(commands, LABMIND, env=env, platform="linux")
    services.apply(services.install_plan())
    statuses = {entry.path.name: entry.state for entry in services.status()}
    assert statuses["labmind-daemon.service"] == "enabled, active"
    assert statuses["labmind-gui.desktop"] == "not labmind's"
    assert statuses["labmind-daemon.desktop"] == "missing"
    assert statuses["labmind.desktop"] == "installed"

    commands.ran.clear()
    plan = services.uninstall_plan()
    assert plan.notes == [f"leaves {mine}: labmind did not write it"]
    services.apply(plan)
    assert changes(commands) == [
        (
            "systemctl",
            "--user",
            "disable",
            "--now",
            "labmind-daemon.service",
            "labmind-gui.service",
        ),
        ("systemctl", "--user", "daemon-reload"),
    ]
    assert set(tree(tmp_path)) == before
    assert services.uninstall_plan().remove == []


def test_macos_launch_agents(tmp_path: Path) -> None:
    loaded = {"dev.labmind.daemon"}

    def respond(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("launchctl", "print"):
            label = argv[2].rsplit("/", 1)[1]
            return CommandResult(0, "state = running\n") if label in loaded else CommandResult(113)
        return None

    commands = RecordingCommands(respond=respond)
    env = user_env(tmp_path, LABMIND_HOME="/Users/me/lab & co")
    services = Services(commands, LABMIND, env=env, platform="darwin", uid=501)
    plan = services.install_plan()
    assert plan.kind == "launchd"
    services.apply(plan)
    agents = tmp_path / "home" / "Library" / "LaunchAgents"
    assert changes(commands) == [
        ("launchctl", "bootout", "gui/501/dev.labmind.daemon"),
        ("launchctl", "bootstrap", "gui/501", str(agents / "dev.labmind.daemon.plist")),
        ("launchctl", "bootstrap", "gui/501", str(agents / "dev.labmind.gui.plist")),
    ]
    daemon = plistlib.loads((agents / "dev.labmind.daemon.plist").read_bytes())
    assert daemon["Label"] == "dev.labmind.daemon"
    assert daemon["ProgramArguments"] == [*LABMIND, "daemon"]
    assert daemon["EnvironmentVariables"] == {"LABMIND_HOME": "/Users/me/lab & co"}
    assert daemon["RunAtLoad"] is True
    assert daemon["KeepAlive"] == {"SuccessfulExit": False}
    gui = plistlib.loads((agents / "dev.labmind.gui.plist").read_bytes())
    assert gui["ProgramArguments"] == [*LABMIND, "gui"]
    assert gui["LimitLoadToSessionType"] == "Aqua"
    assert {e.path.name: e.state for e in services.status()} == {
        "dev.labmind.daemon.plist": "loaded, running",
        "dev.labmind.gui.plist": "installed, not loaded",
    }
    commands.ran.clear()
    services.apply(services.uninstall_plan())
    assert changes(commands) == [("launchctl", "bootout", "gui/501/dev.labmind.daemon")]
    assert tree(agents) == []


def test_windows_start_up_script(tmp_path: Path) -> None:
    env = {"USERPROFILE": str(tmp_path), "APPDATA": str(tmp_path / "Roaming")}
    exe = [r"C:\Program Files\labmind\Scripts\labmind.exe"]
    services = Services(RecordingCommands(), exe, env=env, platform="win32")
    plan = services.install_plan()
    assert (plan.kind, plan.start_daemon, plan.after) == ("windows", True, [])
    services.apply(plan)
    script = tmp_path.joinpath(
        "Roaming", "Microsoft", "Windows", "Start Menu", "Programs", "Startup", "labmind.cmd"
    )
    lines = script.read_bytes().decode().split("\r\n")
    assert lines[0] == "@echo off"
    assert 'start "" /min "C:\\Program Files\\labmind\\Scripts\\labmind.exe" start' in lines
    assert 'start "" "C:\\Program Files\\labmind\\Scripts\\labmind.exe" gui' in lines
    services.apply(services.uninstall_plan())
    assert not script.exists()
    with pytest.raises(ServiceError, match="APPDATA"):
        Services(
            RecordingCommands(), exe, env={"USERPROFILE": "x"}, platform="win32"
        ).install_plan()


def test_every_packaging_file_ships_in_the_wheel() -> None:
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["labmind.packaging"]
    assert project["tool"]["setuptools"]["package-dir"]["labmind.packaging"] == "packaging"
    shipped = [
        str(p.relative_to(packaging_dir()))
        for p in packaging_dir().rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"
    ]
    assert shipped
    assert [f for f in shipped if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []


def test_committed_icons_match_the_svg(tmp_path: Path) -> None:
    pytest.importorskip("PySide6.QtSvg")
    import sys

    script = packaging_dir() / "render_icons.py"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    subprocess.run(
        [sys.executable, str(script), str(tmp_path)], check=True, env=env, timeout=120,
        capture_output=True,
    )  # fmt: skip
    from PySide6.QtGui import QImage

    for size in ICON_SIZES:
        fresh = QImage(str(tmp_path / f"labmind-{size}.png"))
        committed = QImage(str(packaging_dir() / "icons" / f"labmind-{size}.png"))
        assert (committed.width(), committed.height()) == (size, size)
        assert fresh == committed, f"labmind-{size}.png is stale: run packaging/render_icons.py"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RecordingCommands:
    commands = systemd()
    monkeypatch.setattr(cli_service, "system_commands", lambda: commands)
    monkeypatch.setattr(cli_service, "labmind_argv", lambda: ["/usr/bin/labmind"])
    for key, value in user_env(tmp_path, LABMIND_HOME=str(tmp_path / "lm")).items():
        monkeypatch.setenv(key, value)
    return commands


def test_cli_install_status_uninstall(cli_env: RecordingCommands, tmp_path: Path) -> None:
    runner = CliRunner()
    dry = runner.invoke(app, ["service", "install", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "run systemctl --user enable --now labmind-daemon.service" in dry.output
    assert changes(cli_env) == []

    result = runner.invoke(app, ["service", "install", "--no-start"])
    assert result.exit_code == 0, result.output
    assert f"write {tmp_path}/config/systemd/user/labmind-daemon.service" in result.output
    assert "installed (systemd)" in result.output
    assert ("systemctl", "--user", "enable", "labmind-gui.service") in changes(cli_env)

    status = runner.invoke(app, ["service", "status", "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["kind"] == "systemd" and report["daemon_running"] is False
    states = {Path(f["path"]).name: f["state"] for f in report["files"]}
    assert states["labmind-daemon.service"] == "enabled, active"
    text = runner.invoke(app, ["service", "status"])
    assert "daemon unit" in text.output and "daemon: not running" in text.output

    removed = runner.invoke(app, ["service", "uninstall"])
    assert removed.exit_code == 0, removed.output
    assert "uninstalled" in removed.output
    assert not (tmp_path / "config" / "systemd" / "user" / "labmind-gui.service").exists()
    again = runner.invoke(app, ["service", "uninstall"])
    assert "no labmind services are installed" in again.output


def test_cli_reports_a_failing_service_manager_in_one_line(
    cli_env: RecordingCommands,
) -> None:
    cli_env.answers[("systemctl", "--user", "daemon-reload")] = CommandResult(
        1, stderr="Failed to reload daemon: Access denied\n"
    )
    result = CliRunner().invoke(app, ["service", "install", "--no-start"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "labmind: `systemctl --user daemon-reload` failed: Failed to reload daemon: Access denied"
    )
