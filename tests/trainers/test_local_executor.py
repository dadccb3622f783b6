"""LocalExecutor with real processes: start, poll, cancel, and reattach after its starter died."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from labmind.trainers import run_dir as rd
from labmind.trainers.executor import AttemptSpec, AttemptState, Executor, ExecutorError, Handle
from labmind.trainers.local_executor import LocalExecutor

from .polling import wait_for


@pytest.fixture(params=["supervisor", "wrapper"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Attempts handed to the run supervisor, and each under a wrapper process of its own."""
    executor = LocalExecutor(supervisor=request.param == "supervisor")
    yield executor
    executor.close()


def spec(tmp_path: Path, command: str, attempt: int = 1) -> AttemptSpec:
    run_dir = rd.attempt_dir(tmp_path / "runs", "r1", attempt)
    return AttemptSpec("r1", attempt, run_dir, command=command)


def finished(executor: Executor, handle: Handle, timeout: float = 10.0) -> AttemptState:
    def probe() -> AttemptState | None:
        state = executor.poll(handle)
        return state if state.finished else None

    return wait_for(probe, timeout)


def gone(pid: int) -> bool:
    return rd.process_start_time(pid) is None


def command_group(handle: Handle) -> int:
    """The command's process group, once the wrapper has started it."""
    start = wait_for(lambda: rd.read_start(handle.run_dir))
    assert start.pgid is not None
    return start.pgid


def test_start_poll_and_log_tail(tmp_path: Path, executor: Executor) -> None:
    handle = executor.start(spec(tmp_path, "echo hello; echo oops >&2; exit 3"))
    state = finished(executor, handle)
    assert (state.status, state.exit_code, state.signal, state.succeeded) == (
        "exited",
        3,
        None,
        False,
    )
    assert executor.log_tail(handle.run_dir).splitlines() == ["hello", "oops"]
    assert rd.read_log(handle.run_dir, 0, 3) == b"hel"
    assert rd.read_log(handle.run_dir, 3, 1000) == b"lo\noops\n"
    assert rd.read_log(handle.run_dir, 11, 1000) == b""
    # Nothing went wrong: no message about the attempt (the supervisor makes the file only
    # to say something; a wrapper's output goes there).
    assert rd.read_log_tail(handle.run_dir / rd.WRAPPER_LOG, 4096) == ""


def test_gpus_env_and_cwd_reach_the_command(tmp_path: Path, executor: Executor) -> None:
    probe = 'echo "$CUDA_DEVICE_ORDER|$CUDA_VISIBLE_DEVICES|$LM_Y|$(pwd)"'
    gpu = replace(spec(tmp_path, probe), gpus=("GPU-aa", "GPU-bb"), env={"LM_Y": "y"}, cwd=tmp_path)
    cpu = spec(tmp_path, probe, attempt=2)
    for attempt in (gpu, cpu):
        assert finished(executor, executor.start(attempt)).succeeded
    assert executor.log_tail(gpu.run_dir) == f"PCI_BUS_ID|GPU-aa,GPU-bb|y|{tmp_path}\n"
    assert executor.log_tail(cpu.run_dir) == f"PCI_BUS_ID|||{cpu.run_dir}\n"


def test_a_command_that_does_not_exist_fails_with_127(tmp_path: Path, executor: Executor) -> None:
    attempt = AttemptSpec("r1", 1, tmp_path / "run", argv=["labmind-no-such-command"])
    state = finished(executor, executor.start(attempt))
    assert state.exit_code == 127
    assert state.error is not None
    assert "command not found: labmind-no-such-command" in executor.log_tail(attempt.run_dir)


def test_timeout(tmp_path: Path, executor: Executor) -> None:
    handle = executor.start(replace(spec(tmp_path, "sleep 30"), timeout_s=0.5, kill_grace_s=1.0))
    state = finished(executor, handle)
    assert (state.timed_out, state.signal, state.exit_code) == (True, signal.SIGTERM, None)


def test_cancel_stops_the_whole_group(tmp_path: Path, executor: Executor) -> None:
    handle = executor.start(spec(tmp_path, "sleep 30 & echo $! > gc.pid; wait"))
    grandchild = wait_for(lambda: _pid_in(handle.run_dir / "gc.pid"))
    executor.cancel(handle, grace_s=5.0)
    state = executor.poll(handle)
    assert (state.status, state.signal, state.cancelled) == ("exited", signal.SIGTERM, True)
    assert gone(grandchild)
    assert not rd.process_group_alive(command_group(handle))


