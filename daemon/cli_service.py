"""`labmind service install|uninstall|status`: run the daemon and the tray at login."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from . import cli_render as render
from .cli_session import CliError, JsonOption, session
from .executable import labmind_argv
from .instance import is_answering
from .launcher import start_background, stop
from .service_files import PackagingMissing
from .services import Plan, ServiceError, Services
from .system_commands import CommandFailed, Commands, SystemCommands

service_app = typer.Typer(
    help="Start labmind at login: systemd user units (or XDG autostart), a macOS "
    "LaunchAgent, or a Windows start-up script.",
    no_args_is_help=True,
)

T = TypeVar("T")
MANAGERS = {"systemd": "systemd", "launchd": "launchd"}


def system_commands() -> Commands:
    """The service manager's tools (tests replace this)."""
    return SystemCommands()


def services() -> Services:
    return Services(system_commands(), labmind_argv())


DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Only print what would change.")]


@service_app.command("install")
def install(
    ctx: typer.Context,
    no_start: Annotated[
        bool, typer.Option("--no-start", help="Install, start at login only.")
    ] = False,
    no_gui: Annotated[bool, typer.Option("--no-gui", help="The daemon only, no tray.")] = False,
    autostart: Annotated[
        bool,
        typer.Option("--autostart", help="XDG autostart entries even where systemd --user runs."),
    ] = False,
    dry_run: DryRunOption = False,
) -> None:
    """Install and start the services for the daemon and the tray."""
    manager = services()
    plan = _plan(
        lambda: manager.install_plan(gui=not no_gui, start=not no_start, autostart=autostart)
    )
    _print(plan, "install")
    if dry_run:
        typer.echo("dry run: nothing changed")
        return
    paths = session(ctx).paths
    if plan.kind in MANAGERS and not no_start and is_answering(paths.socket_path):
        stop(paths)
        typer.echo(f"stopped the running daemon so that {MANAGERS[plan.kind]} runs it")
    _apply(manager, plan)
    if plan.start_daemon and not is_answering(paths.socket_path):
        with render.spinner("starting the labmind daemon"):
            pid = start_background(paths)
        typer.echo(f"labmind daemon started (pid {pid})")
    typer.echo(f"installed ({plan.kind})")


@service_app.command("uninstall")
def uninstall(dry_run: DryRunOption = False) -> None:
    """Stop and remove what `labmind service install` wrote."""
    manager = services()
    plan = _plan(manager.uninstall_plan)
    if not plan.remove:
        typer.echo("no labmind services are installed")
        for note in plan.notes:
            typer.echo(f"  note: {note}")
        return
    _print(plan, "uninstall")
    if dry_run:
        typer.echo("dry run: nothing changed")
        return
    _apply(manager, plan)
    typer.echo("uninstalled")
    if plan.kind in ("autostart", "windows"):
        typer.echo("a daemon that is running keeps running until `labmind stop`")


@service_app.command("status")
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """What is installed, and whether it runs."""
    manager = services()
    entries = _plan(manager.status)
    running = is_answering(session(ctx).paths.socket_path)
    if as_json:
        render.print_json(
            {
                "kind": manager.kind(),
                "daemon_running": running,
                "files": [{"what": e.what, "path": str(e.path), "state": e.state} for e in entries],
            }
        )
        return
    for entry in entries:
        if entry.state != "missing":
            typer.echo(f"{entry.what:<20} {entry.state:<24} {entry.path}")
    if all(entry.state == "missing" for entry in entries):
        typer.echo("no labmind services are installed; `labmind service install` adds them")
    typer.echo(f"daemon: {'running' if running else 'not running'}")


def _plan(make: Callable[[], T]) -> T:
    try:
        return make()
    except (ServiceError, PackagingMissing) as exc:
        raise CliError(str(exc)) from None


def _print(plan: Plan, verb: str) -> None:
    typer.echo(f"labmind service {verb} ({plan.kind}) will:")
    for argv in plan.before:
        typer.echo(f"  run {shlex.join(argv)}")
    for spec in plan.write:
        typer.echo(f"  write {spec.path}")
    for spec in plan.remove:
        typer.echo(f"  remove {spec.path}")
    for argv in plan.after:
        typer.echo(f"  run {shlex.join(argv)}")
    if plan.start_daemon:
        typer.echo("  start the daemon")
    for note in plan.notes:
        typer.echo(f"  note: {note}")


def _apply(manager: Services, plan: Plan) -> None:
    try:
        manager.apply(plan)
    except CommandFailed as exc:
        raise CliError(str(exc)) from None
