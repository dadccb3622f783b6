"""`labmind backup now|status|log|restore|pause|resume|token`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from . import cli_render as render
from .backup.credentials import CredentialError, KeyringCredentials
from .cli_session import CliError, JsonOption, connect_client
from .protocol import BackupOutcome, BackupRepoStatus, PushState, RestoreRequest

SHORT_COMMIT = 10
HELD_SHOWN = 20
_OK_PUSH = frozenset({"pushed", "up_to_date"})

backup_app = typer.Typer(
    help="Snapshots of your folders in git, pushed without force, never with a secret.",
    no_args_is_help=True,
)


def _short(commit: str | None) -> str:
    return commit[:SHORT_COMMIT] if commit else "—"


def _push_line(push: PushState) -> str:
    where = push.remote_ref.removeprefix("refs/heads/")
    if push.status in _OK_PUSH:
        return f"{push.status.replace('_', ' ')}: {where}"
    return f"not pushed ({push.status.replace('_', ' ')}): {push.message}"


@backup_app.command("now")
def backup_now(
    ctx: typer.Context,
    path: Annotated[
        str | None, typer.Argument(help="A backed-up folder or a path in one; default: all.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Snapshot (and push) now, retrying pushes that are waiting out a backoff."""
    with connect_client(ctx) as client, render.spinner("backing up"):
        outcomes = client.backup_now(path)
    if as_json:
        render.print_json([o.model_dump() for o in outcomes])
    else:
        for outcome in outcomes:
            _print_outcome(outcome)
    problems = [o for o in outcomes if o.error or any(p.status not in _OK_PUSH for p in o.pushes)]
    if problems:
        raise CliError(
            f"{len(problems)} of {len(outcomes)} folders not fully backed up; "
            "see `labmind backup status`"
        )


def _print_outcome(outcome: BackupOutcome) -> None:
    if outcome.error:
        typer.echo(f"{outcome.path}: {outcome.error}", err=True)
        return
    if outcome.created:
        noun = "file" if outcome.files_changed == 1 else "files"
        head = f"snapshot {_short(outcome.snapshot)} ({outcome.files_changed} {noun} changed)"
    else:
        head = f"unchanged since {_short(outcome.snapshot)}"
    typer.echo(f"{outcome.path} [{outcome.branch}]: {head}")
    for push in outcome.pushes:
        typer.echo(f"  {_push_line(push)}", err=push.status not in _OK_PUSH)
    for held in outcome.held_back[:HELD_SHOWN]:
        typer.echo(f"  held back {held.path}: {held.reason}", err=True)
    if len(outcome.held_back) > HELD_SHOWN:
        typer.echo(f"  … and {len(outcome.held_back) - HELD_SHOWN} more held back", err=True)


@backup_app.command("status")
def backup_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Each backed-up folder: last snapshot, last push, what waits, what is held back."""
    with connect_client(ctx) as client:
        status = client.backup_status()
    if as_json:
        render.print_json(status.model_dump())
        return
    console = render.stdout()
    state = "off" if not status.enabled else "paused" if status.paused else "on"
    console.print(f"backup is {state}; pushing is {'on' if status.push else 'off'}")
    if not status.repos:
        console.print("no folders are backed up yet; `labmind watch add PATH` adds one")
        return
    console.print(_status_table(status.repos))
    for repo in status.repos:
        for held in repo.held_back[:HELD_SHOWN]:
            console.print(f"held back in {repo.path}: {held.path} — {held.reason}")
        if repo.error:
            console.print(f"[red]{repo.path}: {repo.error}[/red]")


def _status_table(repos: list[BackupRepoStatus]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("folder", "branch", "last snapshot", "push", "unpushed", "held back"):
        table.add_column(column)
    for repo in repos:
        snap = (
            f"{_short(repo.last_snapshot)} {render.when(repo.last_snapshot_at)}"
            if repo.last_snapshot_at
            else "none yet"
        )
        current = [p for p in repo.pushes if p.branch == repo.branch]
        push = (
            f"{current[0].status.replace('_', ' ')} {render.when(current[0].at)}"
            if current
            else ("no remote" if repo.remote is None else "not yet")
        )
        label = f"{repo.path} (shadow)" if repo.shadow else repo.path
        table.add_row(
            label,
            repo.branch or "—",
            snap,
            push,
            str(repo.unpushed),
            str(len(repo.held_back)),
        )
    return table


@backup_app.command("log")
def backup_log(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A backed-up folder or a path in one.")],
    branch: Annotated[
        str | None, typer.Option(help="Whose snapshots; default: the branch checked out now.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many snapshots.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The snapshots of a folder, newest first."""
    with connect_client(ctx) as client:
        entries = client.backup_log(path, branch, limit)
    if as_json:
        render.print_json([e.model_dump() for e in entries])
        return
    if not entries:
        typer.echo("no snapshots yet; `labmind backup now` takes one")
        return
    for entry in entries:
        mark = "pushed" if entry.pushed else "local"
        typer.echo(f"{_short(entry.commit)}  {render.when(entry.time)}  {mark:6}  {entry.message}")


@backup_app.command("restore")
def backup_restore(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A backed-up folder or a path in one.")],
    at: Annotated[
        str,
        typer.Option(help="A snapshot commit, or a time: 2026-11-24T10:00, 2h, 3d."),
    ],
    to: Annotated[str, typer.Option(help="A new (or empty) folder to write the files into.")],
    branch: Annotated[
        str | None, typer.Option(help="Whose snapshots; default: the branch checked out now.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a snapshot into a new folder; your own files are never touched."""
    request = RestoreRequest(path=path, at=at, to=to, branch=branch)
    with connect_client(ctx) as client, render.spinner("restoring"):
        result = client.backup_restore(request)
    if as_json:
        render.print_json(result.model_dump())
        return
    typer.echo(
        f"restored snapshot {_short(result.commit)} of {render.when(result.time)}: "
        f"{result.files} files in {result.target}"
    )


@backup_app.command("pause")
def backup_pause(ctx: typer.Context) -> None:
    """Stop scheduled backups (kept across restarts) until `backup resume`."""
    with connect_client(ctx) as client:
        typer.echo(client.backup_pause(True).message)


@backup_app.command("resume")
def backup_resume(ctx: typer.Context) -> None:
    """Start scheduled backups again."""
    with connect_client(ctx) as client:
        typer.echo(client.backup_pause(False).message)


@backup_app.command("token")
def backup_token(
    host: Annotated[str, typer.Argument(help="The git host, e.g. github.com.")],
    delete: Annotated[bool, typer.Option("--delete", help="Forget the stored token.")] = False,
) -> None:
    """Store the HTTPS token used to push to HOST in the system keyring (read from stdin)."""
    credentials = KeyringCredentials()
    try:
        if delete:
            removed = credentials.delete_token(host)
            typer.echo(f"token for {host} removed" if removed else f"no token stored for {host}")
            return
        if sys.stdin.isatty():
            token = typer.prompt(f"token for {host}", hide_input=True)
        else:
            token = sys.stdin.readline()
        token = token.strip()
        if not token:
            raise CliError("no token given; paste it at the prompt or pipe it on stdin")
        credentials.set_token(host, token)
    except (CredentialError, ValueError) as exc:
        raise CliError(str(exc)) from None
    typer.echo(f"token for {host} stored in the keyring")
