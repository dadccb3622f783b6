"""`labmind exp submit|ls|show|logs|wait|cancel|retry|approve|pause|resume`."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import cli_render as render
from .cli_session import CliError, JsonOption, connect_client
from .client import DaemonClient
from .protocol import RunDetail, RunInfo

POLL_S = 0.5
FOLLOW_S = 0.3
SPARK = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 40
DONE = frozenset({"succeeded", "failed", "cancelled", "needs_approval"})

exp_app = typer.Typer(
    help="Experiments: sweeps queued on your GPUs or CPU slots, watched, retried with fixes.",
    no_args_is_help=True,
)

RunArgument = Annotated[str, typer.Argument(help="A run id (or a unique prefix).")]


def _params(params: dict[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _runs_table(runs: list[RunInfo]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("run", "status", "attempt", "exit", "params", "note"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.id,
            run.status,
            str(run.attempt),
            "" if run.exit_code is None else str(run.exit_code),
            _params(run.params),
            run.summary or "",
        )
    return table


@exp_app.command("submit")
def exp_submit(
    ctx: typer.Context,
    spec: Annotated[str, typer.Argument(help="A YAML or TOML experiment spec.")],
    wait: Annotated[bool, typer.Option(help="Wait until every run has finished.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Queue every run of a spec (a sweep expands into one run per combination)."""
    path = Path(spec).expanduser()
    if not path.is_file():
        raise CliError(f"{spec}: no such spec file")
    with connect_client(ctx) as client:
        result = client.exp_submit(str(path.resolve()))
        runs = _wait(client, [r.id for r in result.runs], None) if wait else result.runs
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        render.print_json({**result.model_dump(), "runs": [r.model_dump() for r in runs]})
    else:
        typer.echo(f"sweep {result.sweep}: {len(runs)} runs queued")
        render.stdout().print(_runs_table(runs))
    if wait and any(r.status != "succeeded" for r in runs):
        raise CliError(f"{sum(r.status != 'succeeded' for r in runs)} runs did not succeed")


