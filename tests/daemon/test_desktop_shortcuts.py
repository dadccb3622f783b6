"""`labmind hotkey install|uninstall`: each desktop's commands and files, recorded."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labmind.daemon import cli_hotkey
from labmind.daemon.cli import app
from labmind.daemon.desktop_shortcuts import ShortcutError, apply, detect
from labmind.daemon.hotkey_chord import Chord
from labmind.daemon.shortcuts_gnome import ENTRY, LIST_KEY, SCHEMA, Gnome, entry_schema
from labmind.daemon.shortcuts_kde import Kde
from labmind.daemon.shortcuts_xfce import CHANNEL, Xfce
from labmind.daemon.system_commands import CommandResult, RecordingCommands

CHORD = Chord.parse("<ctrl>+<alt>+k")
COMMAND = ["/opt/lab mind/bin/labmind", "popup", "--toggle"]
GS = "gsettings"
OTHER = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/custom0/"


def gnome_settings(values: dict[tuple[str, str], str]) -> RecordingCommands:
    def respond(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[1] == "get":
            return CommandResult(0, values.get((argv[2], argv[3]), "''") + "\n")
        if argv[1] == "list-recursively":
            lines = [f"{s} {k} {v}" for (s, k), v in values.items() if s == argv[2]]
            return CommandResult(0, "\n".join(lines))
        return None

    return RecordingCommands(installed={"gsettings"}, respond=respond)


def changes(commands: RecordingCommands) -> list[tuple[str, ...]]:
    return [argv for argv in commands.ran if argv[1] in ("set", "reset")]


@pytest.mark.parametrize(
    ("value", "desktop"),
    [("ubuntu:GNOME", "gnome"), ("KDE", "kde"), ("XFCE", "xfce"), ("X-Cinnamon", None), ("", None)],
)
def test_the_desktop_comes_from_xdg_current_desktop(value: str, desktop: str | None) -> None:
    assert detect({"XDG_CURRENT_DESKTOP": value}) == desktop


def test_gnome_adds_a_custom_keybinding_and_names_what_else_uses_the_chord() -> None:
    commands = gnome_settings(
        {
            (SCHEMA, LIST_KEY): f"['{OTHER}']",
            (entry_schema(OTHER), "binding"): "'<Primary><Alt>k'",
            (entry_schema(OTHER), "name"): "'Terminal'",
            ("org.gnome.desktop.wm.keybindings", "switch-to-workspace-up"): "['<Control><Alt>k']",
        }
    )
    plan = Gnome(commands).install(CHORD, COMMAND)
    target = entry_schema(ENTRY)
    assert [step.argv for step in plan.steps] == [
        (GS, "set", target, "name", "'labmind search'"),
        (GS, "set", target, "command", "'" + shlex.join(COMMAND).replace("'", "\\'") + "'"),
        (GS, "set", target, "binding", "'<Control><Alt>k'"),
        (GS, "set", SCHEMA, LIST_KEY, f"['{OTHER}', '{ENTRY}']"),
    ]
    assert any("custom shortcut 'Terminal'" in note for note in plan.notes)
    assert any("'switch-to-workspace-up'" in note for note in plan.notes)
    assert changes(commands) == []
    apply(plan, commands)
    assert changes(commands) == [step.argv for step in plan.steps]


def test_gnome_reinstall_changes_nothing_and_a_new_chord_says_what_it_replaces() -> None:
    installed = {
        (SCHEMA, LIST_KEY): f"['{ENTRY}']",
        (entry_schema(ENTRY), "name"): "'labmind search'",
        (entry_schema(ENTRY), "command"): "'" + shlex.join(COMMAND).replace("'", "\\'") + "'",
        (entry_schema(ENTRY), "binding"): "'<Control><Alt>k'",
    }
    assert Gnome(gnome_settings(installed)).install(CHORD, COMMAND).steps == []
    plan = Gnome(gnome_settings(installed)).install(Chord.parse("<cmd>+<space>"), COMMAND)
    assert plan.steps[2].argv[-1] == "'<Super>space'"
    assert len(plan.steps) == 3
    assert plan.notes == [
        "replaces labmind's binding '<Control><Alt>k' → " + repr(shlex.join(COMMAND))
    ]


def test_gnome_uninstall_removes_only_labmind_entry() -> None:
    commands = gnome_settings({(SCHEMA, LIST_KEY): f"['{OTHER}', '{ENTRY}']"})
    plan = Gnome(commands).uninstall(COMMAND)
    assert [step.argv for step in plan.steps] == [
        (GS, "set", SCHEMA, LIST_KEY, f"['{OTHER}']"),
        (GS, "reset", entry_schema(ENTRY), "name"),
        (GS, "reset", entry_schema(ENTRY), "command"),
        (GS, "reset", entry_schema(ENTRY), "binding"),
    ]
    assert Gnome(gnome_settings({(SCHEMA, LIST_KEY): "@as []"})).uninstall(COMMAND).steps == []


def test_gnome_without_gsettings_is_one_line() -> None:
    with pytest.raises(ShortcutError, match="gsettings not found"):
        Gnome(RecordingCommands()).install(CHORD, COMMAND)


def test_kde_writes_a_launcher_and_the_global_shortcut(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "kglobalshortcutsrc").write_text(
        "[kwin]\nSwitch to Desktop 3=Ctrl+Alt+K\\tCtrl+F3,Ctrl+F3,Switch to Desktop 3\n"
        "[services][org.kde.konsole.desktop]\n_launch=Ctrl+Alt+T\n"
    )
    commands = RecordingCommands(installed={"kwriteconfig6"})
    kde = Kde(commands, env)
    plan = kde.install(CHORD, COMMAND)
    launcher = tmp_path / ".local" / "share" / "applications" / "labmind-popup.desktop"
    assert [step.write for step in plan.steps if step.write] == [launcher]
    assert [step.argv for step in plan.steps if step.argv] == [
        (
            "kwriteconfig6", "--file", "kglobalshortcutsrc", "--group", "services",
            "--group", "labmind-popup.desktop", "--key", "_launch", "Ctrl+Alt+K",
        )
    ]  # fmt: skip
    assert plan.notes == [
        "Ctrl+Alt+K is already the shortcut of 'Switch to Desktop 3' in [kwin]; Plasma keeps "
        "the first one (change one in System Settings → Shortcuts)"
    ]
    apply(plan, commands)
    text = launcher.read_text()
    assert 'Exec="/opt/lab mind/bin/labmind" popup --toggle\n' in text
    assert "X-KDE-Shortcuts=Ctrl+Alt+K\n" in text
    assert "NoDisplay=true\n" in text
    assert kde.install(CHORD, COMMAND).steps == []

    (tmp_path / "cfg" / "kglobalshortcutsrc").write_text(
        "[services][labmind-popup.desktop]\n_launch=Ctrl+Alt+K\n"
    )
    removal = kde.uninstall(COMMAND)
    assert [step.remove for step in removal.steps if step.remove] == [launcher]
    assert [step.argv[-3:] for step in removal.steps if step.argv] == [
        ("--key", "_launch", "--delete")
    ]
    apply(removal, commands)
    assert not launcher.exists()


def test_kde_leaves_a_launcher_it_did_not_write(tmp_path: Path) -> None:
    launcher = tmp_path / "share" / "applications" / "labmind-popup.desktop"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("[Desktop Entry]\nName=mine\n")
    kde = Kde(
        RecordingCommands(installed={"kwriteconfig5"}),
        {"XDG_DATA_HOME": str(tmp_path / "share"), "HOME": str(tmp_path)},
    )
    assert kde.uninstall(COMMAND).steps == []
    assert "replaces" in kde.install(CHORD, COMMAND).notes[0]


def xfce_settings(listing: str) -> RecordingCommands:
    answers: dict[tuple[str, ...], CommandResult] = {
        ("xfconf-query", "-c", CHANNEL, "-l", "-v"): CommandResult(0, listing)
    }
    return RecordingCommands(installed={"xfconf-query"}, answers=answers)


def test_xfce_creates_a_command_shortcut() -> None:
    commands = xfce_settings(
        "/commands/custom/<Primary><Alt>t  exo-open --launch TerminalEmulator\n"
    )
    plan = Xfce(commands).install(CHORD, COMMAND)
    assert [step.argv for step in plan.steps] == [
        (
            "xfconf-query", "-c", CHANNEL, "-p", "/commands/custom/<Primary><Alt>k",
            "-n", "-t", "string", "-s", shlex.join(COMMAND),
        )
    ]  # fmt: skip
    assert plan.notes == []


def test_xfce_says_what_it_replaces_and_moves() -> None:
    listing = (
        "/commands/custom/<Control><Alt>k  xfce4-screenshooter\n"
        f"/commands/custom/<Super>l  {shlex.join(COMMAND)}\n"
        "/xfwm4/custom/<Primary><Alt>k  move_window_up_key\n"
    )
    plan = Xfce(xfce_settings(listing)).install(CHORD, COMMAND)
    assert [step.argv[4:] for step in plan.steps] == [
        ("/commands/custom/<Super>l", "-r"),
        ("/commands/custom/<Control><Alt>k", "-s", shlex.join(COMMAND)),
    ]
    assert plan.notes == [
        "replaces <Control><Alt>k → 'xfce4-screenshooter'",
        "moves labmind from <Super>l",
        "<Primary><Alt>k is also the window manager's 'move_window_up_key'; it may win",
    ]
    removal = Xfce(xfce_settings(listing)).uninstall(COMMAND)
    assert [step.argv[4:] for step in removal.steps] == [("/commands/custom/<Super>l", "-r")]


@pytest.fixture
def gnome_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RecordingCommands:
    commands = gnome_settings({(SCHEMA, LIST_KEY): "@as []"})
    monkeypatch.setattr(cli_hotkey, "system_commands", lambda: commands)
    monkeypatch.setattr(cli_hotkey, "labmind_argv", lambda: ["/usr/bin/labmind"])
    monkeypatch.setenv("LABMIND_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CURRENT_DESKTOP", "ubuntu:GNOME")
    return commands


def test_cli_dry_run_prints_the_changes_and_makes_none(gnome_cli: RecordingCommands) -> None:
    result = CliRunner().invoke(app, ["hotkey", "install", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "GNOME: bind <ctrl>+<alt>+k to the labmind popup; this will:" in result.output
    assert (
        f"run {GS} set {entry_schema(ENTRY)} binding ''\"'\"'<Control><Alt>k'\"'\"''"
        in result.output
    )
    assert "dry run: nothing changed" in result.output
    assert changes(gnome_cli) == []


def test_cli_asks_first(gnome_cli: RecordingCommands) -> None:
    result = CliRunner().invoke(app, ["hotkey", "install"], input="n\n")
    assert result.exit_code == 1
    assert "nothing changed; pass --yes" in result.output
    assert changes(gnome_cli) == []
    result = CliRunner().invoke(app, ["hotkey", "install", "--chord", "<cmd>+<space>"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "GNOME: <cmd>+<space> now runs `/usr/bin/labmind popup --toggle`" in result.output
    assert (GS, "set", entry_schema(ENTRY), "binding", "'<Super>space'") in changes(gnome_cli)


def test_cli_uses_the_configured_chord_with_yes(gnome_cli: RecordingCommands) -> None:
    assert CliRunner().invoke(app, ["config", "set", "gui.hotkey", "<ctrl>+<f9>"]).exit_code == 0
    result = CliRunner().invoke(app, ["hotkey", "install", "--yes"])
    assert result.exit_code == 0, result.output
    assert (GS, "set", entry_schema(ENTRY), "binding", "'<Control>F9'") in changes(gnome_cli)


def test_cli_on_an_unknown_desktop_names_the_universal_command(
    gnome_cli: RecordingCommands, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CURRENT_DESKTOP", "sway")
    result = CliRunner().invoke(app, ["hotkey", "install", "--yes"])
    assert result.exit_code == 1
    assert "pass --desktop gnome|kde|xfce" in result.output
    assert "/usr/bin/labmind popup --toggle` to <ctrl>+<alt>+k" in result.output
    bad = CliRunner().invoke(app, ["hotkey", "install", "--chord", "k", "--desktop", "gnome"])
    assert "not a chord" in bad.output
