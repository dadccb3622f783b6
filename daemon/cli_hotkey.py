"""`labmind hotkey install|uninstall`: bind ``labmind popup --toggle`` in the desktop."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from .cli_session import CliError, session
from .config import load_config
from .desktop_shortcuts import DESKTOPS, Desktop, Plan, ShortcutError, apply, detect
from .executable import labmind_argv
from .hotkey_chord import Chord, ChordError
from .shortcuts_gnome import Gnome
from .shortcuts_kde import Kde
from .shortcuts_xfce import Xfce
from .system_commands import CommandFailed, Commands, SystemCommands

hotkey_app = typer.Typer(
    help="Bind the search popup to a key in your desktop's own shortcut settings.",
    no_args_is_help=True,
)


def system_commands() -> Commands:
    """The tools the shortcuts are written with (tests replace this)."""
    return SystemCommands()


DesktopOption = Annotated[
    str | None,
    typer.Option(
        "--desktop",
        help="gnome, kde or xfce; default: from XDG_CURRENT_DESKTOP.",
        show_default=False,
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before changing.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Only print what would change.")]


def popup_command() -> list[str]:
    return [*labmind_argv(), "popup", "--toggle"]


@hotkey_app.command("install")
def install(
    ctx: typer.Context,
    desktop: DesktopOption = None,
    chord: Annotated[
        str | None,
        typer.Option("--chord", help="Like <ctrl>+<alt>+k; default: gui.hotkey from the config."),
    ] = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Bind the chord (gui.hotkey) to `labmind popup --toggle` in GNOME, KDE or XFCE."""
    text = chord or load_config(session(ctx).paths.config_file).gui.hotkey
    try:
        parsed = Chord.parse(text)
    except ChordError as exc:
        raise CliError(str(exc)) from None
    command = popup_command()
    target, commands = _desktop(desktop, command, parsed)
    plan = _plan(lambda: target.install(parsed, command))
    if not plan.steps:
        typer.echo(f"{plan.desktop}: {parsed.pynput()} already runs `{' '.join(command)}`")
        return
    title = f"{plan.desktop}: bind {parsed.pynput()} to the labmind popup"
    _confirm_and_apply(plan, title, commands, yes=yes, dry_run=dry_run)
    typer.echo(f"{plan.desktop}: {parsed.pynput()} now runs `{' '.join(command)}`")
    for line in plan.after:
        typer.echo(line)


@hotkey_app.command("uninstall")
def uninstall(
    desktop: DesktopOption = None, yes: YesOption = False, dry_run: DryRunOption = False
) -> None:
    """Remove the binding `labmind hotkey install` made."""
    command = popup_command()
    target, commands = _desktop(desktop, command, None)
    plan = _plan(lambda: target.uninstall(command))
    if not plan.steps:
        typer.echo(f"{plan.desktop}: no labmind shortcut to remove")
        return
    title = f"{plan.desktop}: remove the labmind popup shortcut"
    _confirm_and_apply(plan, title, commands, yes=yes, dry_run=dry_run)
    typer.echo(f"{plan.desktop}: labmind shortcut removed")


def _desktop(
    name: str | None, command: Sequence[str], chord: Chord | None
) -> tuple[Desktop, Commands]:
    chosen = name.lower() if name else detect()
    if chosen is None:
        where = os.environ.get("XDG_CURRENT_DESKTOP") or "unset"
        key = f" to {chord.pynput()}" if chord else ""
        raise CliError(
            f"cannot tell the desktop (XDG_CURRENT_DESKTOP is {where}); pass --desktop "
            f"{'|'.join(DESKTOPS)}, or bind `{' '.join(command)}`{key} in your desktop's "
            "keyboard settings"
        )
    commands = system_commands()
    desktops: dict[str, Desktop] = {
        "gnome": Gnome(commands),
        "kde": Kde(commands, os.environ),
        "xfce": Xfce(commands),
    }
    if chosen not in desktops:
        raise CliError(f"--desktop {name}: expected one of {', '.join(DESKTOPS)}")
    return desktops[chosen], commands


def _plan(make: Callable[[], Plan]) -> Plan:
    try:
        return make()
    except ShortcutError as exc:
        raise CliError(str(exc)) from None


def _confirm_and_apply(
    plan: Plan, title: str, commands: Commands, *, yes: bool, dry_run: bool
) -> None:
    typer.echo(f"{title}; this will:")
    for step in plan.steps:
        typer.echo(f"  {step.describe()}")
        if step.write is not None:
            for line in step.content.splitlines():
                typer.echo(f"      {line}")
    for note in plan.notes:
        typer.echo(f"  note: {note}")
    if dry_run:
        typer.echo("dry run: nothing changed")
        raise typer.Exit(0)
    if not yes and not _confirmed():
        raise CliError("nothing changed; pass --yes to go ahead without being asked")
    try:
        apply(plan, commands)
    except CommandFailed as exc:
        raise CliError(str(exc)) from None


def _confirmed() -> bool:
    try:
        return typer.confirm("Go ahead?", default=False)
    except typer.Abort:
        return False
