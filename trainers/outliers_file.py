"""What a ``SampleTracker`` reports in a run folder: ``outliers.jsonl`` and ``spikes.jsonl``.

One JSON object per line, appended whole by the training script::

    outliers.jsonl  {"time": 1718000000.5, "step": 420, "epoch": 3, "sample": 1234,
                     "score": 4.2, "reasons": ["label_error"], "label": 3, "predicted": 8,
                     "detail": {"loss_ema": 2.1, "margin": -0.7}}
    spikes.jsonl    {"time": 1718000000.5, "step": 421, "loss": 9.5, "baseline": 0.4,
                     "z": 11.2, "samples": [17, 1234]}

``epoch``, ``label`` and ``predicted`` may be null; a sample may be reported again later with
a new score (the latest counts). The readers follow a file that is still being written, from a
remembered offset (:func:`labmind.trainers.run_dir.read_json_lines`): a partial last line is
left for the next call, lines that do not fit the format are skipped, and no call reads more
than ``max_bytes``. Numbers that are not finite may be written as JSON ``NaN``/``Infinity`` or
as the strings ``"nan"``, ``"inf"``, ``"-inf"``. Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from .run_dir import read_json_lines

OUTLIERS_FILE = "outliers.jsonl"
SPIKES_FILE = "spikes.jsonl"
REASONS = ("label_error", "corrupted_input", "spike", "forgotten")
"""The reasons a tracker gives; a reader keeps any other string it finds as well."""

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@dataclass(frozen=True, slots=True)
class OutlierRecord:
    """One line of ``outliers.jsonl``: a sample the tracker flagged, and why."""

    time: float
    step: int
    epoch: int | None
    sample: int
    score: float
    reasons: tuple[str, ...]
    label: int | None = None
    predicted: int | None = None
    detail: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpikeRecord:
    """One line of ``spikes.jsonl``: a batch loss spike and the samples that drove it."""

    time: float
    step: int
    loss: float
    baseline: float
    z: float
    samples: tuple[int, ...]


def read_outliers(
    path: Path, offset: int = 0, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[list[OutlierRecord], int]:
    """Well-formed records of ``outliers.jsonl`` from ``offset`` on, and the next offset."""
    objects, offset = read_json_lines(path, offset, max_bytes=max_bytes)
    return [r for data in objects if (r := outlier_record(data)) is not None], offset


def read_spikes(
    path: Path, offset: int = 0, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[list[SpikeRecord], int]:
    """Well-formed records of ``spikes.jsonl`` from ``offset`` on, and the next offset."""
    objects, offset = read_json_lines(path, offset, max_bytes=max_bytes)
    return [r for data in objects if (r := spike_record(data)) is not None], offset


def outlier_record(data: Mapping[str, Any]) -> OutlierRecord | None:
    """``data`` as an :class:`OutlierRecord`, or ``None`` when it does not fit the format."""
    when, step, sample = _number(data.get("time")), data.get("step"), data.get("sample")
    score, reasons = _number(data.get("score")), data.get("reasons")
    epoch, label, predicted = data.get("epoch"), data.get("label"), data.get("predicted")
    detail = data.get("detail", {})
    if not _is_int(step) or not _is_int(sample) or sample < 0:
        return None
    if when is None or score is None:
        return None
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        return None
    if not all(v is None or _is_int(v) for v in (epoch, label, predicted)):
        return None
    if not isinstance(detail, dict):
        return None
    numbers = {str(k): n for k, v in detail.items() if (n := _number(v)) is not None}
    return OutlierRecord(
        time=when,
        step=step,
        epoch=epoch,
        sample=sample,
        score=score,
        reasons=tuple(dict.fromkeys(reasons)),
        label=label,
        predicted=predicted,
        detail=numbers,
    )


def spike_record(data: Mapping[str, Any]) -> SpikeRecord | None:
    """``data`` as a :class:`SpikeRecord`, or ``None`` when it does not fit the format."""
    when, step, samples = _number(data.get("time")), data.get("step"), data.get("samples")
    loss, baseline, z = (_number(data.get(k)) for k in ("loss", "baseline", "z"))
    if not _is_int(step):
        return None
    if when is None or loss is None or baseline is None or z is None:
        return None
    if not isinstance(samples, list) or not all(_is_int(s) and s >= 0 for s in samples):
        return None
    return SpikeRecord(
        time=when, step=step, loss=loss, baseline=baseline, z=z, samples=tuple(samples)
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> float | None:
    if isinstance(value, str):
        return _NON_FINITE.get(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
