"""Runs attempts on this machine, each under its own wrapper process (POSIX).

``start`` writes ``command.json`` and starts ``python -m labmind.trainers.wrapper RUN_DIR`` in
a new session, with stdin from /dev/null and the wrapper's own output in ``wrapper.log``; no
pipe ties the wrapper to this process, so the run outlives it. The executor holds
``wrapper.lock`` while it starts the wrapper and hands the locked fd over, so from the first
instant a living wrapper can be told from a dead one, even before ``start.json`` exists.

``poll`` believes ``exit.json`` first, then asks whether the wrapper (pid *and* start time, so
a reused pid does not count) is alive; neither means the attempt is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import run_dir as rd
from .executor import AttemptSpec, AttemptState, ExecutorError, Handle

WRAPPER_MODULE = "labmind.trainers.wrapper"
_AFTER_KILL_S = 5.0


class LocalExecutor:
    """The default :class:`~labmind.trainers.executor.Executor`: local processes."""

    def __init__(
        self,
        *,
        python: str = sys.executable,
        wrapper_module: str = WRAPPER_MODULE,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.python = python
        self.wrapper_module = wrapper_module
        self.start_timeout_s = start_timeout_s
        self._wrappers: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    # --- start ---------------------------------------------------------------------------

    def start(self, attempt: AttemptSpec) -> Handle:
        run_dir = attempt.run_dir.absolute()
        name = f"run {attempt.run_id} attempt {attempt.attempt}"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutorError(f"cannot create the run folder {run_dir}: {_why(exc)}") from None
        if (run_dir / rd.START_FILE).exists() or (run_dir / rd.EXIT_FILE).exists():
            raise ExecutorError(f"{name} was already started in {run_dir}")
        record = rd.CommandRecord(
            argv=attempt.full_argv(),
            cwd=str((attempt.cwd or run_dir).absolute()),
            env=attempt.full_env(),
            timeout_s=attempt.timeout_s,
            kill_grace_s=attempt.kill_grace_s,
            shell_command=attempt.command,
        )
        try:
            lock_fd = os.open(
                run_dir / rd.WRAPPER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            raise ExecutorError(f"cannot write in the run folder {run_dir}: {_why(exc)}") from None
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ExecutorError(f"{name} is already running in {run_dir}") from None
            try:
                rd.write_command(run_dir, record)
                log = (run_dir / rd.WRAPPER_LOG).open("ab")
            except OSError as exc:
                raise ExecutorError(
                    f"cannot write in the run folder {run_dir}: {_why(exc)}"
                ) from None
            with log:
                proc = self._spawn_wrapper(run_dir, lock_fd, log.fileno())
        finally:
            os.close(lock_fd)  # the wrapper holds the lock through its inherited copy
        with self._lock:
            self._wrappers[proc.pid] = proc
        start = self._wait_for_start(proc, run_dir, name)
        return Handle(pid=start.pid, pgid=start.pgid, start_time=start.start_time, run_dir=run_dir)

    def _spawn_wrapper(self, run_dir: Path, lock_fd: int, log_fd: int) -> subprocess.Popen[bytes]:
        argv = [self.python, "-P", "-m", self.wrapper_module, str(run_dir)]
        try:
            return subprocess.Popen(
                [*argv, "--lock-fd", str(lock_fd)],
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                close_fds=True,
                pass_fds=(lock_fd,),
                start_new_session=True,
            )
        except OSError as exc:
            raise ExecutorError(
                f"cannot start the run wrapper {self.python}: {_why(exc)}"
            ) from None

    def _wait_for_start(
        self, proc: subprocess.Popen[bytes], run_dir: Path, name: str
    ) -> rd.StartRecord:
        deadline = time.monotonic() + self.start_timeout_s
        pause = 0.001
        while True:
            start = rd.read_start(run_dir)
            if start is not None:
                return start
            if proc.poll() is not None:
                start = rd.read_start(run_dir)
                if start is not None:
                    return start
                tail = rd.read_log_tail(run_dir / rd.WRAPPER_LOG, 4096)
                last = tail.strip().splitlines()[-1:] or ["no output"]
                raise ExecutorError(
                    f"the wrapper of {name} exited with status {proc.returncode} before "
                    f"starting the command: {last[0]}",
                    log_tail=tail,
                )
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise ExecutorError(
                    f"the wrapper of {name} did not start the command within "
                    f"{self.start_timeout_s:g} s (see {run_dir / rd.WRAPPER_LOG})"
                )
            # Wakes at once if the wrapper dies; otherwise look again for start.json.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=pause)
            pause = min(pause * 2, 0.02)

    # --- watch ---------------------------------------------------------------------------

    def poll(self, handle: Handle) -> AttemptState:
        self._reap(handle.pid)
        ended = rd.read_exit(handle.run_dir)
        if ended is None and rd.process_alive(handle.pid, handle.start_time):
            return AttemptState("running")
        # The wrapper may have written exit.json just before it was found gone.
        ended = ended or rd.read_exit(handle.run_dir)
        if ended is None:
            return AttemptState("lost")
        return AttemptState(
            "exited",
            exit_code=ended.exit_code,
            signal=ended.signal,
            timed_out=ended.timed_out,
            cancelled=ended.cancelled,
            error=ended.error,
            duration_s=ended.duration_s,
        )

    def reattach(self, run_dir: Path) -> Handle | None:
        run_dir = run_dir.absolute()
        start = rd.read_start(run_dir)
        if start is None and rd.wrapper_lock_held(run_dir):
            # A wrapper is alive but has not written start.json yet: give it time to.
            deadline = time.monotonic() + self.start_timeout_s
            while start is None and time.monotonic() < deadline:
                time.sleep(0.01)
                start = rd.read_start(run_dir)
                if start is None and not rd.wrapper_lock_held(run_dir):
                    start = rd.read_start(run_dir)
                    break
        if start is None:
            return None
        return Handle(pid=start.pid, pgid=start.pgid, start_time=start.start_time, run_dir=run_dir)

    def log_tail(self, run_dir: Path, max_bytes: int = 16384) -> str:
        tail = rd.read_log_tail(run_dir / rd.OUTPUT_LOG, max_bytes)
        return tail or rd.read_log_tail(run_dir / rd.WRAPPER_LOG, max_bytes)

    # --- stop ----------------------------------------------------------------------------

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        """SIGTERM to the wrapper, which passes it to the command's group (or straight to the
        group when the wrapper is gone), SIGKILL to the group after ``grace_s``. The wrapper
        also escalates by itself after the attempt's ``kill_grace_s``. Blocks until the attempt
        is over, at most ``grace_s`` and a few seconds: call it from a thread in async code."""
        if rd.read_exit(handle.run_dir) is not None:
            return
        if rd.process_alive(handle.pid, handle.start_time):
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signal.SIGTERM)
        elif handle.pgid is not None:
            _killpg(handle.pgid, signal.SIGTERM)
        if self._wait_over(handle, time.monotonic() + grace_s):
            return
        if handle.pgid is not None:
            _killpg(handle.pgid, signal.SIGKILL)
        self._wait_over(handle, time.monotonic() + _AFTER_KILL_S)

    def _wait_over(self, handle: Handle, deadline: float) -> bool:
        """Wait until the attempt is over: exit.json, or no wrapper and no command group."""
        pause = 0.001
        while True:
            self._reap(handle.pid)
            if rd.read_exit(handle.run_dir) is not None:
                return True
            wrapper = rd.process_alive(handle.pid, handle.start_time)
            if not wrapper and (handle.pgid is None or not rd.process_group_alive(handle.pgid)):
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, 0.02)

    def _reap(self, pid: int) -> None:
        with self._lock:
            proc = self._wrappers.get(pid)
            if proc is not None and proc.poll() is not None:
                del self._wrappers[pid]


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
