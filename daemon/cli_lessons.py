"""`labmind lessons` (libraries that failed and what replaced them) and `labmind suggest`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from . import cli_render as render
from .cli_session import CliError, JsonOption, connect_client
from .protocol import LessonInfo

lessons_app = typer.Typer(
    help="Libraries that failed (in chats and runs) and what replaced them.",
    invoke_without_command=True,
)

LessonId = Annotated[str, typer.Argument(help="A lesson id (or a unique prefix) or its library.")]


@lessons_app.callback()
def lessons_command(
    ctx: typer.Context,
    as_json: JsonOption = False,
    include_dismissed: Annotated[
        bool, typer.Option("--all", help="Also list dismissed lessons.")
    ] = False,
) -> None:
    """List the lessons, most confident first."""
    if ctx.invoked_subcommand is not None:
        return
    with connect_client(ctx) as client:
        found = client.lessons(include_dismissed=include_dismissed)
    if as_json:
        render.print_json([lesson.model_dump() for lesson in found])
        return
    console = render.stdout()
    if not found:
        console.print(
            "no lessons yet: they are mined from imported chats (`labmind import PATH`) "
            "and failed runs"
        )
        return
    console.print(lessons_table(found))


@lessons_app.command("dismiss")
def dismiss_command(ctx: typer.Context, lesson: LessonId, as_json: JsonOption = False) -> None:
    """Stop showing a lesson (and warning about it)."""
    _update(ctx, lesson, as_json, status="dismissed")


@lessons_app.command("restore")
def restore_command(ctx: typer.Context, lesson: LessonId, as_json: JsonOption = False) -> None:
    """Show a dismissed lesson again."""
    _update(ctx, lesson, as_json, status="active")


@lessons_app.command("edit")
def edit_command(
    ctx: typer.Context,
    lesson: LessonId,
    resolution: Annotated[
        str | None, typer.Option(help="What works instead, e.g. 'use pillow instead'.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note of your own.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Correct a lesson's resolution or add a note."""
    if resolution is None and note is None:
        raise CliError("nothing to change; give --resolution TEXT or --note TEXT")
    _update(ctx, lesson, as_json, resolution=resolution, note=note)


def _update(
    ctx: typer.Context,
    lesson: str,
    as_json: bool,
    *,
    status: str | None = None,
    resolution: str | None = None,
    note: str | None = None,
) -> None:
    with connect_client(ctx) as client:
        updated = client.lesson_update(lesson, status=status, resolution=resolution, note=note)
    if as_json:
        render.print_json(updated.model_dump())
        return
    render.stdout().print(f"lesson {updated.id} ({updated.library}): {updated.status}")


def suggest_command(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="What you are about to ask an assistant to do.")],
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=50, help="Items of each kind.")
    ] = 5,
    as_json: JsonOption = False,
) -> None:
    """Print a paste-ready preamble for a chat assistant: lessons, your code, related chats."""
    if not task.strip():
        raise CliError('describe the task, e.g. `labmind suggest "resize a folder of images"`')
    with connect_client(ctx) as client:
        found = client.suggest(task, limit=limit)
    if as_json:
        render.print_json(found.model_dump())
        return
    typer.echo(found.preamble, nl=False)


def lessons_table(lessons: list[LessonInfo]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("id")
    table.add_column("library")
    table.add_column("seen", justify="right")
    table.add_column("symptom", overflow="fold")
    table.add_column("resolution", overflow="fold")
    table.add_column("last seen")
    table.add_column("conf", justify="right")
    for lesson in lessons:
        status = "" if lesson.status == "active" else f" ({lesson.status})"
        table.add_row(
            lesson.id,
            Text(lesson.library + status, "bold" if lesson.status != "dismissed" else "dim"),
            str(lesson.count),
            lesson.symptom,
            lesson.resolution or "-",
            render.when(lesson.last_seen) if lesson.last_seen else "-",
            f"{lesson.confidence:.2f}",
        )
    return table
