"""The experiment queue's records: one transaction per step, so a crash loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.daemon.experiment_store import ExperimentStore, NewRun, NextAttempt
from labmind.daemon.store import Store


@pytest.fixture
def records(tmp_path: Path) -> Iterator[ExperimentStore]:
    store = Store(tmp_path / "store.sqlite3")
    records = ExperimentStore(store)
    records.add_sweep(
        "s1",
        name="sweep",
        spec_path="/x/spec.yaml",
        spec={"command": "train --bs {bs}"},
        priority=0,
        at=1.0,
        code_commit=None,
        runs=[NewRun("s1-0", 0, "sweep[bs=64]", {"bs": 64}, "train --bs 64")],
    )
    records.start_attempt("s1-0", 1, "/runs/s1-0/1", gpus=(), at=2.0)
    records.running("s1-0", pid=10, pgid=10, start_time=123.0)
    yield records
    store.close()


def test_a_failed_attempt_and_its_fix_are_recorded_together(records: ExperimentStore) -> None:
    records.finish_attempt(
        "s1-0",
        status="failed",
        exit_code=1,
        signal=None,
        failure="cuda_oom",
        summary="CUDA out of memory",
        at=3.0,
        then=NextAttempt({"bs": 32}, "train --bs 32", "halve bs 64 → 32"),
    )

    run = records.run("s1-0")
    assert run is not None
    assert (run.status, run.attempt, run.params, run.command) == (
        "queued",
        1,
        {"bs": 32},
        "train --bs 32",
    )
    first, second = records.attempts("s1-0")
    assert (first.exit_code, first.failure, first.ended_at) == (1, "cuda_oom", 3.0)
    assert (second.attempt, second.params, second.change) == (2, {"bs": 32}, "halve bs 64 → 32")


def test_a_crash_while_recording_leaves_the_attempt_to_be_collected_again(
    records: ExperimentStore,
) -> None:
    unwritable = NextAttempt({"bs": object()}, "train", "broken")

    with pytest.raises(TypeError):
        records.finish_attempt(
            "s1-0",
            status="failed",
            exit_code=1,
            signal=None,
            failure="cuda_oom",
            summary="CUDA out of memory",
            at=3.0,
            then=unwritable,
        )

    run = records.run("s1-0")
    assert run is not None and (run.status, run.exit_code) == ("running", None)
    [attempt] = records.attempts("s1-0")
    assert attempt.ended_at is None


def test_an_attempt_that_never_started_is_queued_again_with_the_same_number(
    records: ExperimentStore,
) -> None:
    records.start_attempt("s1-0", 2, "/runs/s1-0/2", gpus=("GPU-a",), at=4.0)

    records.requeue("s1-0")

    run = records.run("s1-0")
    assert run is not None and (run.status, run.attempt, run.run_dir) == ("queued", 1, None)
