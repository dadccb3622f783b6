"""GPU inventory: the environment a run gets, the fake, and NVML where this machine has it
(here: without a GPU, so it must report none) or a stand-in module for the NVML calls."""

from __future__ import annotations

import ctypes.util
import importlib.util
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from labmind.trainers.gpus import (
    FakeInventory,
    GpuInfo,
    GpuInventory,
    GpuProcess,
    NvmlInventory,
    cuda_env,
)

MIB = 1024 * 1024


def _gpu(i: int, **kw: Any) -> GpuInfo:
    fields: dict[str, Any] = {
        "uuid": f"GPU-{i}",
        "index": i,
        "name": "Fake GPU",
        "memory_total_mb": 81559,
        "memory_used_mb": 0,
    }
    fields.update(kw)
    return GpuInfo(**fields)


# --- cuda_env ------------------------------------------------------------------------------


def test_cuda_env_names_gpus_by_uuid_in_pci_order() -> None:
    assert cuda_env(["GPU-aaa", "GPU-bbb"]) == {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": "GPU-aaa,GPU-bbb",
    }
    assert cuda_env(("GPU-aaa",))["CUDA_VISIBLE_DEVICES"] == "GPU-aaa"


def test_cuda_env_for_a_cpu_run_hides_every_gpu() -> None:
    assert cuda_env([]) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ""}


def test_cuda_env_refuses_one_string() -> None:
    with pytest.raises(TypeError):
        cuda_env("GPU-aaa")


# --- GpuInfo and the fake ------------------------------------------------------------------


def test_free_memory_never_negative() -> None:
    assert _gpu(0, memory_used_mb=1559).memory_free_mb == 80000
    assert _gpu(0, memory_total_mb=10, memory_used_mb=12).memory_free_mb == 0


def test_fake_inventory_is_a_mutable_snapshot_source() -> None:
    inventory = FakeInventory([_gpu(0)])
    source: GpuInventory = inventory
    snapshot = source.gpus()
    assert [g.uuid for g in snapshot] == ["GPU-0"]
    snapshot.clear()  # a snapshot is the caller's copy
    assert len(source.gpus()) == 1
    inventory.set([_gpu(0), _gpu(1, processes=(GpuProcess(42, 100),))])
    assert [g.processes for g in source.gpus()] == [(), (GpuProcess(42, 100),)]
    inventory.gpus_now = []
    assert source.gpus() == []
    assert FakeInventory().gpus() == []


# --- NVML without a GPU (this machine) -----------------------------------------------------


def _no_nvml_library() -> bool:
    return ctypes.util.find_library("nvidia-ml") is None


