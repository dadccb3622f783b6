"""Failure classification from real log tails (tests/trainers/logs/) and exit statuses."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labmind.trainers.failures import Failure, FailureKind, classify, signal_name

LOGS = Path(__file__).parent / "logs"


def log(name: str) -> str:
    return (LOGS / f"{name}.log").read_text()


@pytest.mark.parametrize(
    ("name", "exit_code", "sig", "kind", "summary", "evidence"),
    [
        (
            "cuda_oom",
            1,
            None,
            FailureKind.CUDA_OOM,
            "CUDA out of memory on GPU 0: tried to allocate 2.00 GiB "
            "with 1.25 GiB free of 79.15 GiB",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
        ),
        (
            "cuda_oom_old",
            1,
            None,
            FailureKind.CUDA_OOM,
            "CUDA out of memory on GPU 0: tried to allocate 98.00 MiB "
            "with 61.44 MiB free of 15.78 GiB",
            "RuntimeError: CUDA out of memory. Tried to allocate 98.00 MiB (GPU 0;",
        ),
        (
            "cuda_oom_ddp",
            1,
            None,
            FailureKind.CUDA_OOM,
            "CUDA out of memory on GPU 1: tried to allocate 6.14 GiB "
            "with 3.81 GiB free of 23.64 GiB",
            "[rank1]: torch.OutOfMemoryError: CUDA out of memory.",
        ),
        (
            "cuda_oom_then_cleanup",
            1,
            None,
            FailureKind.CUDA_OOM,
            "CUDA out of memory on GPU 0: tried to allocate 8.00 GiB",
            "torch.OutOfMemoryError",
        ),
        (
            "host_oom_killed",
            137,
            None,
            FailureKind.HOST_OOM,
            "host out of memory: killed by SIGKILL",
            "Killed",
        ),
        (
            "host_oom_dataloader",
            1,
            None,
            FailureKind.HOST_OOM,
            "host out of memory: DataLoader worker (pid 48213) is killed by signal: Killed.",
            "RuntimeError: DataLoader worker (pid 48213) is killed by signal: Killed.",
        ),
        (
            "host_oom_numpy",
            1,
            None,
            FailureKind.HOST_OOM,
            "Unable to allocate 74.5 GiB for an array",
            "numpy.core._exceptions._ArrayMemoryError",
        ),
        (
            "nan_anomaly",
            1,
            None,
            FailureKind.NAN_LOSS,
            "Function 'LogSoftmaxBackward0' returned nan values in its 0th output",
            "RuntimeError: Function 'LogSoftmaxBackward0' returned nan values in its 0th output.",
        ),
        (
            "nan_lightning",
            1,
            None,
            FailureKind.NAN_LOSS,
            "The loss returned in `training_step` is nan.",
            "ValueError: The loss returned in `training_step` is nan.",
        ),
        (
            "nan_printed",
            1,
            None,
            FailureKind.NAN_LOSS,
            "loss is nan",
            "AssertionError: step 1220: loss is nan",
        ),
        (
            "nccl_watchdog",
            1,
            None,
            FailureKind.NCCL_TIMEOUT,
            "NCCL collective timed out (ALLREDUCE after 600 s)",
            "Watchdog caught collective operation timeout",
        ),
        (
            "nccl_error",
            1,
            None,
            FailureKind.NCCL_TIMEOUT,
            "NCCL error: ncclSystemError: System call",
            "ncclSystemError",
        ),
        (
            "cuda_device_assert",
            1,
            None,
            FailureKind.CUDA_ERROR,
            "CUDA error: device-side assert triggered",
            "RuntimeError: CUDA error: device-side assert triggered",
        ),
        (
            "cuda_illegal_access",
            1,
            None,
            FailureKind.CUDA_ERROR,
            "CUDA error: an illegal memory access was encountered",
            "RuntimeError: CUDA error: an illegal memory access was encountered",
        ),
        (
            "cublas",
            1,
            None,
            FailureKind.CUDA_ERROR,
            "CUBLAS_STATUS_EXECUTION_FAILED",
            "RuntimeError: CUDA error: CUBLAS_STATUS_EXECUTION_FAILED",
        ),
        (
            "missing_module",
            1,
            None,
            FailureKind.MISSING_MODULE,
            "missing Python module 'timm'",
            "ModuleNotFoundError: No module named 'timm'",
        ),
        (
            "import_error",
            1,
            None,
            FailureKind.IMPORT_ERROR,
            "import failed: cannot import name 'cached_download' from 'huggingface_hub'",
            "ImportError: cannot import name 'cached_download'",
        ),
        (
            "import_error_so",
            1,
            None,
            FailureKind.IMPORT_ERROR,
            "import failed: libcudnn.so.9: cannot open shared object file",
            "ImportError: libcudnn.so.9",
        ),
        (
            "file_not_found",
            1,
            None,
            FailureKind.FILE_NOT_FOUND,
            "file not found: 'data/cifar100/train.npz'",
            "FileNotFoundError: [Errno 2] No such file or directory: 'data/cifar100/train.npz'",
        ),
        (
            "command_not_found",
            127,
            None,
            FailureKind.FILE_NOT_FOUND,
            "command not found: pyhton",
            "/bin/sh: 1: pyhton: not found",
        ),
        (
            "cant_open_file",
            2,
            None,
            FailureKind.FILE_NOT_FOUND,
            "file not found: /home/ada/proj/trian.py",
            "python: can't open file '/home/ada/proj/trian.py'",
        ),
        (
            "torchrun_sigkill",
            1,
            None,
            FailureKind.KILLED,
            "a worker was killed by SIGKILL",
            "Signal 9 (SIGKILL) received by PID 31631",
        ),
        (
            "training_progress",
            None,
            signal.SIGKILL,
            FailureKind.KILLED,
            "killed by SIGKILL (no out-of-memory message in the log)",
            "Epoch 12:  45%",
        ),
    ],
)
def test_real_log_tails_are_classified(
    name: str,
    exit_code: int | None,
    sig: int | None,
    kind: FailureKind,
    summary: str,
    evidence: str,
) -> None:
    failure = classify(exit_code, sig, log(name))
    assert failure.kind is kind
    assert summary in failure.summary
    assert evidence in failure.evidence
    assert "\n" not in failure.summary


def test_the_module_is_recorded() -> None:
    assert classify(1, None, log("missing_module")).module == "timm"
    assert classify(1, None, log("import_error")).module == "huggingface_hub"
    assert classify(1, None, log("cuda_oom")).module is None


@pytest.mark.parametrize(
    ("name", "exit_code", "sig", "transient"),
    [
        ("nccl_watchdog", 1, None, True),
        ("nccl_error", 1, None, True),
        ("cuda_illegal_access", 1, None, True),
        ("cublas", 1, None, True),
        ("cuda_device_assert", 1, None, False),  # a bug in the labels, not bad luck
        ("training_progress", None, signal.SIGKILL, True),
        ("torchrun_sigkill", 1, None, True),
        ("training_progress", None, signal.SIGTERM, False),
        ("host_oom_killed", 137, None, False),
        ("cuda_oom", 1, None, False),
        ("missing_module", 1, None, False),
    ],
)
def test_transient_failures(
    name: str, exit_code: int | None, sig: int | None, transient: bool
) -> None:
    assert classify(exit_code, sig, log(name)).transient is transient


# --- hard negatives ------------------------------------------------------------------------


@pytest.mark.parametrize("exit_code", [0, 1])
def test_nan_in_a_results_table_is_not_a_nan_loss(exit_code: int) -> None:
    failure = classify(exit_code, None, log("neg_nan_in_table"))
    assert failure.kind is FailureKind.UNKNOWN
    if exit_code == 1:
        assert failure.summary == "exited with status 1: KeyError: 'val_acc'"


@pytest.mark.parametrize("exit_code", [0, 1])
def test_memory_warnings_of_a_run_are_not_out_of_memory(exit_code: int) -> None:
    failure = classify(exit_code, None, log("neg_memory_warning_ok"))
    assert failure.kind is FailureKind.UNKNOWN
    assert failure.summary.startswith(f"exited with status {exit_code}: Training complete.")


def test_an_oom_the_script_survived_is_not_why_it_died() -> None:
    failure = classify(1, None, log("neg_oom_survived"))
    assert failure.kind is FailureKind.UNKNOWN
    assert "Expected input batch_size (256)" in failure.summary


# --- exit status and signals ---------------------------------------------------------------


def test_a_timeout_wins_over_what_the_log_says() -> None:
    failure = classify(None, signal.SIGTERM, log("cuda_oom"), timed_out=True)
    assert failure.kind is FailureKind.TIMEOUT
    assert failure.signal == signal.SIGTERM


@pytest.mark.parametrize(
    ("exit_code", "sig"),
    [(None, signal.SIGKILL), (-9, None), (137, None)],
    ids=["signal", "negative-returncode", "shell-128+9"],
)
def test_sigkill_is_read_from_every_form(exit_code: int | None, sig: int | None) -> None:
    failure = classify(exit_code, sig, "epoch 3 step 120 loss 0.41\n")
    assert failure.kind is FailureKind.KILLED
    assert failure.signal == signal.SIGKILL


def test_sigkill_with_an_oom_killer_message_is_host_oom() -> None:
    tail = "step 10\nbash: line 1: 48213 Killed                  python train.py --bs 512\n"
    failure = classify(None, signal.SIGKILL, tail)
    assert failure.kind is FailureKind.HOST_OOM
    assert "48213 Killed" in failure.evidence


def test_stopped_by_a_person_is_killed_by_that_signal() -> None:
    failure = classify(None, signal.SIGTERM, log("cuda_oom"))
    assert (failure.kind, failure.summary) == (FailureKind.KILLED, "killed by SIGTERM")


def test_an_abort_keeps_what_the_log_explains() -> None:
    failure = classify(None, signal.SIGABRT, log("nccl_watchdog"))
    assert failure.kind is FailureKind.NCCL_TIMEOUT
    assert failure.signal == signal.SIGABRT
    assert failure.summary.endswith(", then SIGABRT")


def test_a_crash_without_evidence_names_the_signal() -> None:
    failure = classify(None, signal.SIGSEGV, "Segmentation fault (core dumped)\n")
    assert (failure.kind, failure.summary) == (FailureKind.KILLED, "killed by SIGSEGV")
    assert failure.transient is False


def test_exit_127_without_a_message_is_a_missing_command() -> None:
    failure = classify(127, None, "")
    assert failure.kind is FailureKind.FILE_NOT_FOUND
    assert failure.summary == "command not found (exit status 127)"


def test_nothing_recognisable_is_unknown_with_the_last_line() -> None:
    failure = classify(3, None, "loading config\nsomething odd happened\n\n")
    assert failure == Failure(
        FailureKind.UNKNOWN,
        "exited with status 3: something odd happened",
        evidence="something odd happened",
    )
    assert classify(1, None, "").summary == "exited with status 1"


def test_colours_and_progress_bar_carriage_returns_are_ignored() -> None:
    tail = (
        "\x1b[32mEpoch 1\x1b[0m 10%\r20%\r30%\n"
        "\x1b[31mtorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB. GPU 0 "
        "has a total capacity of 7.79 GiB of which 0 bytes is free.\x1b[0m\n"
    )
    failure = classify(1, None, tail)
    assert failure.kind is FailureKind.CUDA_OOM
    assert failure.summary == (
        "CUDA out of memory on GPU 0: tried to allocate 1.00 GiB with 0 bytes free of 7.79 GiB"
    )
    assert "\x1b" not in failure.evidence


def test_signal_names() -> None:
    assert signal_name(9) == "SIGKILL"
    assert signal_name(200) == "signal 200"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.integers(-64, 255)),
    st.one_of(st.none(), st.integers(1, 64)),
    st.text(max_size=400),
    st.booleans(),
)
def test_any_input_gives_a_one_line_summary(
    exit_code: int | None, sig: int | None, tail: str, timed_out: bool
) -> None:
    failure = classify(exit_code, sig, tail, timed_out=timed_out)
    assert failure.summary
    assert "\n" not in failure.summary and "\r" not in failure.summary
    assert len(failure.summary) <= 200
    assert "\n" not in failure.evidence
