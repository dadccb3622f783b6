"""What every CLI command shares: the session (paths, autostart), the daemon connection,
argument checks and the one-line error type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from . import cli_render as render
from .client import DaemonClient, connect
from .instance import is_answering
from .paths import Paths

NO_AUTOSTART_ENV = "LABMIND_NO_AUTOSTART"

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


class CliError(Exception):
    """A one-line error for the user; the command exits 1."""


@dataclass(frozen=True)
class Session:
    paths: Paths
    autostart: bool


def session(ctx: typer.Context) -> Session:
    found = ctx.find_object(Session)
    return found if found is not None else Session(paths=Paths.resolve(), autostart=True)


def connect_client(ctx: typer.Context) -> DaemonClient:
    """A client of the running daemon, starting it first unless --no-autostart."""
    current = session(ctx)
    if not current.autostart or is_answering(current.paths.socket_path):
        return connect(current.paths, autostart=False)
    with render.spinner("starting the labmind daemon"):
        return connect(current.paths, autostart=True)


def existing_path(path: str, *, folder: bool) -> str:
    """`path` as an absolute real path; it must exist (and be a folder if `folder`)."""
    what = "folder" if folder else "file or folder"
    try:
        resolved = Path(path).expanduser().resolve(strict=True)
    except FileNotFoundError:
        raise CliError(f"{path}: no such {what}") from None
    except (OSError, RuntimeError) as exc:
        raise CliError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if folder and not resolved.is_dir():
        raise CliError(f"{path}: not a folder")
    return str(resolved)
