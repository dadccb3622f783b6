"""Appending the tracker's findings to the run folder (standard library only).

With ``$LABMIND_RUN_DIR`` set, flagged samples go to ``outliers.jsonl`` and loss spikes to
``spikes.jsonl`` in that folder, one JSON object per line::

    {"time": 1718000000.5, "step": 1200, "epoch": 3, "sample": 417, "score": 7.9,
     "reasons": ["label_error"], "label": 3, "predicted": 8, "detail": {"loss": 4.1, ...}}
    {"time": 1718000000.5, "step": 977, "loss": 2.7, "baseline": 0.41, "z": 23.5,
     "samples": [12, 904, 33]}

Each line is written with one ``os.write`` on an ``O_APPEND`` descriptor, so readers never
see half a line and several processes can append to the same file. Only what is new is
appended: a sample again only when its reasons change, a spike once. A write that fails
is reported once on stderr and does not stop training.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from .findings import Flag, Spike

RUN_DIR_ENV = "LABMIND_RUN_DIR"
OUTLIERS_FILE = "outliers.jsonl"
SPIKES_FILE = "spikes.jsonl"


def _finite(value: float) -> float:
    if math.isnan(value):
        return 0.0
    if math.isinf(value):
        return math.copysign(sys.float_info.max, value)
    return float(value)


def outlier_record(flag: Flag, *, step: int, epoch: int | None, now: float) -> dict[str, object]:
    """The ``outliers.jsonl`` object for ``flag``."""
    return {
        "time": now,
        "step": int(step),
        "epoch": None if epoch is None else int(epoch),
        "sample": int(flag.sample),
        "score": _finite(flag.score),
        "reasons": list(flag.reasons),
        "label": flag.label,
        "predicted": flag.predicted,
        "detail": {k: float(v) for k, v in flag.detail.items() if math.isfinite(v)},
    }


def spike_record(spike: Spike, *, now: float) -> dict[str, object]:
    """The ``spikes.jsonl`` object for ``spike``."""
    return {
        "time": now,
        "step": int(spike.step),
        "loss": _finite(spike.loss),
        "baseline": _finite(spike.baseline),
        "z": _finite(spike.z),
        "samples": [int(s) for s in spike.samples],
    }


def _line(record: dict[str, object]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


class AppendOnlyFile:
    """An ``O_APPEND`` descriptor on which every line is one ``os.write``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write_line(self, line: bytes) -> None:
        """Append ``line`` whole; raises ``OSError`` when the write fails or is short."""
        written = os.write(self.fd, line)
        if written != len(line):
            raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")

    def __enter__(self) -> AppendOnlyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class FindingsReport:
    """What has been appended so far, and appending what is new."""

    def __init__(self) -> None:
        self._reasons: dict[int, tuple[str, ...]] = {}
        self._spike_steps: set[int] = set()
        self._warned = False

    def new_flags(self, flags: Iterable[Flag]) -> list[Flag]:
        """The flags not appended yet, or appended with other reasons."""
        return [f for f in flags if self._reasons.get(f.sample) != f.reasons]

    def new_spikes(self, spikes: Iterable[Spike]) -> list[Spike]:
        return [s for s in spikes if s.step not in self._spike_steps]

    def append(
        self,
        run_dir: str | os.PathLike[str],
        flags: Iterable[Flag],
        spikes: Iterable[Spike],
        *,
        step: int,
        epoch: int | None,
    ) -> int:
        """Append the new ``flags`` and ``spikes`` under ``run_dir``; the number of lines."""
        now = round(time.time(), 6)
        fresh_flags = self.new_flags(flags)
        fresh_spikes = self.new_spikes(spikes)
        folder = Path(run_dir)
        written = 0
        try:
            if fresh_spikes:
                with AppendOnlyFile(folder / SPIKES_FILE) as out:
                    for spike in fresh_spikes:
                        out.write_line(_line(spike_record(spike, now=now)))
                        self._spike_steps.add(spike.step)
                        written += 1
            if fresh_flags:
                with AppendOnlyFile(folder / OUTLIERS_FILE) as out:
                    for flag in fresh_flags:
                        out.write_line(_line(outlier_record(flag, step=step, epoch=epoch, now=now)))
                        self._reasons[flag.sample] = flag.reasons
                        written += 1
        except OSError as exc:
            if not self._warned:
                self._warned = True
                print(f"labmind.trainers.track: cannot write findings: {exc}", file=sys.stderr)
        return written
