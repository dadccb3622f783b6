"""Which GPUs this machine has and what runs on them, behind one small seam.

:class:`GpuInventory` hands out snapshots (:class:`GpuInfo`, one per GPU, keyed by UUID).
:class:`NvmlInventory` asks NVML through ``pynvml`` (package ``nvidia-ml-py``, the optional
extra ``gpu``), imported lazily: without the package, the driver or a GPU it reports no GPUs,
so the queue runs CPU runs. :class:`FakeInventory` is the double for tests and GPU-less
machines. Runs see their GPUs through :func:`cuda_env`: UUIDs, with CUDA told to number
devices by PCI bus id, the order :class:`NvmlInventory` uses for ``index`` too.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuProcess:
    """A process holding a GPU context; ``used_mb`` is ``None`` where NVML cannot tell."""

    pid: int
    used_mb: int | None = None


@dataclass(frozen=True)
class GpuInfo:
    """One GPU at the moment of the snapshot. Memory in MiB (what ``nvidia-smi`` calls MiB);
    ``utilization_pct`` is ``None`` where the GPU does not report it; ``index`` is the
    position in PCI bus order, as CUDA counts with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``."""

    uuid: str
    index: int
    name: str
    memory_total_mb: int
    memory_used_mb: int
    utilization_pct: int | None = None
    processes: tuple[GpuProcess, ...] = ()

    @property
    def memory_free_mb(self) -> int:
        return max(0, self.memory_total_mb - self.memory_used_mb)


class GpuInventory(Protocol):
    """Where GPU snapshots come from."""

    def gpus(self) -> list[GpuInfo]:
        """A snapshot of every GPU, in index order; ``[]`` when there are none."""
        ...


def cuda_env(uuids: Sequence[str]) -> dict[str, str]:
    """The environment that gives a run exactly these GPUs (none: a CPU run)."""
    if isinstance(uuids, str):
        raise TypeError("cuda_env takes a sequence of GPU UUIDs, not one string")
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ",".join(uuids)}


class FakeInventory:
    """A :class:`GpuInventory` whose GPUs are whatever the test (or a GPU-less machine) says;
    set ``gpus_now`` or call :meth:`set` to change what the next snapshot shows."""

    def __init__(self, gpus: Sequence[GpuInfo] = ()) -> None:
        self.gpus_now: list[GpuInfo] = list(gpus)
        self.calls = 0

    def set(self, gpus: Sequence[GpuInfo]) -> None:
        self.gpus_now = list(gpus)

    def gpus(self) -> list[GpuInfo]:
        self.calls += 1
        return list(self.gpus_now)


def _import_pynvml() -> Any:
    return importlib.import_module("pynvml")


class NvmlInventory:
    """GPUs as NVML sees them. ``pynvml`` is imported and ``nvmlInit`` called on the first
    snapshot, once; when either fails (no package, no ``libnvidia-ml``, no driver) this says
    so in one debug line and reports no GPUs from then on. A device that fails to answer is
    left out of that snapshot (one whose memory query fails keeps its index, so the others
    still match CUDA's); process lists NVML does not support read as empty.

    ``loader`` returns the ``pynvml`` module (tests hand in a stand-in)."""

    def __init__(self, loader: Callable[[], Any] = _import_pynvml) -> None:
        self._loader = loader
        self._nvml: Any = None
        self._state = "new"  # new | ready | unavailable | closed
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether NVML answered (starts it when it has not been tried yet)."""
        with self._lock:
            return self._start()

    def gpus(self) -> list[GpuInfo]:
        with self._lock:
            if not self._start():
                return []
            nvml = self._nvml
            try:
                count = int(nvml.nvmlDeviceGetCount())
            except Exception as exc:
                log.debug("NVML cannot count devices: %s", _why(exc))
                return []
            placed: list[tuple[str, int, Any]] = []
            for i in range(count):
                try:
                    handle = nvml.nvmlDeviceGetHandleByIndex(i)
                    bus_id = _text(nvml.nvmlDeviceGetPciInfo(handle).busId).lower()
                except Exception as exc:
                    log.debug("NVML device %d left out of the snapshot: %s", i, _why(exc))
                    continue
                placed.append((bus_id, i, handle))
            placed.sort(key=lambda bus_i_handle: bus_i_handle[:2])
            found: list[GpuInfo] = []
            for index, (bus_id, _, handle) in enumerate(placed):
                try:
                    found.append(_device(nvml, handle, index))
                except Exception as exc:
                    log.debug("NVML device %s left out of the snapshot: %s", bus_id, _why(exc))
            return found

    def close(self) -> None:
        """Shut NVML down if it was started; later snapshots report no GPUs."""
        with self._lock:
            if self._state == "ready":
                try:
                    self._nvml.nvmlShutdown()
                except Exception as exc:
                    log.debug("nvmlShutdown failed: %s", _why(exc))
            self._state = "closed"

    def _start(self) -> bool:
        if self._state == "new":
            try:
                nvml = self._loader()
                nvml.nvmlInit()
            except Exception as exc:
                self._state = "unavailable"
                log.debug("no GPUs: NVML is not available (%s)", _why(exc))
            else:
                self._nvml = nvml
                self._state = "ready"
        return self._state == "ready"


def _device(nvml: Any, handle: Any, index: int) -> GpuInfo:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        utilization: int | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:
        utilization = None
    return GpuInfo(
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_total_mb=int(memory.total) // _MIB,
        memory_used_mb=int(memory.used) // _MIB,
        utilization_pct=utilization,
        processes=_processes(nvml, handle),
    )


def _processes(nvml: Any, handle: Any) -> tuple[GpuProcess, ...]:
    """Compute and graphics processes, one entry per pid (the larger memory figure)."""
    by_pid: dict[int, int | None] = {}
    for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            listed = getattr(nvml, query)(handle)
        except Exception as exc:  # NotSupported, NoPermission, a library too old for it
            log.debug("%s: %s", query, _why(exc))
            continue
        for proc in listed:
            pid = int(proc.pid)
            used = getattr(proc, "usedGpuMemory", None)
            used_mb = None if used is None else int(used) // _MIB
            known = by_pid.get(pid)
            by_pid[pid] = used_mb if known is None else max(known, used_mb or 0)
    return tuple(GpuProcess(pid, used_mb) for pid, used_mb in sorted(by_pid.items()))


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
