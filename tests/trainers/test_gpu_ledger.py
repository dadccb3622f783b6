"""The GPU ledger: which GPUs a run gets, and that no two live runs ever get the same one."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labmind.trainers.gpu_ledger import (
    GpuLedger,
    SharingPolicy,
    foreign_busy,
    foreign_used_mb,
)
from labmind.trainers.gpus import FakeInventory, GpuInfo, GpuProcess

EXCLUSIVE = SharingPolicy()
GB = 1024


def _gpu(i: int, total_gb: int = 80, used_mb: int = 0, **kw: Any) -> GpuInfo:
    return GpuInfo(
        uuid=f"GPU-{i}",
        index=i,
        name="Fake GPU",
        memory_total_mb=total_gb * GB,
        memory_used_mb=used_mb,
        **kw,
    )


def _reserve(
    ledger: GpuLedger,
    run_id: str,
    count: int,
    gpus: list[GpuInfo],
    *,
    min_free_mb: int = 0,
    own_pids: set[int] | None = None,
    policy: SharingPolicy = EXCLUSIVE,
    now: float = 0.0,
) -> list[str] | None:
    return ledger.reserve(
        run_id,
        count,
        min_free_mb=min_free_mb,
        gpus=gpus,
        own_pids=own_pids or set(),
        policy=policy,
        now=now,
    )


# --- exclusivity ---------------------------------------------------------------------------


def test_two_reservations_never_share_a_gpu() -> None:
    gpus = FakeInventory([_gpu(0), _gpu(1)]).gpus()
    ledger = GpuLedger()
    a = _reserve(ledger, "a", 1, gpus)
    b = _reserve(ledger, "b", 1, gpus)
    assert a is not None
    assert b is not None
    assert set(a).isdisjoint(b)
    assert _reserve(ledger, "c", 1, gpus) is None
    assert ledger.reserved() == {"a": a, "b": b}


def test_a_multi_gpu_run_gets_distinct_gpus_in_index_order() -> None:
    gpus = [_gpu(0, used_mb=5000), _gpu(1), _gpu(2, used_mb=100)]
    ledger = GpuLedger()
    assert _reserve(ledger, "a", 2, gpus) == ["GPU-1", "GPU-2"]
    assert _reserve(ledger, "b", 2, gpus) is None  # only GPU-0 is left
    assert _reserve(ledger, "b", 1, gpus) == ["GPU-0"]


def test_a_cpu_run_holds_nothing() -> None:
    ledger = GpuLedger()
    assert _reserve(ledger, "cpu", 0, []) == []
    assert ledger.reserved() == {}
    assert _reserve(ledger, "cpu", 0, []) == []  # and may ask again


def test_a_run_holds_one_reservation() -> None:
    ledger = GpuLedger()
    gpus = [_gpu(0), _gpu(1)]
    assert _reserve(ledger, "a", 1, gpus) == ["GPU-0"]
    with pytest.raises(ValueError, match="already holds"):
        _reserve(ledger, "a", 1, gpus)


def test_bad_requests_are_refused() -> None:
    ledger = GpuLedger()
    with pytest.raises(ValueError):
        _reserve(ledger, "a", -1, [_gpu(0)])
    with pytest.raises(ValueError):
        _reserve(ledger, "a", 1, [_gpu(0)], min_free_mb=-1)
    with pytest.raises(ValueError):
        GpuLedger(grace_s=-1)
    with pytest.raises(ValueError):
        SharingPolicy(max_runs_per_gpu=0)
    with pytest.raises(ValueError):
        SharingPolicy(max_utilization_pct=101)
    with pytest.raises(ValueError):
        SharingPolicy(max_foreign_used_mb=-5)


def test_concurrent_reservations_from_threads_never_collide() -> None:
    gpus = [_gpu(i) for i in range(4)]
    ledger = GpuLedger()
    got: list[list[str] | None] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def worker(n: int) -> None:
        start.wait()
        result = _reserve(ledger, f"run{n}", 1, gpus)
        with lock:
            got.append(result)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [uuid for result in got if result for uuid in result]
    assert sorted(taken) == [g.uuid for g in gpus]
    assert got.count(None) == 12


# --- processes labmind did not start -------------------------------------------------------


def test_foreign_processes_make_a_gpu_busy_by_default() -> None:
    gpus = [_gpu(0, used_mb=300, processes=(GpuProcess(999, 300),)), _gpu(1, used_mb=300)]
    ledger = GpuLedger()
    assert _reserve(ledger, "a", 1, gpus) == ["GPU-1"]
    assert _reserve(ledger, "b", 1, gpus) is None


def test_own_processes_are_not_foreign() -> None:
    gpus = [_gpu(0, used_mb=3000, processes=(GpuProcess(4242, 3000),))]
    ledger = GpuLedger()
    assert _reserve(ledger, "a", 1, gpus, own_pids={4242}) == ["GPU-0"]


def test_sharing_allows_foreign_processes_within_thresholds() -> None:
    policy = SharingPolicy(allow_foreign=True, max_foreign_used_mb=1024, max_utilization_pct=30)
    light = _gpu(0, used_mb=500, utilization_pct=10, processes=(GpuProcess(7, 500),))
    heavy_mem = _gpu(1, used_mb=4096, utilization_pct=10, processes=(GpuProcess(8, 4096),))
    heavy_util = _gpu(2, used_mb=200, utilization_pct=95, processes=(GpuProcess(9, 200),))
    ledger = GpuLedger()
    assert _reserve(ledger, "a", 1, [heavy_mem, heavy_util, light], policy=policy) == ["GPU-0"]
    assert _reserve(ledger, "b", 1, [heavy_mem, heavy_util, light], policy=policy) is None
    # without sharing, even the light one is busy
    assert _reserve(GpuLedger(), "c", 1, [light], policy=EXCLUSIVE) is None


def test_busy_gpus_without_foreign_processes_are_not_foreign_busy() -> None:
    # high utilization alone (our own run) does not make a GPU foreign-busy
    gpu = _gpu(0, used_mb=100, utilization_pct=100, processes=(GpuProcess(1, 100),))
    assert foreign_busy(gpu, {1}, EXCLUSIVE) is None
    unknown_util = _gpu(0, used_mb=100, utilization_pct=None, processes=(GpuProcess(2, 100),))
    sharing = SharingPolicy(allow_foreign=True, max_utilization_pct=0)
    assert foreign_busy(unknown_util, set(), sharing) is None


def test_foreign_memory_counts_unaccounted_memory_when_nvml_cannot_tell() -> None:
    gpu = _gpu(0, used_mb=10_000, processes=(GpuProcess(1, 4000), GpuProcess(2, None)))
    assert foreign_used_mb(gpu, {1}) == 6000
    assert foreign_used_mb(gpu, {1, 2}) == 0
    known = _gpu(0, used_mb=10_000, processes=(GpuProcess(1, 4000), GpuProcess(2, 500)))
    assert foreign_used_mb(known, {1}) == 500
    policy = SharingPolicy(allow_foreign=True, max_foreign_used_mb=5000)
    busy = foreign_busy(gpu, {1}, policy)
    assert busy is not None
    assert "5.9 GB taken by other processes (pid 2)" in busy


# --- memory --------------------------------------------------------------------------------


def test_min_free_memory_is_respected() -> None:
    gpus = [_gpu(0, total_gb=24, used_mb=20 * GB), _gpu(1, total_gb=80, used_mb=70 * GB)]
    ledger = GpuLedger()
    assert _reserve(ledger, "a", 1, gpus, min_free_mb=12 * GB) is None
    assert _reserve(ledger, "a", 1, gpus, min_free_mb=10 * GB) == ["GPU-1"]


def test_pending_reservations_hold_memory_for_the_grace_period() -> None:
    sharing = SharingPolicy(max_runs_per_gpu=4)
    ledger = GpuLedger(grace_s=60)
    gpus = [_gpu(0, total_gb=80)]
    assert _reserve(ledger, "a", 1, gpus, min_free_mb=30 * GB, policy=sharing, now=0) == ["GPU-0"]
    # run a has not allocated yet: NVML still says 0 used, but 30 GB are spoken for
    assert _reserve(ledger, "b", 1, gpus, min_free_mb=60 * GB, policy=sharing, now=10) is None
    assert _reserve(ledger, "b", 1, gpus, min_free_mb=50 * GB, policy=sharing, now=10) == ["GPU-0"]
    # a and b together hold all 80 GB while they start
    assert _reserve(ledger, "c", 1, gpus, min_free_mb=1 * GB, policy=sharing, now=59) is None
    # after the grace period NVML's numbers speak for both runs
    allocated = [_gpu(0, total_gb=80, used_mb=75 * GB)]
    assert _reserve(ledger, "c", 1, allocated, min_free_mb=4 * GB, policy=sharing, now=70) == [
        "GPU-0"
    ]
    assert _reserve(ledger, "d", 1, allocated, min_free_mb=4 * GB, policy=sharing, now=70) is None


def test_the_hold_ends_with_the_grace_period_even_before_nvml_shows_the_memory() -> None:
    sharing = SharingPolicy(max_runs_per_gpu=2)
    ledger = GpuLedger(grace_s=30)
    gpus = [_gpu(0, total_gb=40)]
    assert _reserve(ledger, "a", 1, gpus, min_free_mb=30 * GB, policy=sharing, now=100)
    assert _reserve(ledger, "b", 1, gpus, min_free_mb=30 * GB, policy=sharing, now=129) is None
    assert _reserve(ledger, "b", 1, gpus, min_free_mb=30 * GB, policy=sharing, now=130)


# --- release and adopt ---------------------------------------------------------------------


def test_release_frees_the_gpus() -> None:
    gpus = [_gpu(0)]
    ledger = GpuLedger()
    assert _reserve(ledger, "a", 1, gpus) == ["GPU-0"]
    assert ledger.release("a") == ["GPU-0"]
    assert ledger.release("a") == []
    assert ledger.release("never") == []
    assert _reserve(ledger, "b", 1, gpus) == ["GPU-0"]
    assert ledger.reserved() == {"b": ["GPU-0"]}


def test_adopted_runs_hold_their_gpus_but_no_pending_memory() -> None:
    gpus = [_gpu(0), _gpu(1)]
    ledger = GpuLedger()
    ledger.adopt("old", ["GPU-1"])
    assert ledger.reserved() == {"old": ["GPU-1"]}
    assert _reserve(ledger, "a", 1, gpus) == ["GPU-0"]
    assert _reserve(ledger, "b", 1, gpus) is None
    # with sharing, the adopted run's memory is whatever NVML says (here: none yet)
    sharing = SharingPolicy(max_runs_per_gpu=2)
    assert _reserve(ledger, "b", 1, gpus, min_free_mb=80 * GB, policy=sharing, now=0) is not None


def test_adopt_replaces_and_an_empty_adoption_releases() -> None:
    ledger = GpuLedger()
    ledger.adopt("r", ["GPU-0", "GPU-0", "GPU-1"])
    assert ledger.reserved() == {"r": ["GPU-0", "GPU-1"]}
    ledger.adopt("r", ["GPU-2"])
    assert ledger.reserved() == {"r": ["GPU-2"]}
    ledger.adopt("r", [])
    assert ledger.reserved() == {}
    with pytest.raises(TypeError):
        ledger.adopt("r", "GPU-0")


# --- best fit ------------------------------------------------------------------------------


def test_best_fit_prefers_most_free_memory_then_lowest_index() -> None:
    gpus = [_gpu(0, used_mb=2 * GB), _gpu(1, used_mb=1 * GB), _gpu(2, used_mb=1 * GB)]
    ledger = GpuLedger()
    assert _reserve(ledger, "a", 1, gpus) == ["GPU-1"]
    assert _reserve(ledger, "b", 1, gpus) == ["GPU-2"]
    assert _reserve(ledger, "c", 1, gpus) == ["GPU-0"]


def test_best_fit_prefers_gpus_with_fewer_labmind_runs() -> None:
    sharing = SharingPolicy(max_runs_per_gpu=3)
    big, small = _gpu(0, total_gb=80), _gpu(1, total_gb=24)
    ledger = GpuLedger(grace_s=0)
    assert _reserve(ledger, "a", 1, [big, small], policy=sharing) == ["GPU-0"]
    assert _reserve(ledger, "b", 1, [big, small], policy=sharing) == ["GPU-1"]
    assert _reserve(ledger, "c", 1, [big, small], policy=sharing) == ["GPU-0"]
    # but never a GPU without enough memory
    assert _reserve(ledger, "d", 1, [big, small], min_free_mb=30 * GB, policy=sharing) == ["GPU-0"]
    assert _reserve(ledger, "e", 1, [big, small], policy=sharing) == ["GPU-1"]
    assert _reserve(ledger, "f", 1, [big, small], policy=sharing) == ["GPU-1"]
    assert _reserve(ledger, "g", 1, [big, small], policy=sharing) is None  # 3 runs each


# --- requests that can never fit -----------------------------------------------------------


def test_fits_ever_explains_requests_this_machine_cannot_serve() -> None:
    one = [_gpu(0, total_gb=80)]
    two = [_gpu(0, total_gb=80), _gpu(1, total_gb=24)]
    assert GpuLedger.fits_ever(1, 0, []) == "asks for 1 GPU but this machine has no GPU"
    assert GpuLedger.fits_ever(2, 0, one) == "asks for 2 GPUs but this machine has 1 GPU"
    assert GpuLedger.fits_ever(3, 0, two) == "asks for 3 GPUs but this machine has 2 GPUs"
    assert GpuLedger.fits_ever(1, 100 * GB, two) == (
        "asks for 100 GB of GPU memory but the largest GPU here has 80 GB"
    )
    assert GpuLedger.fits_ever(2, 40 * GB, two) == (
        "asks for 2 GPUs with 40 GB each but only 1 of the 2 GPUs here have that much "
        "(the largest has 80 GB)"
    )
    assert GpuLedger.fits_ever(1, 81559, [_gpu(0, total_gb=24)]) == (
        "asks for 79.6 GB of GPU memory but the largest GPU here has 24 GB"
    )


def test_fits_ever_accepts_what_can_fit_even_if_busy_now() -> None:
    busy = [_gpu(0, used_mb=79 * GB, processes=(GpuProcess(1, 79 * GB),))]
    assert GpuLedger.fits_ever(1, 40 * GB, busy) is None
    assert GpuLedger.fits_ever(0, 10**9, []) is None
    ledger = GpuLedger()
    assert ledger.fits_ever(1, 80 * GB, busy) is None


def test_why_waiting_names_each_gpu() -> None:
    ledger = GpuLedger()
    gpus = [
        _gpu(0),
        _gpu(1, used_mb=70 * GB),
        _gpu(2, processes=(GpuProcess(31337, 10),)),
    ]
    assert _reserve(ledger, "a", 1, gpus) == ["GPU-0"]
    why = ledger.why_waiting(
        1, min_free_mb=20 * GB, gpus=gpus, own_pids=set(), policy=EXCLUSIVE, now=0
    )
    assert why == (
        "waiting for 1 GPU, none free now: GPU 0 is reserved by another run; "
        "GPU 1 has 10 GB free, 20 GB needed; "
        "GPU 2 is used by processes labmind did not start (pid 31337)"
    )
    assert (
        ledger.why_waiting(1, min_free_mb=0, gpus=gpus, own_pids={31337}, policy=EXCLUSIVE, now=0)
        is None
    )
    assert ledger.why_waiting(
        2, min_free_mb=0, gpus=[_gpu(0)], own_pids=set(), policy=EXCLUSIVE, now=0
    ) == ("asks for 2 GPUs but this machine has 1 GPU")


# --- property: no GPU is ever held by more live runs than the policy allows ----------------

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("reserve"),
            st.integers(0, 7),  # run
            st.integers(0, 3),  # count
            st.sampled_from([0, 8 * GB, 30 * GB, 60 * GB]),  # min_free_mb
        ),
        st.tuples(st.just("release"), st.integers(0, 7), st.just(0), st.just(0)),
        st.tuples(st.just("adopt"), st.integers(0, 7), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("tick"), st.just(0), st.integers(1, 90), st.just(0)),
    ),
    max_size=40,
)
_machines = st.lists(
    st.builds(
        lambda total, used, foreign: (total, used, foreign),
        st.sampled_from([24, 48, 80]),
        st.integers(0, 20 * GB),
        st.booleans(),
    ),
    min_size=0,
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    machine=_machines,
    ops=_ops,
    runs_per_gpu=st.integers(1, 3),
    allow_foreign=st.booleans(),
)
def test_no_gpu_is_ever_given_to_more_live_runs_than_allowed(
    machine: list[tuple[int, int, bool]],
    ops: list[tuple[str, int, int, int]],
    runs_per_gpu: int,
    allow_foreign: bool,
) -> None:
    gpus = [
        _gpu(
            i,
            total_gb=total,
            used_mb=used,
            utilization_pct=20,
            processes=(GpuProcess(10_000 + i, used),) if foreign else (),
        )
        for i, (total, used, foreign) in enumerate(machine)
    ]
    policy = SharingPolicy(
        allow_foreign=allow_foreign, max_foreign_used_mb=10 * GB, max_runs_per_gpu=runs_per_gpu
    )
    ledger = GpuLedger(grace_s=60)
    live: dict[str, list[str]] = {}
    holds: dict[str, tuple[float, int]] = {}
    now = 0.0
    for op, run, n, min_free in ops:
        run_id = f"run{run}"
        if op == "tick":
            now += n
        elif op == "release":
            assert ledger.release(run_id) == live.pop(run_id, [])
        elif op == "adopt":
            if run_id in live:
                continue
            # adopt only what a reattached run could hold: free GPUs (the ledger trusts it)
            held = [u for u in (g.uuid for g in gpus) if all(u not in v for v in live.values())]
            ledger.adopt(run_id, held[:n])
            if held[:n]:
                live[run_id] = held[:n]
                holds[run_id] = (now, 0)
        elif run_id in live:
            with pytest.raises(ValueError):
                _reserve(ledger, run_id, n, gpus, min_free_mb=min_free, policy=policy, now=now)
        else:
            got = _reserve(ledger, run_id, n, gpus, min_free_mb=min_free, policy=policy, now=now)
            if got is None:
                assert n > 0
                continue
            assert len(got) == n == len(set(got))
            for uuid in got:
                gpu = next(g for g in gpus if g.uuid == uuid)
                assert gpu.memory_free_mb >= min_free
                assert allow_foreign or not gpu.processes
            if got:
                live[run_id] = got
                holds[run_id] = (now, min_free)
            for uuid in got:
                # what NVML shows plus what runs still starting will take fits on the GPU
                gpu = next(g for g in gpus if g.uuid == uuid)
                pending = sum(
                    mb
                    for r, (since, mb) in holds.items()
                    if r in live and uuid in live[r] and now - since < 60
                )
                assert gpu.memory_used_mb + pending <= gpu.memory_total_mb
        assert ledger.reserved() == live
        holders: dict[str, int] = {}
        for uuids in live.values():
            for uuid in uuids:
                holders[uuid] = holders.get(uuid, 0) + 1
        assert all(count <= runs_per_gpu for count in holders.values()), holders
