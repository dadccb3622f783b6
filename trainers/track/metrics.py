"""``log(step, **metrics)``: one JSON line per call in ``$LABMIND_RUN_DIR/metrics.jsonl``.

Safe to leave in any training script: without ``LABMIND_RUN_DIR`` (the script runs outside
labmind) it returns at once and writes nothing. Under labmind each call is one ``os.write``
of one line on an ``O_APPEND`` descriptor, so lines from several processes (DataLoader
workers, DDP ranks) never interleave within a line. The descriptor stays open and is
reopened when ``LABMIND_RUN_DIR`` changes.

A line looks like ``{"step": 10, "time": 1718000000.123, "loss": 0.25}``: ``time`` is epoch
seconds, values are floats (numpy and torch scalars go through ``float()``), and values that
are not finite are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (never invalid
JSON; :func:`labmind.trainers.run_dir.read_metrics` turns them back into floats).

A write that fails (disk full, run folder gone) does not stop training: it is reported once
on stderr, which labmind keeps in the run's log. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import SupportsFloat

RUN_DIR_ENV = "LABMIND_RUN_DIR"
METRICS_FILE = "metrics.jsonl"
RESERVED = frozenset({"step", "time"})


class _Sink:
    """The open ``metrics.jsonl`` of the current run folder."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.run_dir: str | None = None
        self.fd: int | None = None
        self.warned = False

    def fd_for(self, run_dir: str) -> int | None:
        if self.fd is not None and run_dir == self.run_dir:
            return self.fd
        self.close()
        self.run_dir = run_dir
        try:
            self.fd = os.open(
                Path(run_dir) / METRICS_FILE,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                0o644,
            )
        except OSError as exc:
            self.warn(exc)
            return None
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None
        self.run_dir = None

    def write(self, run_dir: str, data: bytes) -> None:
        with self.lock:
            fd = self.fd_for(run_dir)
            if fd is None:
                return
            try:
                while data:
                    data = data[os.write(fd, data) :]
            except OSError as exc:
                self.warn(exc)
                self.close()

    def warn(self, exc: OSError) -> None:
        if not self.warned:
            self.warned = True
            print(f"labmind.trainers.track: cannot write metrics: {exc}", file=sys.stderr)


_sink = _Sink()


def _after_fork_in_child() -> None:
    # A fork taken while another thread held the lock must not leave it held forever.
    _sink.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def log(step: int, **metrics: SupportsFloat) -> None:
    """Record ``metrics`` (name → number) at ``step`` for the run this script belongs to.

    Does nothing outside a labmind run (no ``LABMIND_RUN_DIR``); values are then not even
    converted, so logging a CUDA tensor costs no synchronisation.
    """
    clash = RESERVED.intersection(metrics)
    if clash:
        raise ValueError(f"metric names {sorted(clash)} are reserved; choose other names")
    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        return
    record: dict[str, object] = {"step": int(step), "time": round(time.time(), 6)}
    for name, value in metrics.items():
        number = float(value)
        record[name] = number if math.isfinite(number) else str(number)
    line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
    _sink.write(run_dir, line.encode())
