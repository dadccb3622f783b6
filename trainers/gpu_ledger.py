"""Choosing GPUs for a run and holding them until it ends.

The queue asks :meth:`GpuLedger.reserve` with a fresh inventory snapshot
(:class:`~labmind.trainers.gpus.GpuInfo`), the pids of the processes labmind started, and
the :class:`SharingPolicy`. A GPU qualifies when

- fewer than ``policy.max_runs_per_gpu`` live runs hold it (default 1: a run has its GPUs
  to itself, so two launches never take the same GPU);
- no process labmind did not start runs on it, or sharing is allowed and those processes
  stay under the policy's thresholds;
- it has ``min_free_mb`` free, counting what recent reservations will take: a new run
  needs some seconds before it allocates, so for ``grace_s`` after its reservation its
  ``min_free_mb`` is held on each of its GPUs; after that NVML's used memory speaks for it.

Among those it prefers GPUs with the fewest labmind runs, then the most free memory, then
the lowest index. Everything is pure and the time is passed in, so tests need no sleeps.
:meth:`GpuLedger.fits_ever` tells a request that can never fit here from one that waits.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .gpus import GpuInfo

DEFAULT_GRACE_S = 120.0
"""How long a reservation holds its ``min_free_mb``: the seconds a new run takes to start
Python, import torch, load data and allocate."""


@dataclass(frozen=True)
class SharingPolicy:
    """When a GPU that others use still counts as free.

    ``allow_foreign``: GPUs running processes labmind did not start are busy unless this is
    set; then they are usable while those processes hold at most ``max_foreign_used_mb`` and
    the GPU is at most ``max_utilization_pct`` busy (where it reports utilization).
    ``max_runs_per_gpu``: labmind runs that may share one GPU (1: none share)."""

    allow_foreign: bool = False
    max_foreign_used_mb: int = 2048
    max_utilization_pct: int = 50
    max_runs_per_gpu: int = 1

    def __post_init__(self) -> None:
        if self.max_foreign_used_mb < 0:
            raise ValueError("max_foreign_used_mb must not be negative")
        if not 0 <= self.max_utilization_pct <= 100:
            raise ValueError("max_utilization_pct must be between 0 and 100")
        if self.max_runs_per_gpu < 1:
            raise ValueError("max_runs_per_gpu must be at least 1")


@dataclass(frozen=True)
class Reservation:
    """GPUs held by one run; ``hold_mb`` of memory on each is counted as taken until
    ``since + grace_s`` (adopted runs hold none: their memory is already in use)."""

    run_id: str
    uuids: tuple[str, ...]
    hold_mb: int
    since: float


def foreign_used_mb(gpu: GpuInfo, own_pids: Iterable[int]) -> int:
    """Memory held by processes labmind did not start. Where NVML gives no per-process
    figure for one of them, all memory not accounted to labmind's processes counts."""
    own = set(own_pids)
    foreign = [p for p in gpu.processes if p.pid not in own]
    known = sum(p.used_mb or 0 for p in foreign)
    if any(p.used_mb is None for p in foreign):
        own_known = sum(p.used_mb or 0 for p in gpu.processes if p.pid in own)
        known = max(known, gpu.memory_used_mb - own_known)
    return known


def foreign_busy(gpu: GpuInfo, own_pids: Iterable[int], policy: SharingPolicy) -> str | None:
    """Why processes labmind did not start make this GPU busy under ``policy`` (a phrase to
    follow "GPU 0 "), or ``None``."""
    own = set(own_pids)
    foreign = [p.pid for p in gpu.processes if p.pid not in own]
    if not foreign:
        return None
    pids = ", ".join(str(pid) for pid in foreign[:3]) + ("…" if len(foreign) > 3 else "")
    if not policy.allow_foreign:
        return f"is used by processes labmind did not start (pid {pids})"
    used = foreign_used_mb(gpu, own)
    if used > policy.max_foreign_used_mb:
        return (
            f"has {_gb(used)} taken by other processes (pid {pids}), "
            f"more than the {_gb(policy.max_foreign_used_mb)} sharing allows"
        )
    if gpu.utilization_pct is not None and gpu.utilization_pct > policy.max_utilization_pct:
        return (
            f"is {gpu.utilization_pct}% busy with other processes (pid {pids}), "
            f"more than the {policy.max_utilization_pct}% sharing allows"
        )
    return None


