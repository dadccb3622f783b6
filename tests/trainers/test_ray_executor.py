"""RayExecutor against a real single-node Ray cluster on this machine (2 CPUs, no GPU)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from labmind.trainers import ray_executor as rx
from labmind.trainers import run_dir as rd
from labmind.trainers.executor import AttemptSpec, AttemptState, Executor, ExecutorError, Handle
from labmind.trainers.failures import FailureKind, classify
from labmind.trainers.ray_executor import RayExecutor, RayRecord, RayUnreachable

from .polling import wait_for
from .ray_cluster import RayCluster, free_ports, running_cluster

LOGS = Path(__file__).parent / "logs"
JOB_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with running_cluster(num_cpus=2) as head:
        yield head


@pytest.fixture
def executor(cluster: RayCluster) -> RayExecutor:
    return RayExecutor(cluster.address, cpus_per_run=0.5, poll_interval_s=0.05)


def spec(tmp_path: Path, command: str, run_id: str, attempt: int = 1) -> AttemptSpec:
    run_dir = rd.attempt_dir(tmp_path / "runs", run_id, attempt)
    return AttemptSpec(run_id, attempt, run_dir, command=command)


def finished(executor: Executor, handle: Handle) -> AttemptState:
    def probe() -> AttemptState | None:
        state = executor.poll(handle)
        return state if state.finished else None

    return wait_for(probe, JOB_TIMEOUT_S)


def logged(executor: Executor, handle: Handle, text: str) -> bool:
    """Poll (which mirrors the log) until ``output.log`` holds ``text`` while still running."""

    def probe() -> bool:
        assert executor.poll(handle).running
        return text in executor.log_tail(handle.run_dir)

    return wait_for(probe, JOB_TIMEOUT_S)


def test_a_run_that_succeeds(tmp_path: Path, executor: RayExecutor) -> None:
    probe = 'echo hello; echo "$LM_Y|$CUDA_VISIBLE_DEVICES|$LABMIND_RUN_DIR|$(pwd)"; echo oops >&2'
    attempt = replace(spec(tmp_path, probe, "ok"), env={"LM_Y": "y z"}, cwd=tmp_path)

    handle = executor.start(attempt)

    assert (handle.pid, handle.pgid, handle.start_time, handle.job) == (0, None, 0, "labmind-ok-1")
    record = rx.read_record(attempt.run_dir)
    assert record is not None
    assert (record.address, record.submission_id) == (executor.address, "labmind-ok-1")
    assert record.submitted_at is not None
    state = finished(executor, handle)
    assert (state.status, state.exit_code, state.signal, state.succeeded) == (
        "exited",
        0,
        None,
        True,
    )
    assert (attempt.run_dir / rd.OUTPUT_LOG).read_text() == (
        f"hello\ny z||{attempt.run_dir}|{tmp_path}\noops\n"
    )
    ended = rd.read_exit(attempt.run_dir)
    assert ended is not None and ended.exit_code == 0 and ended.duration_s >= 0
    assert executor.poll(handle) == state  # from exit.json, without the cluster


def test_a_failure_keeps_its_exit_code(tmp_path: Path, executor: RayExecutor) -> None:
    handle = executor.start(spec(tmp_path, "echo bad input >&2; exit 3", "fail"))

    state = finished(executor, handle)

    assert (state.status, state.exit_code, state.signal, state.succeeded) == (
        "exited",
        3,
        None,
        False,
    )
    assert executor.log_tail(handle.run_dir) == "bad input\n"


def test_a_cuda_oom_is_classified_from_the_mirrored_log(
    tmp_path: Path, executor: RayExecutor
) -> None:
    command = f"echo 'epoch 1 step 10 loss 2.31'; cat {LOGS / 'cuda_oom.log'} >&2; exit 1"
    handle = executor.start(spec(tmp_path, command, "oom"))

    state = finished(executor, handle)

    failure = classify(state.exit_code, state.signal, executor.log_tail(handle.run_dir))
    assert state.exit_code == 1
    assert failure.kind == FailureKind.CUDA_OOM
    assert "Tried to allocate 2.00 GiB" in failure.evidence


def test_cancel_stops_a_long_job(tmp_path: Path, executor: RayExecutor) -> None:
    handle = executor.start(spec(tmp_path, "echo started; exec sleep 300", "long"))
    logged(executor, handle, "started\n")

    executor.cancel(handle, grace_s=5)

    ended = rd.read_exit(handle.run_dir)
    assert ended is not None
    assert (ended.exit_code, ended.signal, ended.cancelled, ended.timed_out) == (
        None,
        signal.SIGTERM,
        True,
        False,
    )
    state = executor.poll(handle)
    assert (state.status, state.cancelled) == ("exited", True)
    record = rx.read_record(handle.run_dir)
    assert record is not None and record.stop == "cancel"
    executor.cancel(handle)  # over already: nothing to do


def test_a_timeout_is_enforced_by_poll(tmp_path: Path, executor: RayExecutor) -> None:
    attempt = replace(spec(tmp_path, "exec sleep 300", "slow"), timeout_s=0.5)
    handle = executor.start(attempt)

    state = finished(executor, handle)

    assert (state.status, state.signal, state.timed_out, state.cancelled) == (
        "exited",
        signal.SIGTERM,
        True,
        False,
    )
    assert classify(state.exit_code, state.signal, "", timed_out=True).kind == FailureKind.TIMEOUT


def test_reattach_from_the_run_folder(tmp_path: Path, cluster: RayCluster) -> None:
    first = RayExecutor(cluster.address, cpus_per_run=0.5, poll_interval_s=0.05)
    go = tmp_path / "go"
    command = f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second"
    attempt = spec(tmp_path, command, "again")
    started = first.start(attempt)
    logged(first, started, "first\n")
    del first  # the daemon went away; the run folder and the cluster remain

    second = RayExecutor(cluster.address, poll_interval_s=0.05)
    handle = second.reattach(attempt.run_dir)

    assert handle == started
    assert second.poll(handle).running
    go.touch()
    assert finished(second, handle).succeeded
    assert second.log_tail(attempt.run_dir) == "first\nsecond\n"
    assert second.reattach(attempt.run_dir) == handle


def test_reattach_tells_never_started_attempts(tmp_path: Path, executor: RayExecutor) -> None:
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    assert executor.reattach(nothing) is None

    # The daemon died between writing ray.json and submitting: the cluster has no such job.
    unsent = tmp_path / "unsent"
    unsent.mkdir()
    record = RayRecord(executor.address, "labmind-unsent-1", "true", cpus=1.0, gpus=0)
    rx.write_record(unsent, record)
    assert executor.reattach(unsent) is None

    # Submitted once, but the cluster no longer knows it (it was restarted): lost.
    rx.write_record(unsent, replace(record, submitted_at=1.0))
    handle = executor.reattach(unsent)
    assert handle is not None
    state = executor.poll(handle)
    assert state.status == "lost"
    assert state.error is not None and "does not know job labmind-unsent-1" in state.error


def test_starting_twice_submits_once(tmp_path: Path, cluster: RayCluster) -> None:
    from ray.job_submission import JobSubmissionClient

    attempt = spec(tmp_path, "echo once", "twice")
    handle = RayExecutor(cluster.address, cpus_per_run=0.5).start(attempt)
    # A restarted daemon that lost track of the start does it again, on a new executor.
    other = RayExecutor(cluster.address, cpus_per_run=0.5, poll_interval_s=0.05)

    again = other.start(attempt)

    assert again == handle
    assert finished(other, again).succeeded
    jobs = JobSubmissionClient(cluster.address).list_jobs()
    assert [j.submission_id for j in jobs].count("labmind-twice-1") == 1
    assert other.log_tail(attempt.run_dir) == "once\n"
    with pytest.raises(ExecutorError, match="already started"):
        other.start(attempt)


def test_fits_counts_the_cluster_and_what_was_just_submitted(
    tmp_path: Path, executor: RayExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert executor.available()

    # The cluster reports every few seconds: wait until it shows earlier tests' jobs gone.
    def idle() -> rx.ClusterResources | None:
        resources = executor.resources()
        return resources if resources.available["CPU"] == 2.0 else None

    resources = wait_for(idle, 30)
    assert resources.total["CPU"] == 2.0
    assert resources.total.get("GPU", 0.0) == 0.0
    assert executor.fits(1, 0)
    assert not executor.fits(0, 1)  # no GPU on this cluster
    assert not executor.fits(3, 0)

    # A job the cluster's report cannot show yet still counts against what is free...
    handle = executor.start(spec(tmp_path, "echo started; exec sleep 300", "big"), cpus=1.5)
    assert not executor.fits(1, 0)
    # ...and once seen running and in a later report, it counts once.
    logged(executor, handle, "started\n")
    wait_for(lambda: executor.fits(0.5, 0), 30)
    assert not executor.fits(1, 0)
    executor.cancel(handle, grace_s=5)

    # Without the autoscaler's report: node totals less what unfinished jobs reserved.
    monkeypatch.setattr(rx, "_from_report", lambda data: None)
    fallback = RayExecutor(executor.address).resources()
    assert (fallback.total["CPU"], fallback.available["CPU"], fallback.available["GPU"]) == (
        2.0,
        2.0,
        0.0,
    )


def test_a_cluster_that_is_not_running(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    address = f"http://127.0.0.1:{port}"
    executor = RayExecutor(address, poll_interval_s=0, lost_after_s=3600)
    attempt = spec(tmp_path, "true", "down")

    assert not executor.available()
    assert not executor.fits(1, 0)
    with pytest.raises(RayUnreachable) as info:
        executor.start(attempt)
    assert str(info.value) == f"cannot reach the Ray cluster at {address}: connection refused"

    # A cluster that stops answering does not lose its runs at once.
    rx.write_record(
        attempt.run_dir, RayRecord(address, "labmind-down-1", "true", 1.0, 0, None, 1.0)
    )
    handle = executor.reattach(attempt.run_dir)
    assert handle is not None
    assert executor.poll(handle).running
    executor.lost_after_s = 0
    state = executor.poll(handle)
    assert state.status == "lost"
    assert state.error is not None and "connection refused" in state.error


def test_without_ray_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray.job_submission", None)
    with pytest.raises(ExecutorError) as info:
        RayExecutor()
    assert str(info.value) == "the Ray executor needs the 'ray' extra: pip install 'labmind[ray]'"


def test_importing_the_module_does_not_import_ray() -> None:
    code = "import sys, labmind.trainers.ray_executor; print('ray' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_the_mirrored_log_leaves_out_rays_own_lines() -> None:
    record = RayRecord("http://h:8265", "labmind-r-1", "cd /w && exec sh -c 'x'", 1.0, 0)
    setup = "2026-11-25 01:20:04,236\tINFO job_manager.py:581 -- Runtime env is setting up.\n"
    marker = "Running entrypoint for job labmind-r-1: cd /w && exec sh -c 'x'\n"
    # Ray flushes its "Running entrypoint" line only after starting the command, so it may
    # come after the command's first output, even in the middle of a line.
    early = setup + "hel"
    late = setup + "hel" + marker + "lo\n2026-11-25 01:20:05,000\tINFO mine.py:1 -- kept\n"

    assert rx._command_output(setup, record) == ""
    assert rx._command_output(early, record) == "hel"
    assert (
        rx._command_output(late, record)
        == "hello\n2026-11-25 01:20:05,000\tINFO mine.py:1 -- kept\n"
    )
    assert rx._command_output(setup + marker + "hello\n", record) == "hello\n"