def test_cancel_escalates_to_sigkill(tmp_path: Path, executor: Executor) -> None:
    command = 'trap "" TERM; sleep 30 & echo $! > gc.pid; wait'
    handle = executor.start(replace(spec(tmp_path, command), kill_grace_s=30.0))
    grandchild = wait_for(lambda: _pid_in(handle.run_dir / "gc.pid"))
    began = time.monotonic()
    executor.cancel(handle, grace_s=0.3)
    assert time.monotonic() - began < 5
    state = executor.poll(handle)
    assert (state.status, state.signal, state.cancelled) == ("exited", signal.SIGKILL, True)
    assert gone(grandchild)


def test_a_run_outlives_kill_9_of_the_process_that_started_it(
    tmp_path: Path, executor: Executor
) -> None:
    run_dir, go = tmp_path / "run", tmp_path / "go"
    command = f"while [ ! -e {go} ]; do sleep 0.02; done; echo finished; exit 5"
    starter = subprocess.Popen(
        [sys.executable, "-c", _STARTER, str(run_dir), command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    wrapper_pid = int(starter.stdout.readline())
    starter.kill()
    assert starter.wait(timeout=10) == -signal.SIGKILL

    handle = executor.reattach(run_dir)
    assert handle is not None
    assert handle.pid == wrapper_pid
    assert executor.poll(handle).status == "running"
    go.touch()
    state = finished(executor, handle)
    assert (state.status, state.exit_code) == ("exited", 5)
    assert executor.log_tail(run_dir) == "finished\n"


_STARTER = """
import sys
import threading
from pathlib import Path
from labmind.trainers.executor import AttemptSpec
from labmind.trainers.local_executor import LocalExecutor
handle = LocalExecutor().start(AttemptSpec("r1", 1, Path(sys.argv[1]), command=sys.argv[2]))
print(handle.pid, flush=True)
sys.stdin.read()
"""


def test_reattach_a_finished_run(tmp_path: Path, executor: Executor) -> None:
    first = executor.start(spec(tmp_path, "exit 4"))
    finished(executor, first)
    handle = LocalExecutor().reattach(first.run_dir)
    assert handle is not None
    assert (handle.pid, handle.start_time, handle.pgid) == (
        first.pid,
        first.start_time,
        command_group(first),
    )
    state = LocalExecutor().poll(handle)
    assert (state.status, state.exit_code) == ("exited", 4)


def test_reattach_a_lost_run(tmp_path: Path, executor: Executor) -> None:
    first = executor.start(spec(tmp_path, "sleep 30"))
    command_group(first)
    os.kill(first.pid, signal.SIGKILL)  # the wrapper dies before it can write exit.json
    wait_for(lambda: executor.poll(first).status == "lost")
    handle = LocalExecutor().reattach(first.run_dir)
    assert handle is not None
    assert LocalExecutor().poll(handle).status == "lost"
    # The orphaned command is still there; cancel reaches it through its process group.
    assert handle.pgid is not None
    assert rd.process_group_alive(handle.pgid)
    executor.cancel(handle, grace_s=2.0)
    assert not rd.process_group_alive(handle.pgid)
    assert executor.poll(handle).status == "lost"


def test_reattach_an_attempt_that_never_started(tmp_path: Path, executor: Executor) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rd.write_command(run_dir, rd.CommandRecord(argv=("true",), cwd=str(run_dir)))
    assert executor.reattach(run_dir) is None
    assert executor.reattach(tmp_path / "nothing-here") is None


def test_reattach_waits_for_a_wrapper_that_is_still_starting(
    tmp_path: Path, executor: Executor
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    me = rd.process_start_time(os.getpid())
    assert me is not None
    record = rd.StartRecord(os.getpid(), me, None, None, None, "host", time.time())
    results: list[Handle | None] = []
    for writes_start in (True, False):
        # Holding wrapper.lock is what a wrapper does from the moment it is spawned.
        fd = os.open(run_dir / rd.WRAPPER_LOCK, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        waiter = threading.Thread(target=lambda: results.append(executor.reattach(run_dir)))
        waiter.start()
        if writes_start:
            rd.write_json_atomic(run_dir / rd.START_FILE, record.to_json())
        os.close(fd)
        waiter.join(timeout=10)
        (run_dir / rd.START_FILE).unlink(missing_ok=True)
    assert results == [Handle(os.getpid(), None, me, run_dir), None]


def test_attempts_under_one_supervisor_end_on_their_own(tmp_path: Path) -> None:
    executor = LocalExecutor()
    try:
        long = executor.start(spec(tmp_path, "sleep 30", 1))
        short = executor.start(spec(tmp_path, "exit 6", 2))
        assert long.pid == short.pid  # one supervisor for both
        assert finished(executor, short).exit_code == 6
        assert executor.poll(long).status == "running"
        executor.cancel(long, grace_s=2.0)
        state = executor.poll(long)
        assert (state.status, state.signal, state.cancelled) == ("exited", signal.SIGTERM, True)
    finally:
        executor.close()


def test_an_unwritable_run_folder_is_one_clear_error(tmp_path: Path, executor: Executor) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExecutorError) as caught:
        executor.start(AttemptSpec("r1", 1, blocker / "run", command="true"))
    message = str(caught.value)
    assert "\n" not in message
    assert f"cannot create the run folder {blocker / 'run'}" in message


def test_an_attempt_starts_once(tmp_path: Path, executor: Executor) -> None:
    attempt = spec(tmp_path, "true")
    finished(executor, executor.start(attempt))
    with pytest.raises(ExecutorError, match="already started"):
        executor.start(attempt)


def test_a_wrapper_that_dies_before_starting(tmp_path: Path) -> None:
    executor = LocalExecutor(supervisor=False, wrapper_module="labmind.trainers.no_such_wrapper")
    state = finished(executor, executor.start(spec(tmp_path, "true")))
    assert state.status == "lost"
    assert state.error is not None
    assert "\n" not in state.error
    assert "No module named" in state.error


def test_watch_wakes_when_a_run_ends(tmp_path: Path, executor: Executor) -> None:
    ended = threading.Event()
    assert executor.watch(ended.set)
    go = tmp_path / "go"
    handle = executor.start(spec(tmp_path, f"while [ ! -e {go} ]; do sleep 0.02; done"))
    command_group(handle)
    assert not ended.is_set()
    go.touch()
    assert ended.wait(timeout=10)
    assert finished(executor, handle, timeout=0.5).succeeded


def test_a_dead_supervisor_loses_its_attempts_and_is_replaced(tmp_path: Path) -> None:
    executor = LocalExecutor()
    try:
        first = executor.start(spec(tmp_path, "sleep 30", 1))
        group = command_group(first)
        supervisor = psutil.Process(first.pid)
        assert "labmind.trainers.supervisor" in " ".join(supervisor.cmdline())
        supervisor.kill()
        supervisor.wait(timeout=10)
        assert finished(executor, first).status == "lost"
        # The orphaned command is still there; cancel reaches it through its process group.
        assert rd.process_group_alive(group)
        executor.cancel(first, grace_s=2.0)
        assert not rd.process_group_alive(group)
        assert finished(executor, executor.start(spec(tmp_path, "exit 2", 2))).exit_code == 2
    finally:
        executor.close()


def wait_loop(tmp_path: Path, name: str) -> str:
    """A command that runs until the file ``name`` appears next to the runs."""
    return f"while [ ! -e {tmp_path / name} ]; do sleep 0.02; done"


def test_an_attempt_lined_up_starts_the_moment_the_one_before_it_is_over(
    tmp_path: Path,
) -> None:
    executor = LocalExecutor()
    try:
        first = executor.start(spec(tmp_path, wait_loop(tmp_path, "go"), 1))
        command_group(first)
        assert executor.can_line_up(first)
        second = executor.line_up(spec(tmp_path, "exit 4", 2), first)
        assert second is not None
        time.sleep(0.3)
        assert rd.read_start(second.run_dir) is None  # it waits for the first
        assert executor.poll(second).running  # and holds its lock meanwhile
        (tmp_path / "go").touch()
        assert finished(executor, first).succeeded
        taken = executor.take_over(second)
        assert taken is not None
        handle, started_at = taken
        first_exit = rd.read_exit(first.run_dir)
        assert first_exit is not None
        assert handle.pgid is not None
        assert started_at >= first_exit.ended_at  # one slot: never both at once
        assert finished(executor, handle).exit_code == 4
    finally:
        executor.close()


def test_an_attempt_lined_up_is_withdrawn_or_cancelled_before_it_starts(tmp_path: Path) -> None:
    executor = LocalExecutor()
    try:
        first = executor.start(spec(tmp_path, wait_loop(tmp_path, "go"), 1))
        command_group(first)
        second = executor.line_up(spec(tmp_path, "exit 4", 2), first)
        third = executor.line_up(spec(tmp_path, "exit 5", 3), first)
        assert second is not None and third is not None
        assert executor.withdraw(second)
        executor.cancel(third, grace_s=2.0)  # taken back at once: it never ran
        for handle in (second, third):
            assert not rd.wrapper_lock_held(handle.run_dir)
            assert rd.read_start(handle.run_dir) is None
        (tmp_path / "go").touch()
        assert finished(executor, first).succeeded
        assert executor.take_over(second) is None  # nothing of it ran: start it again
        assert rd.read_start(third.run_dir) is None
        again = executor.start(spec(tmp_path, "exit 4", 2))
        assert finished(executor, again).exit_code == 4
    finally:
        executor.close()


def test_a_supervisor_whose_daemon_is_gone_lets_go_of_what_is_lined_up(tmp_path: Path) -> None:
    executor = LocalExecutor()
    first = executor.start(spec(tmp_path, wait_loop(tmp_path, "go"), 1))
    command_group(first)
    second = executor.line_up(spec(tmp_path, "exit 4", 2), first)
    assert second is not None
    executor.close()  # as the daemon's death would: end of file on the supervisor's socket
    wait_for(lambda: not rd.wrapper_lock_held(second.run_dir) or None)
    assert executor.poll(first).running  # what runs goes on
    (tmp_path / "go").touch()
    assert finished(executor, first).succeeded
    assert rd.read_start(second.run_dir) is None  # never started: a new daemon queues it again


def supervisors() -> set[int]:
    """The run supervisors this test process started (earlier tests' may still be going)."""
    found = set()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if "labmind.trainers.supervisor" in " ".join(child.cmdline()):
                found.add(child.pid)
    return found


def test_prepare_starts_the_supervisor_that_the_next_start_uses(tmp_path: Path) -> None:
    executor = LocalExecutor()
    try:
        before = supervisors()
        executor.prepare()
        executor.prepare()  # one is enough
        (booted,) = supervisors() - before
        handle = executor.start(spec(tmp_path, "true"))
        assert handle.pid == booted
        assert finished(executor, handle).succeeded
    finally:
        executor.close()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_an_attempt_lined_up_starts_with_no_signal_blocked_and_its_timeout(
    tmp_path: Path,
) -> None:
    """A lined-up attempt is started by the supervisor's reaper thread, which blocks the
    stop signals: the command must not inherit that, and its timeout must be kept."""
    executor = LocalExecutor()
    try:
        first = executor.start(spec(tmp_path, wait_loop(tmp_path, "go"), 1))
        command_group(first)
        status = tmp_path / "status"
        # Not through a shell, which clears its mask: Python keeps what it inherits.
        copy_status = (
            "import shutil, time; "
            f"shutil.copyfile('/proc/self/status', {str(status)!r}); time.sleep(30)"
        )
        second = executor.line_up(
            AttemptSpec(
                "r1",
                2,
                rd.attempt_dir(tmp_path / "runs", "r1", 2),
                argv=[sys.executable, "-c", copy_status],
                timeout_s=1.0,
                kill_grace_s=1.0,
            ),
            first,
        )
        assert second is not None
        (tmp_path / "go").touch()
        assert finished(executor, first).succeeded
        taken = executor.take_over(second)
        assert taken is not None
        state = finished(executor, taken[0])
        assert (state.timed_out, state.signal) == (True, signal.SIGTERM)
        (blocked,) = [line for line in status.read_text().splitlines() if line.startswith("SigBlk")]
        assert int(blocked.split()[1], 16) == 0
    finally:
        executor.close()


def _pid_in(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None