class GpuLedger:
    """Which run holds which GPUs. Thread-safe; holds no clock (``now`` is passed in, from
    one monotonic source)."""

    def __init__(self, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        if grace_s < 0:
            raise ValueError("grace_s must not be negative")
        self.grace_s = grace_s
        self._runs: dict[str, Reservation] = {}
        self._lock = threading.Lock()

    # --- holding and letting go -----------------------------------------------------------

    def reserve(
        self,
        run_id: str,
        count: int,
        *,
        min_free_mb: int,
        gpus: Sequence[GpuInfo],
        own_pids: Iterable[int],
        policy: SharingPolicy,
        now: float,
    ) -> list[str] | None:
        """Pick ``count`` GPUs for ``run_id`` and hold them; their UUIDs in index order, or
        ``None`` when the request does not fit now. ``count == 0`` (a CPU run) is ``[]`` and
        holds nothing. A run holds one reservation: release it before reserving again."""
        _check_request(count, min_free_mb)
        own = set(own_pids)
        with self._lock:
            if run_id in self._runs:
                raise ValueError(f"run {run_id} already holds GPUs; release them first")
            if count == 0:
                return []
            usable, _ = self._usable(min_free_mb, gpus, own, policy, now)
            if len(usable) < count:
                return None
            chosen = sorted(usable[:count], key=lambda gpu: gpu.index)
            uuids = tuple(gpu.uuid for gpu in chosen)
            self._runs[run_id] = Reservation(run_id, uuids, min_free_mb, now)
            return list(uuids)

    def release(self, run_id: str) -> list[str]:
        """Let go of what ``run_id`` holds; the UUIDs it held (``[]`` when none)."""
        with self._lock:
            held = self._runs.pop(run_id, None)
        return list(held.uuids) if held else []

    def adopt(self, run_id: str, uuids: Sequence[str]) -> None:
        """Record GPUs a run already uses (reattached after a daemon restart). No checks:
        the run is on them whatever the ledger thinks, and its memory is already allocated.
        Replaces what ``run_id`` held before."""
        if isinstance(uuids, str):
            raise TypeError("adopt takes a sequence of GPU UUIDs, not one string")
        held = tuple(dict.fromkeys(uuids))
        with self._lock:
            if held:
                self._runs[run_id] = Reservation(run_id, held, 0, -math.inf)
            else:
                self._runs.pop(run_id, None)

    def reserved(self) -> dict[str, list[str]]:
        """Run id → the UUIDs it holds."""
        with self._lock:
            return {run_id: list(r.uuids) for run_id, r in self._runs.items()}

    def reservation(self, run_id: str) -> Reservation | None:
        with self._lock:
            return self._runs.get(run_id)

    # --- questions ------------------------------------------------------------------------

    def why_waiting(
        self,
        count: int,
        *,
        min_free_mb: int,
        gpus: Sequence[GpuInfo],
        own_pids: Iterable[int],
        policy: SharingPolicy,
        now: float,
    ) -> str | None:
        """One line on why such a request would not fit now (``None``: it would), e.g. for
        ``exp show`` of a queued run."""
        _check_request(count, min_free_mb)
        if count == 0:
            return None
        never = self.fits_ever(count, min_free_mb, gpus)
        if never:
            return never
        with self._lock:
            usable, reasons = self._usable(min_free_mb, gpus, set(own_pids), policy, now)
        if len(usable) >= count:
            return None
        wanted = "1 GPU" if count == 1 else f"{count} GPUs"
        free = "none" if not usable else f"only {len(usable)}"
        details = "; ".join(f"GPU {index} {why}" for index, why in sorted(reasons.items()))
        return f"waiting for {wanted}, {free} free now: {details}"

    @staticmethod
    def fits_ever(count: int, min_free_mb: int, gpus: Sequence[GpuInfo]) -> str | None:
        """One line saying why ``count`` GPUs with ``min_free_mb`` each can never be had on
        this machine (however long the run waits), or ``None`` when they can."""
        _check_request(count, min_free_mb)
        if count == 0:
            return None
        wanted = "1 GPU" if count == 1 else f"{count} GPUs"
        if not gpus:
            return f"asks for {wanted} but this machine has no GPU"
        if count > len(gpus):
            has = "1 GPU" if len(gpus) == 1 else f"{len(gpus)} GPUs"
            return f"asks for {wanted} but this machine has {has}"
        big_enough = [gpu for gpu in gpus if gpu.memory_total_mb >= min_free_mb]
        if len(big_enough) >= count:
            return None
        largest = max(gpu.memory_total_mb for gpu in gpus)
        if count == 1:
            return (
                f"asks for {_gb(min_free_mb)} of GPU memory but the largest GPU here "
                f"has {_gb(largest)}"
            )
        return (
            f"asks for {count} GPUs with {_gb(min_free_mb)} each but only "
            f"{len(big_enough)} of the {len(gpus)} GPUs here have that much "
            f"(the largest has {_gb(largest)})"
        )

    # --- inside ---------------------------------------------------------------------------

    def _usable(
        self,
        min_free_mb: int,
        gpus: Sequence[GpuInfo],
        own: set[int],
        policy: SharingPolicy,
        now: float,
    ) -> tuple[list[GpuInfo], dict[int, str]]:
        """GPUs a new run could take, best first, and why each other GPU cannot be taken
        (by index). The caller holds the lock."""
        runs_on: dict[str, int] = {}
        held_mb: dict[str, int] = {}
        for r in self._runs.values():
            pending = now - r.since < self.grace_s
            for uuid in r.uuids:
                runs_on[uuid] = runs_on.get(uuid, 0) + 1
                if pending:
                    held_mb[uuid] = held_mb.get(uuid, 0) + r.hold_mb
        usable: list[tuple[tuple[int, int, int], GpuInfo]] = []
        reasons: dict[int, str] = {}
        for gpu in gpus:
            runs = runs_on.get(gpu.uuid, 0)
            free = gpu.memory_free_mb - held_mb.get(gpu.uuid, 0)
            if runs >= policy.max_runs_per_gpu:
                held_by = "another run" if runs == 1 else f"{runs} runs"
                reasons[gpu.index] = f"is reserved by {held_by}"
            elif busy := foreign_busy(gpu, own, policy):
                reasons[gpu.index] = busy
            elif free < min_free_mb:
                reasons[gpu.index] = f"has {_gb(max(free, 0))} free, {_gb(min_free_mb)} needed"
            else:
                usable.append(((runs, -free, gpu.index), gpu))
        usable.sort(key=lambda ranked: ranked[0])
        return [gpu for _, gpu in usable], reasons


def _check_request(count: int, min_free_mb: int) -> None:
    if count < 0:
        raise ValueError("the number of GPUs must not be negative")
    if min_free_mb < 0:
        raise ValueError("min_free_mb must not be negative")


def _gb(mb: int) -> str:
    """MiB as GB for people: 81559 → '79.6 GB', 102400 → '100 GB', 512 → '512 MB'."""
    if mb < 1024:
        return f"{mb} MB"
    text = f"{mb / 1024:.1f}".removesuffix(".0")
    return f"{text} GB"