@exp_app.command("ls")
def exp_ls(
    ctx: typer.Context,
    sweep: Annotated[str | None, typer.Option(help="Only the runs of this sweep.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every run: status, attempt, exit code, parameters."""
    with connect_client(ctx) as client:
        runs = client.exp_runs(sweep)
    if as_json:
        render.print_json([r.model_dump() for r in runs])
    elif not runs:
        typer.echo("no runs yet; `labmind exp submit SPEC` queues some")
    else:
        render.stdout().print(_runs_table(runs))


@exp_app.command("show")
def exp_show(ctx: typer.Context, run: RunArgument, as_json: JsonOption = False) -> None:
    """A run: its attempts and what changed between them, latest metrics, the log's end."""
    with connect_client(ctx) as client:
        detail = client.exp_run(run)
        flagged = 0 if as_json else client.exp_outliers(detail.run.id, limit=1).flagged
    if as_json:
        render.print_json(detail.model_dump())
        return
    _print_detail(detail, flagged)


def _print_detail(detail: RunDetail, flagged: int = 0) -> None:
    console = render.stdout()
    run = detail.run
    console.print(f"[bold]{run.id}[/bold] {run.name} — {run.status}")
    console.print(f"command: {run.command}")
    if detail.code_commit:
        console.print(
            f"code: {detail.code_commit[:12]} (`labmind backup restore` can bring it back)"
        )
    for attempt in detail.attempts:
        outcome = (
            "running"
            if attempt.ended_at is None
            else f"exit {attempt.exit_code}"
            if attempt.signal is None
            else f"signal {attempt.signal}"
        )
        line = f"attempt {attempt.attempt}: {_params(attempt.params)} → {outcome}"
        if attempt.failure:
            line += f" ({attempt.failure}: {attempt.summary})"
        if attempt.change:
            line += f" [after: {attempt.change}]"
        console.print(line)
    for name, values in detail.metrics.items():
        if values:
            console.print(f"{name:>12} {values[-1]:<12.6g} {sparkline(values)}")
    if flagged:
        console.print(f"{flagged} samples flagged (labmind outliers {run.id})", markup=False)
    if detail.proposal:
        console.print(f"proposal waiting for `labmind exp approve {run.id}`: {detail.proposal}")
    if detail.log_tail:
        console.rule("log (end)")
        console.print(detail.log_tail.rstrip("\n"), markup=False, highlight=False)


def sparkline(values: list[float]) -> str:
    """The last values as block characters, low to high (non-finite values as spaces)."""
    points = values[-SPARK_POINTS:]
    finite = [v for v in points if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    return "".join(
        SPARK[min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))] if math.isfinite(v) else " "
        for v in points
    )


@exp_app.command("logs")
def exp_logs(
    ctx: typer.Context,
    run: RunArgument,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new output.")
    ] = False,
) -> None:
    """A run's output (of its latest attempt)."""
    with connect_client(ctx) as client:
        offset = 0
        while True:
            chunk = client.exp_log(run, offset)
            if chunk.text:
                typer.echo(chunk.text, nl=False)
            offset = chunk.offset
            if not follow or chunk.finished:
                return
            time.sleep(FOLLOW_S)


@exp_app.command("wait")
def exp_wait(
    ctx: typer.Context,
    runs: Annotated[
        list[str] | None, typer.Argument(help="Runs to wait for; default: all.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Wait until runs have finished; exits 1 if any did not succeed."""
    with connect_client(ctx) as client:
        ids = [client.exp_run(r).run.id for r in runs] if runs else None
        finished = _wait(client, ids, timeout)
    if as_json:
        render.print_json([r.model_dump() for r in finished])
    else:
        render.stdout().print(_runs_table(finished))
    if any(r.status not in DONE for r in finished):
        raise CliError(f"timed out after {timeout:g} s with runs still going")
    if any(r.status != "succeeded" for r in finished):
        raise CliError(f"{sum(r.status != 'succeeded' for r in finished)} runs did not succeed")


def _wait(client: DaemonClient, ids: list[str] | None, timeout: float | None) -> list[RunInfo]:
    deadline = None if timeout is None else time.monotonic() + timeout
    with render.spinner("waiting for runs"):
        while True:
            runs = client.exp_runs()
            if ids is not None:
                wanted = set(ids)
                runs = [r for r in runs if r.id in wanted]
            if all(r.status in DONE for r in runs):
                return runs
            if deadline is not None and time.monotonic() > deadline:
                return runs
            time.sleep(POLL_S)


def _act(ctx: typer.Context, run: str, action: str, as_json: bool) -> None:
    with connect_client(ctx) as client:
        info = client.exp_action(run, action)
    if as_json:
        render.print_json(info.model_dump())
    else:
        typer.echo(f"{info.id}: {info.status} (attempt {info.attempt})")


@exp_app.command("cancel")
def exp_cancel(ctx: typer.Context, run: RunArgument, as_json: JsonOption = False) -> None:
    """Stop a run (its process group gets SIGTERM, then SIGKILL) or take it off the queue."""
    _act(ctx, run, "cancel", as_json)


@exp_app.command("retry")
def exp_retry(ctx: typer.Context, run: RunArgument, as_json: JsonOption = False) -> None:
    """Queue a failed or cancelled run again, as a new attempt."""
    _act(ctx, run, "retry", as_json)


@exp_app.command("approve")
def exp_approve(ctx: typer.Context, run: RunArgument, as_json: JsonOption = False) -> None:
    """Apply the fix a run is waiting on and queue it."""
    _act(ctx, run, "approve", as_json)


@exp_app.command("pause")
def exp_pause(ctx: typer.Context) -> None:
    """Start no new runs (running ones go on) until `exp resume`."""
    with connect_client(ctx) as client:
        typer.echo(client.exp_pause(True).message)


@exp_app.command("resume")
def exp_resume(ctx: typer.Context) -> None:
    """Start queued runs again."""
    with connect_client(ctx) as client:
        typer.echo(client.exp_pause(False).message)
