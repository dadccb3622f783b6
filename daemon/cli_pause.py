"""`labmind pause|resume [--indexing] [--backup]`: hold indexing and backups (both unless
one is named), as the tray's "Pause indexing and backup" does. Remembered across restarts."""

from __future__ import annotations

from typing import Annotated

import typer

from .cli_session import connect_client

IndexingOption = Annotated[
    bool, typer.Option("--indexing", help="Only indexing (and embedding) of changed files.")
]
BackupOption = Annotated[bool, typer.Option("--backup", help="Only scheduled backups.")]


def _apply(ctx: typer.Context, paused: bool, indexing: bool, backup: bool) -> None:
    both = not indexing and not backup
    with connect_client(ctx) as client:
        if indexing or both:
            typer.echo(client.index_pause(paused).message)
        if backup or both:
            typer.echo(client.backup_pause(paused).message)


def pause_command(
    ctx: typer.Context, indexing: IndexingOption = False, backup: BackupOption = False
) -> None:
    """Pause indexing and backups: changes are noted, and handled on `labmind resume`."""
    _apply(ctx, True, indexing, backup)


def resume_command(
    ctx: typer.Context, indexing: IndexingOption = False, backup: BackupOption = False
) -> None:
    """Resume indexing (what changed meanwhile is indexed) and backups."""
    _apply(ctx, False, indexing, backup)
