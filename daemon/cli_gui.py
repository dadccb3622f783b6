"""`labmind gui` and `labmind popup [--toggle]`: the tray process and its search popup.

The GUI is its own process (`python -m labmind.gui`); nothing here imports Qt.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from . import cli_render as render
from .cli_session import session
from .gui_control import ask_gui, gui_command, popup, start_gui
from .instance import is_answering
from .launcher import start_background


def run_gui(
    ctx: typer.Context,
    background: Annotated[
        bool, typer.Option("--background", help="Start it detached and return.")
    ] = False,
    no_tray: Annotated[bool, typer.Option("--no-tray", help="Run without a tray icon.")] = False,
) -> None:
    """Run the tray (search popup and dashboard included); one per labmind home."""
    current = session(ctx)
    paths = current.paths
    if ask_gui(paths, "show"):
        typer.echo("labmind GUI already running; showed its search popup")
        return
    if current.autostart and not is_answering(paths.socket_path):
        with render.spinner("starting the labmind daemon"):
            start_background(paths)
    extra = ["--no-tray"] if no_tray else []
    if background:
        pid = start_gui(paths, *extra)
        typer.echo(f"labmind GUI started (pid {pid})")
        return
    argv = gui_command(*extra)
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - becomes the GUI process


def popup_command(
    ctx: typer.Context,
    toggle: Annotated[
        bool, typer.Option("--toggle", help="Hide the popup if it is showing.")
    ] = False,
) -> None:
    """Show the search popup of the running GUI (starting the GUI if none runs)."""
    message = popup(session(ctx).paths, toggle=toggle)
    if message:
        typer.echo(message, err=True)
