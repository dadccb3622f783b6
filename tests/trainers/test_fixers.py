"""Rule fixers: this real failure gets this fix, within the attempt cap, with a lineage."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labmind.trainers.failures import Failure, FailureKind, classify
from labmind.trainers.fixers import Change, Fix, propose_fix
from labmind.trainers.spec import RetryPolicy
from labmind.trainers.sweep import ParamValue, render_command

LOGS = Path(__file__).parent / "logs"
COMMAND = "python train.py --lr {lr} --batch-size {batch_size} --accum {accum}"


def failure_from(name: str, exit_code: int | None = 1, sig: int | None = None) -> Failure:
    return classify(exit_code, sig, (LOGS / f"{name}.log").read_text())


def policy(**overrides: object) -> RetryPolicy:
    settings_: dict[str, object] = {
        "max_attempts": 4,
        "batch_size_param": "batch_size",
        "lr_param": "lr",
        "grad_accum_param": "accum",
    }
    settings_.update(overrides)
    return RetryPolicy.model_validate(settings_)


PARAMS: dict[str, ParamValue] = {"lr": 0.001, "batch_size": 64, "accum": 1, "dataset": "cifar10"}


def test_a_real_cuda_oom_halves_the_batch_and_doubles_accumulation() -> None:
    fix = propose_fix(failure_from("cuda_oom"), PARAMS, policy(), attempt=1, history=[])
    assert fix is not None
    assert fix.changes == {"batch_size": 32, "accum": 2}
    assert (fix.move_gpu, fix.retry_same) == (False, False)
    assert fix.reason.startswith("CUDA out of memory on GPU 0")
    assert "batch_size 64 → 32, accum 1 → 2 (effective batch 64 → 64)" in fix.reason
    assert render_command(COMMAND, fix.apply(PARAMS)) == (
        "python train.py --lr 0.001 --batch-size 32 --accum 2"
    )


def test_without_accumulation_only_the_batch_changes() -> None:
    fix = propose_fix(
        failure_from("cuda_oom_old"),
        {"batch_size": 33},
        policy(grad_accum_param=None),
        attempt=1,
        history=[],
    )
    assert fix is not None
    assert fix.changes == {"batch_size": 16}


def test_oom_at_batch_one_moves_to_a_bigger_gpu_once() -> None:
    oom = failure_from("cuda_oom")
    params: dict[str, ParamValue] = {**PARAMS, "batch_size": 1}
    fix = propose_fix(oom, params, policy(), attempt=1, history=[])
    assert fix is not None
    assert (fix.changes, fix.move_gpu) == ({}, True)
    assert "batch_size is already 1" in fix.reason
    moved = Change.record(fix, attempt=1, cause=oom.kind)
    assert propose_fix(oom, params, policy(), attempt=2, history=[moved]) is None


def test_oom_without_a_declared_batch_size_moves_to_a_bigger_gpu() -> None:
    fix = propose_fix(
        failure_from("cuda_oom"), PARAMS, policy(batch_size_param=None), attempt=1, history=[]
    )
    assert fix is not None
    assert fix.move_gpu
    assert "no batch size parameter declared" in fix.reason


def test_host_oom_halves_the_batch_but_never_moves_gpus() -> None:
    killed = failure_from("host_oom_killed", exit_code=137)
    fix = propose_fix(killed, PARAMS, policy(), attempt=1, history=[])
    assert fix is not None
    assert fix.changes == {"batch_size": 32, "accum": 2}
    assert propose_fix(killed, {**PARAMS, "batch_size": 1}, policy(), attempt=1, history=[]) is None


def test_a_nan_loss_halves_the_learning_rate() -> None:
    fix = propose_fix(failure_from("nan_lightning"), PARAMS, policy(), attempt=1, history=[])
    assert fix is not None
    assert fix.changes == {"lr": 0.0005}
    assert "lr 0.001 → 0.0005" in fix.reason
    no_lr = policy(lr_param=None)
    assert propose_fix(failure_from("nan_anomaly"), PARAMS, no_lr, attempt=1, history=[]) is None


@pytest.mark.parametrize(
    ("name", "exit_code", "sig"),
    [
        ("nccl_watchdog", 1, None),
        ("nccl_error", 1, None),
        ("cuda_illegal_access", 1, None),
        ("training_progress", None, signal.SIGKILL),
    ],
)
def test_transient_failures_are_retried_as_they_were_once(
    name: str, exit_code: int | None, sig: int | None
) -> None:
    failure = failure_from(name, exit_code, sig)
    fix = propose_fix(failure, PARAMS, policy(), attempt=1, history=[])
    assert fix is not None
    assert (fix.changes, fix.retry_same, fix.move_gpu) == ({}, True, False)
    history = [Change.record(fix, attempt=1, cause=failure.kind)]
    assert propose_fix(failure, PARAMS, policy(), attempt=2, history=history) is None


@pytest.mark.parametrize(
    ("name", "exit_code", "sig"),
    [
        ("missing_module", 1, None),
        ("import_error", 1, None),
        ("file_not_found", 1, None),
        ("command_not_found", 127, None),
        ("neg_nan_in_table", 1, None),  # unknown
        ("cuda_device_assert", 1, None),  # a bug, retrying will not help
        ("training_progress", None, signal.SIGTERM),  # someone stopped it
    ],
)
def test_failures_that_need_a_person_get_no_fix(
    name: str, exit_code: int | None, sig: int | None
) -> None:
    failure = failure_from(name, exit_code, sig)
    assert propose_fix(failure, PARAMS, policy(), attempt=1, history=[]) is None


def test_a_timeout_gets_no_fix() -> None:
    timeout = classify(None, signal.SIGTERM, "step 100\n", timed_out=True)
    assert propose_fix(timeout, PARAMS, policy(), attempt=1, history=[]) is None


@pytest.mark.parametrize(
    "name", ["cuda_oom", "host_oom_dataloader", "nan_printed", "nccl_watchdog"]
)
def test_no_fix_once_the_last_attempt_has_failed(name: str) -> None:
    failure = failure_from(name)
    assert propose_fix(failure, PARAMS, policy(max_attempts=3), attempt=2, history=[]) is not None
    assert propose_fix(failure, PARAMS, policy(max_attempts=3), attempt=3, history=[]) is None
    assert propose_fix(failure, PARAMS, policy(max_attempts=1), attempt=1, history=[]) is None


def test_fixer_none_changes_nothing_but_still_retries_transient_failures() -> None:
    quiet = policy(fixer="none")
    assert propose_fix(failure_from("cuda_oom"), PARAMS, quiet, attempt=1, history=[]) is None
    retry = propose_fix(failure_from("nccl_watchdog"), PARAMS, quiet, attempt=1, history=[])
    assert retry is not None and retry.retry_same


def test_repeated_ooms_shrink_until_the_cap_with_an_explicit_lineage() -> None:
    retry = policy(max_attempts=3)
    params = dict(PARAMS)
    history: list[Change] = []
    attempt = 1
    oom = failure_from("cuda_oom")
    while (fix := propose_fix(oom, params, retry, attempt=attempt, history=history)) is not None:
        history.append(Change.record(fix, attempt=attempt, cause=oom.kind))
        params = fix.apply(params)
        attempt += 1
    assert attempt == 3
    assert [(c.attempt, c.cause, c.changes) for c in history] == [
        (1, FailureKind.CUDA_OOM, {"batch_size": 32, "accum": 2}),
        (2, FailureKind.CUDA_OOM, {"batch_size": 16, "accum": 4}),
    ]
    assert params == {"lr": 0.001, "batch_size": 16, "accum": 4, "dataset": "cifar10"}


def test_fix_apply_returns_a_new_dict() -> None:
    fix = Fix({"lr": 0.1}, "because")
    original: dict[str, ParamValue] = {"lr": 1.0, "x": "y"}
    assert fix.apply(original) == {"lr": 0.1, "x": "y"}
    assert original == {"lr": 1.0, "x": "y"}


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 1 << 20), st.integers(1, 64), st.integers(1, 10))
def test_halving_keeps_the_batch_positive_and_an_even_effective_batch(
    batch: int, accum: int, attempt: int
) -> None:
    params: dict[str, ParamValue] = {"batch_size": batch, "accum": accum, "lr": 0.1}
    oom = Failure(FailureKind.CUDA_OOM, "CUDA out of memory")
    fix = propose_fix(oom, params, policy(max_attempts=11), attempt=attempt, history=[])
    assert fix is not None
    if batch == 1:
        assert fix.move_gpu and fix.changes == {}
        return
    new_batch, new_accum = fix.changes["batch_size"], fix.changes["accum"]
    assert isinstance(new_batch, int) and isinstance(new_accum, int)
    assert 1 <= new_batch < batch
    if batch % 2 == 0:
        assert new_batch * new_accum == batch * accum
