"""`labmind import`, `labmind chats ls|show` and `labmind why`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from . import cli_render as render
from .cli_session import CliError, JsonOption, connect_client, existing_path
from .client import DaemonClient
from .protocol import ChatDetail, ChatSummary, ImportStatus, WhyResponse

POLL_S = 0.2
PROBLEMS_SHOWN = 10
ID_SHOWN = 12
"""Characters of a conversation id that `chats ls` shows; any unique prefix is accepted."""

chats_app = typer.Typer(
    help="Conversations imported from ChatGPT and Claude.", no_args_is_help=True
)


def import_command(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A ChatGPT or Claude export: zip, folder or JSON.")],
    wait: Annotated[bool, typer.Option(help="Wait for the import to finish.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Import a chat export; importing it again only adds what is new or newer."""
    target = existing_path(path, folder=False)
    with connect_client(ctx) as client:
        job = client.import_chats(target)
        if wait:
            job = _follow(client, job)
    if as_json:
        render.print_json(job.model_dump())
    elif not wait:
        typer.echo(f"import job {job.job_id} queued: {job.path}")
    else:
        typer.echo(_import_summary(job))
        for problem in job.problems[:PROBLEMS_SHOWN]:
            typer.echo(f"  {problem}", err=True)
        if job.problem_count > PROBLEMS_SHOWN:
            typer.echo(f"  … and {job.problem_count - PROBLEMS_SHOWN} more problems", err=True)
    if job.state == "failed":
        raise CliError(job.error or "the import failed")


def _follow(client: DaemonClient, job: ImportStatus) -> ImportStatus:
    console = render.stderr()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[seen]} conversations"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("importing", total=None, seen=0)
        while job.state in ("queued", "running"):
            time.sleep(POLL_S)
            job = client.import_status(job.job_id)
            bar.update(
                task,
                completed=job.bytes_read,
                total=job.total_bytes or None,
                seen=job.seen,
            )
    return job


def _import_summary(job: ImportStatus) -> str:
    if job.state == "failed":
        return f"not imported: {job.path}"
    problems = f", {job.problem_count} problems" if job.problem_count else ""
    return (
        f"imported {job.path} ({job.kind}): {job.added} new, {job.updated} updated, "
        f"{job.unchanged} unchanged conversations{problems}"
    )


@chats_app.command("ls")
def chats_ls(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Imported conversations, most recently updated first."""
    with connect_client(ctx) as client:
        chats = client.chats(limit=limit)
    if as_json:
        render.print_json([c.model_dump() for c in chats])
    elif not chats:
        typer.echo("no conversations yet; import an export with `labmind import PATH`", err=True)
    else:
        render.stdout().print(_chats_table(chats))


def _chats_table(chats: list[ChatSummary]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("title")
    table.add_column("messages", justify="right")
    table.add_column("updated", no_wrap=True)
    table.add_column("from")
    for chat in chats:
        stamp = chat.updated or chat.created
        table.add_row(
            chat.id[:ID_SHOWN],
            Text(chat.title),
            str(chat.messages),
            render.when(stamp) if stamp else "",
            chat.source,
        )
    return table


@chats_app.command("show")
def chats_show(
    ctx: typer.Context,
    chat_id: Annotated[str, typer.Argument(metavar="ID", help="A conversation id or prefix.")],
    branches: Annotated[
        bool, typer.Option("--all-branches", help="Also show edited-away branches.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """A conversation as readable Markdown, code highlighted."""
    with connect_client(ctx) as client:
        detail = client.chat(chat_id)
    if as_json:
        render.print_json(detail.model_dump())
        return
    print_chat(render.stdout(), detail, branches=branches)


def print_chat(console: Console, detail: ChatDetail, *, branches: bool) -> None:
    chat = detail.chat
    console.print(Text(chat.title, style="bold"))
    stamp = chat.created or chat.updated
    meta = [chat.source, chat.id]
    if stamp:
        meta.append(render.when(stamp))
    if chat.model:
        meta.append(chat.model)
    console.print(Text(" · ".join(meta), style="dim"))
    hidden = 0
    for message in detail.messages:
        if not message.on_path and not branches:
            hidden += 1
            continue
        label = message.role + ("" if message.on_path else " (other branch)")
        if message.created:
            label += f" · {render.when(message.created)}"
        console.print(Rule(Text(label, style="bold"), align="left"))
        console.print(Markdown(message.text, code_theme="monokai"))
    if hidden:
        console.print(
            Text(f"{hidden} messages on other branches; see them with --all-branches", "dim")
        )


def why_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="PATH[:LINE]", help="A file, or a line in it.")],
    as_json: JsonOption = False,
) -> None:
    """Which conversations produced this code."""
    path, line = split_target(target)
    real = existing_path(path, folder=False)
    with connect_client(ctx) as client:
        answer = client.why(real, line)
    if as_json:
        render.print_json([link.model_dump() for link in answer.links])
    else:
        print_why(render.stdout(), answer)
    if not answer.indexed:
        raise CliError(f"{real} is not indexed; watch its folder with `labmind watch add`")


def split_target(target: str) -> tuple[str, int | None]:
    """`PATH:LINE` → (PATH, LINE); a path that exists with its colon stays whole."""
    head, sep, tail = target.rpartition(":")
    if sep and tail.isdigit() and not Path(target).exists():
        line = int(tail)
        if line < 1:
            raise CliError(f"{target}: lines start at 1")
        return head, line
    return target, None


def print_why(console: Console, answer: WhyResponse) -> None:
    where = answer.path if answer.line is None else f"{answer.path}:{answer.line}"
    if not answer.links:
        if answer.indexed:
            console.print(f"no conversation found that produced {where}")
        return
    console.print(Text(f"conversations behind {where}", style="bold"))
    for link in answer.links:
        date = render.when(link.created) if link.created else "undated"
        console.print(
            Text.assemble(
                (f"{link.score:.2f}  ", "green"),
                (link.title, "bold"),
                f"  {date}  message #{link.position} ({link.role})",
                f"  lines {link.start_line}-{link.end_line}  ",
                (link.chat_id[:ID_SHOWN], "cyan"),
            )
        )
    console.print(Text("read one with `labmind chats show ID`", style="dim"))