def test_nvml_without_the_package_reports_no_gpus(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    inventory = NvmlInventory()
    with caplog.at_level(logging.DEBUG, logger="labmind.trainers.gpus"):
        assert inventory.gpus() == []
        assert inventory.gpus() == []
        assert not inventory.available
    lines = [r for r in caplog.records if r.name == "labmind.trainers.gpus"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG
    assert "NVML is not available" in lines[0].getMessage()


@pytest.mark.skipif(not _no_nvml_library(), reason="this machine has the NVIDIA driver")
def test_nvml_on_a_machine_without_a_driver_reports_no_gpus() -> None:
    # The real path: pynvml when it is installed (nvmlInit fails: no libnvidia-ml),
    # otherwise the import fails. Either way: no GPUs, no exception.
    inventory = NvmlInventory()
    assert inventory.gpus() == []
    assert inventory.available is False
    inventory.close()
    assert inventory.gpus() == []


@pytest.mark.skipif(
    importlib.util.find_spec("pynvml") is None or shutil.which("nvidia-smi") is None,
    reason="needs pynvml and an NVIDIA driver",
)
def test_nvml_sees_the_gpus_nvidia_smi_sees() -> None:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=uuid,pci.bus_id,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    rows.sort(key=lambda row: row[1].lower())
    inventory = NvmlInventory()
    gpus = inventory.gpus()
    inventory.close()
    assert [g.uuid for g in gpus] == [row[0] for row in rows]
    assert [g.index for g in gpus] == list(range(len(rows)))
    for gpu, row in zip(gpus, rows, strict=True):
        assert gpu.memory_total_mb == int(row[2].split()[0])
        assert 0 <= gpu.memory_used_mb <= gpu.memory_total_mb


# --- NVML through a stand-in module --------------------------------------------------------


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's name
    pass


@dataclass
class _Proc:
    pid: int
    usedGpuMemory: int | None  # noqa: N815 - pynvml's name


@dataclass
class _Dev:
    uuid: str | bytes
    bus_id: bytes
    total: int
    used: int
    util: int | None
    compute: list[_Proc] | None
    graphics: list[_Proc] | None
    name: str | bytes = b"NVIDIA H100 80GB HBM3"
    broken: bool = False


class FakeNvml:
    """Answers the pynvml calls NvmlInventory makes, from a list of devices in NVML order."""

    NVMLError = NVMLError

    def __init__(self, devices: list[_Dev], *, init_error: Exception | None = None) -> None:
        self.devices = devices
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0

    def nvmlInit(self) -> None:  # noqa: N802
        self.inits += 1
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> _Dev:  # noqa: N802
        if self.devices[i].broken:
            raise NVMLError("GPU is lost")
        return self.devices[i]

    def nvmlDeviceGetPciInfo(self, d: _Dev) -> Any:  # noqa: N802
        return type("Pci", (), {"busId": d.bus_id})()

    def nvmlDeviceGetMemoryInfo(self, d: _Dev) -> Any:  # noqa: N802
        return type("Mem", (), {"total": d.total, "used": d.used, "free": d.total - d.used})()

    def nvmlDeviceGetUtilizationRates(self, d: _Dev) -> Any:  # noqa: N802
        if d.util is None:
            raise NVMLError_NotSupported()
        return type("Util", (), {"gpu": d.util, "memory": 0})()

    def nvmlDeviceGetUUID(self, d: _Dev) -> str | bytes:  # noqa: N802
        return d.uuid

    def nvmlDeviceGetName(self, d: _Dev) -> str | bytes:  # noqa: N802
        return d.name

    def nvmlDeviceGetComputeRunningProcesses(self, d: _Dev) -> list[_Proc]:  # noqa: N802
        if d.compute is None:
            raise NVMLError_NotSupported()
        return d.compute

    def nvmlDeviceGetGraphicsRunningProcesses(self, d: _Dev) -> list[_Proc]:  # noqa: N802
        if d.graphics is None:
            raise NVMLError_NotSupported()
        return d.graphics


def test_nvml_snapshot_is_in_pci_bus_order_with_memory_in_mib() -> None:
    nvml = FakeNvml(
        [
            _Dev("GPU-b", b"00000000:81:00.0", 80 * 1024 * MIB, 10 * MIB, 7, [], []),
            _Dev(b"GPU-a", b"00000000:3B:00.0", 24 * 1024 * MIB, 512 * MIB + 5, None, [], None),
        ]
    )
    inventory = NvmlInventory(loader=lambda: nvml)
    gpus = inventory.gpus()
    assert [(g.uuid, g.index) for g in gpus] == [("GPU-a", 0), ("GPU-b", 1)]
    a, b = gpus
    assert (a.memory_total_mb, a.memory_used_mb, a.utilization_pct) == (24576, 512, None)
    assert (b.memory_total_mb, b.memory_used_mb, b.utilization_pct) == (81920, 10, 7)
    assert a.name == "NVIDIA H100 80GB HBM3"
    inventory.gpus()
    assert nvml.inits == 1  # nvmlInit once
    inventory.close()
    assert nvml.shutdowns == 1
    assert inventory.gpus() == []


def test_nvml_processes_merge_compute_and_graphics_by_pid() -> None:
    dev = _Dev(
        "GPU-a",
        b"00000000:01:00.0",
        80 * 1024 * MIB,
        3000 * MIB,
        90,
        compute=[_Proc(200, 2048 * MIB), _Proc(100, None)],
        graphics=[_Proc(200, 1024 * MIB), _Proc(300, 64 * MIB), _Proc(100, 8 * MIB)],
    )
    (gpu,) = NvmlInventory(loader=lambda: FakeNvml([dev])).gpus()
    assert gpu.processes == (GpuProcess(100, 8), GpuProcess(200, 2048), GpuProcess(300, 64))


def test_nvml_unsupported_process_queries_read_as_none() -> None:
    dev = _Dev("GPU-a", b"00000000:01:00.0", 1024 * MIB, 0, 0, None, None)
    (gpu,) = NvmlInventory(loader=lambda: FakeNvml([dev])).gpus()
    assert gpu.processes == ()


def test_nvml_leaves_out_a_device_that_fails() -> None:
    devices = [
        _Dev("GPU-a", b"00000000:02:00.0", 1024 * MIB, 0, 0, [], []),
        _Dev("GPU-lost", b"00000000:01:00.0", 1024 * MIB, 0, 0, [], [], broken=True),
    ]
    gpus = NvmlInventory(loader=lambda: FakeNvml(devices)).gpus()
    assert [(g.uuid, g.index) for g in gpus] == [("GPU-a", 0)]


def test_nvml_keeps_the_index_of_a_device_whose_memory_query_fails() -> None:
    class Flaky(FakeNvml):
        def nvmlDeviceGetMemoryInfo(self, d: _Dev) -> Any:  # noqa: N802
            if d.uuid == "GPU-first":
                raise NVMLError("Unknown Error")
            return super().nvmlDeviceGetMemoryInfo(d)

    devices = [
        _Dev("GPU-second", b"00000000:02:00.0", 1024 * MIB, 0, 0, [], []),
        _Dev("GPU-first", b"00000000:01:00.0", 1024 * MIB, 0, 0, [], []),
    ]
    gpus = NvmlInventory(loader=lambda: Flaky(devices)).gpus()
    assert [(g.uuid, g.index) for g in gpus] == [("GPU-second", 1)]


def test_nvml_init_failure_means_no_gpus_and_is_not_retried() -> None:
    nvml = FakeNvml([], init_error=NVMLError("Driver Not Loaded"))
    inventory = NvmlInventory(loader=lambda: nvml)
    assert inventory.gpus() == []
    assert inventory.gpus() == []
    assert nvml.inits == 1
