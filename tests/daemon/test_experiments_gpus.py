"""GPU runs in the queue: real runs, a fake GPU inventory (this machine has no GPU)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.daemon.events import EventBus
from labmind.daemon.experiments import ExperimentService
from labmind.daemon.store import Store
from labmind.trainers.gpus import FakeInventory, GpuInfo, GpuProcess

GPU_A = GpuInfo("GPU-aaaa", 0, "H100", 81_000, 500, 0)
GPU_B = GpuInfo("GPU-bbbb", 1, "H100", 81_000, 500, 0)

SHOW_GPU = (
    "import os, sys, time; time.sleep(float(sys.argv[1])); "
    "print(os.environ['CUDA_DEVICE_ORDER'], os.environ['CUDA_VISIBLE_DEVICES'])"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.sqlite3")
    yield store
    store.close()


def service_with(store: Store, tmp_path: Path, inventory: FakeInventory) -> ExperimentService:
    return ExperimentService(store, EventBus(), tmp_path / "runs", slots=1, inventory=inventory)


def write_spec(tmp_path: Path, name: str, gpus: int, runs: int, *, mem_gb: float = 10) -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        f"name: {name}\n"
        f'command: {sys.executable} -c "{SHOW_GPU}" {{pause}} # {{i}}\n'
        f"params:\n  grid: {{i: {list(range(runs))}}}\n  fixed: {{pause: 0.5}}\n"
        f"resources: {{gpus: {gpus}, min_gpu_mem_gb: {mem_gb}}}\n"
    )
    return spec


def finished(service: ExperimentService, sweep: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if all(r.status in ("succeeded", "failed") for r in service.runs(sweep)):
            return
        time.sleep(0.05)
    raise AssertionError(f"runs of {sweep} did not finish: {service.runs(sweep)}")


def test_gpu_runs_get_their_own_gpu_and_never_share_one(store: Store, tmp_path: Path) -> None:
    service = service_with(store, tmp_path, FakeInventory([GPU_A, GPU_B]))
    service.start()
    try:
        sweep = service.submit(str(write_spec(tmp_path, "gpus", gpus=1, runs=4))).sweep
        finished(service, sweep)
    finally:
        service.stop()

    details = [service.detail(r.id) for r in service.runs(sweep)]
    assert [d.run.status for d in details] == ["succeeded"] * 4
    spans = []
    for detail in details:
        [attempt] = detail.attempts
        [uuid] = attempt.gpus
        assert detail.log_tail.strip() == f"PCI_BUS_ID {uuid}"
        assert attempt.started_at is not None and attempt.ended_at is not None
        spans.append((attempt.started_at, attempt.ended_at, uuid))
    for i, (start, end, uuid) in enumerate(spans):
        for other_start, other_end, other in spans[i + 1 :]:
            if start < other_end and other_start < end:
                assert uuid != other, "two runs on one GPU at the same time"
    assert {uuid for _, _, uuid in spans} == {"GPU-aaaa", "GPU-bbbb"}


def test_a_run_that_can_never_fit_fails_with_the_reason(store: Store, tmp_path: Path) -> None:
    service = service_with(store, tmp_path, FakeInventory([GPU_A]))
    service.start()
    try:
        too_many = service.submit(str(write_spec(tmp_path, "many", gpus=2, runs=1))).sweep
        too_big = service.submit(str(write_spec(tmp_path, "big", gpus=1, runs=1, mem_gb=200)))
        finished(service, too_many)
        finished(service, too_big.sweep)
    finally:
        service.stop()

    [many] = service.runs(too_many)
    [big] = service.runs(too_big.sweep)
    assert many.status == "failed" and "asks for 2 GPUs but this machine has 1 GPU" in (
        many.summary or ""
    )
    assert big.status == "failed" and "200 GB" in (big.summary or "")


def test_a_gpu_busy_with_someone_elses_process_is_left_alone(store: Store, tmp_path: Path) -> None:
    foreign = GpuInfo("GPU-aaaa", 0, "H100", 81_000, 40_000, 90, (GpuProcess(4242, 39_500),))
    service = service_with(store, tmp_path, FakeInventory([foreign, GPU_B]))
    service.start()
    try:
        sweep = service.submit(str(write_spec(tmp_path, "polite", gpus=1, runs=2))).sweep
        finished(service, sweep)
    finally:
        service.stop()

    used = {
        uuid for r in service.runs(sweep) for a in service.detail(r.id).attempts for uuid in a.gpus
    }
    assert used == {"GPU-bbbb"}


OOM_ON_SMALL = (
    "import os, sys; gpu = os.environ['CUDA_VISIBLE_DEVICES']; print('on', gpu); "
    "sys.exit('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB.') "
    "if gpu == 'GPU-small' else None"
)
TRANSIENT_ONCE = (
    "import os, sys; gpu = os.environ['CUDA_VISIBLE_DEVICES']; print('on', gpu); "
    "marker = sys.argv[1]; first = not os.path.exists(marker); open(marker, 'a').close(); "
    "sys.exit('torch.distributed.DistBackendError: NCCL error: Watchdog caught collective "
    "operation timeout') if first else None"
)


def gpu_spec(tmp_path: Path, name: str, code: str, *args: str) -> Path:
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        f"name: {name}\n"
        f"command: {sys.executable} {script} {' '.join(args)}\n"
        "resources: {gpus: 1, min_gpu_mem_gb: 10}\n"
        "retry: {max_attempts: 3}\n"
    )
    return spec


def attempt_gpus(service: ExperimentService, sweep: str) -> list[str]:
    [run] = service.runs(sweep)
    return [uuid for attempt in service.detail(run.id).attempts for uuid in attempt.gpus]


def test_a_cuda_oom_with_no_batch_size_moves_to_a_larger_gpu(store: Store, tmp_path: Path) -> None:
    # The small GPU has more free memory, so it is picked first.
    small = GpuInfo("GPU-small", 0, "L4", 24_000, 500, 0)
    large = GpuInfo("GPU-large", 1, "H100", 81_000, 60_000, 0)
    service = service_with(store, tmp_path, FakeInventory([small, large]))
    service.start()
    try:
        sweep = service.submit(str(gpu_spec(tmp_path, "oom", OOM_ON_SMALL))).sweep
        finished(service, sweep)
    finally:
        service.stop()

    [run] = service.runs(sweep)
    assert run.status == "succeeded"
    assert attempt_gpus(service, sweep) == ["GPU-small", "GPU-large"]
    [_, moved] = service.detail(run.id).attempts
    assert "moving to a GPU with more memory" in (moved.change or "")


def test_an_oom_on_the_largest_gpu_is_not_moved_again(store: Store, tmp_path: Path) -> None:
    small = GpuInfo("GPU-small", 0, "L4", 24_000, 500, 0)
    service = service_with(store, tmp_path, FakeInventory([small]))
    service.start()
    try:
        sweep = service.submit(str(gpu_spec(tmp_path, "stuck", OOM_ON_SMALL))).sweep
        finished(service, sweep)
    finally:
        service.stop()

    [run] = service.runs(sweep)
    assert run.status == "failed"
    assert "no larger GPU" in (run.summary or "")
    assert attempt_gpus(service, sweep) == ["GPU-small"]


def test_a_transient_failure_is_retried_on_another_gpu(store: Store, tmp_path: Path) -> None:
    service = service_with(store, tmp_path, FakeInventory([GPU_A, GPU_B]))
    service.start()
    try:
        marker = str(tmp_path / "failed-once")
        sweep = service.submit(str(gpu_spec(tmp_path, "flaky", TRANSIENT_ONCE, marker))).sweep
        finished(service, sweep)
    finally:
        service.stop()

    [run] = service.runs(sweep)
    assert run.status == "succeeded"
    assert attempt_gpus(service, sweep) == ["GPU-aaaa", "GPU-bbbb"]
