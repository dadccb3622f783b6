"""`labmind outliers RUN`: the samples a run's `SampleTracker` flagged, and its loss spikes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from . import cli_render as render
from .cli_session import JsonOption, connect_client
from .protocol import FlaggedSample, LossSpike, OutlierReason, RunOutliers

DEFAULT_LIMIT = 50
SPIKE_SAMPLES_SHOWN = 8


def outliers_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="A run id (or a unique prefix).")],
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="Samples and spikes shown.")
    ] = DEFAULT_LIMIT,
    reason: Annotated[
        OutlierReason | None, typer.Option(help="Only samples flagged for this reason.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Samples a run's tracker flagged (most suspicious first) and the loss spikes it saw."""
    with connect_client(ctx) as client:
        found = client.exp_outliers(run, limit=limit, reason=reason)
    if as_json:
        render.print_json(found.model_dump())
        return
    console = render.stdout()
    console.print(_headline(found))
    if found.samples:
        console.print(samples_table(found.samples))
        wanted = found.flagged if reason is None else found.reasons.get(reason, 0)
        if wanted > len(found.samples):
            console.print(f"… and {wanted - len(found.samples)} more (--limit N shows more)")
    if found.spikes:
        console.print()
        console.print(f"{found.spike_count} loss spikes" + _latest(found))
        console.print(spikes_table(found.spikes))


def _headline(found: RunOutliers) -> str:
    where = f"run {found.run}" + (f" (attempt {found.attempt})" if found.attempt else "")
    if found.run_dir is None:
        return f"{where} has not started yet; nothing flagged"
    if not found.flagged:
        return f"{where}: no samples flagged"
    reasons = ", ".join(f"{name} {count}" for name, count in found.reasons.items())
    return f"{where}: {found.flagged} samples flagged ({reasons})"


def _latest(found: RunOutliers) -> str:
    return f" (the latest {len(found.spikes)})" if found.spike_count > len(found.spikes) else ""


def _number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4g}"


def _class(value: int | None) -> str:
    return "?" if value is None else str(value)


def samples_table(samples: list[FlaggedSample]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("sample", justify="right")
    table.add_column("score", justify="right")
    table.add_column("reasons")
    table.add_column("label → predicted")
    table.add_column("step", justify="right")
    for item in samples:
        classes = (
            ""
            if item.label is None and item.predicted is None
            else f"{_class(item.label)} → {_class(item.predicted)}"
        )
        table.add_row(
            str(item.sample),
            _number(item.score),
            ", ".join(item.reasons),
            classes,
            str(item.step),
        )
    return table


def spikes_table(spikes: list[LossSpike]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("step", "loss", "baseline", "z"):
        table.add_column(column, justify="right")
    table.add_column("samples")
    for spike in spikes:
        shown = " ".join(str(s) for s in spike.samples[:SPIKE_SAMPLES_SHOWN])
        if len(spike.samples) > SPIKE_SAMPLES_SHOWN:
            shown += f" … (+{len(spike.samples) - SPIKE_SAMPLES_SHOWN})"
        table.add_row(
            str(spike.step), _number(spike.loss), _number(spike.baseline), _number(spike.z), shown
        )
    return table
