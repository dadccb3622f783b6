"""Runs one attempt's command and records how it ended: ``python -m labmind.trainers.wrapper DIR``.

The wrapper is what lets runs outlive the daemon. It runs in its own session (the executor
starts it with ``start_new_session=True``), so a daemon killed with SIGKILL, or a closed
terminal, does not reach it. It reads ``command.json`` from the run folder and starts the
command as its child with stdout and stderr going straight to ``output.log`` (nothing passes
through the wrapper), ``LABMIND_RUN_DIR`` set to the run folder and ``PYTHONUNBUFFERED=1``
unless the environment says otherwise.

The command gets a process group of its own inside the wrapper's session; that group is what
a timeout or a cancel kills (SIGTERM, then SIGKILL after ``kill_grace_s``), and the wrapper,
outside it, lives on to record the result. SIGTERM, SIGINT and SIGHUP sent to the wrapper
are passed on to the command's group. The wrapper is a child subreaper on Linux, so orphaned
grandchildren are reaped by it. When the command ends, whatever is left in its group is
stopped the same way before ``exit.json`` is written, so "exited" means the group is gone.

Files: ``start.json`` once the command runs, ``exit.json`` at the end (both atomic, see
:mod:`labmind.trainers.run_dir`); the wrapper's own messages go to its stderr, which the
executor points at ``wrapper.log``. Exit status of the wrapper: 0 when ``exit.json`` was
written, 70 when it could not be, 75 when the attempt is already held by another wrapper or
was started before (an attempt runs once).

Standard library only: this process sits next to every run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from . import run_dir as rd

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
_PR_SET_CHILD_SUBREAPER = 36
_CLEANUP_POLL_S = 0.05
"""Group members that are not our children give no SIGCHLD: poll for them while stopping."""
_AFTER_KILL_S = 2.0


class Supervisor:
    """Starts the command of one run folder, waits for it, and writes ``exit.json``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.pending: list[int] = []
        self.cancelled = False
        self.timed_out = False
        self.child: subprocess.Popen[bytes] | None = None
        self.status: int | None = None
        self.term_sent = False
        self.kill_deadline = math.inf
        self.kill_sent_at = math.inf
        self.grace_s = 10.0
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # --- signals ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        # A signal mask inherited from whatever thread started us must neither hide these
        # signals from the wrapper nor reach the command, which would inherit it.
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, self._on_child)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self.pending.append(signum)

    def _on_child(self, signum: int, frame: FrameType | None) -> None:
        """Nothing to do here: the wakeup fd wakes the loop, which reaps."""

    # --- main ------------------------------------------------------------------------------

    def run(self) -> int:
        self.install_signal_handlers()
        _become_subreaper()
        started_at, t0 = time.time(), time.monotonic()
        my_start = rd.process_start_time(os.getpid()) or 0
        try:
            log_fd = os.open(
                self.run_dir / rd.OUTPUT_LOG,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                0o644,
            )
        except OSError as exc:
            _say(f"cannot open {rd.OUTPUT_LOG} in {self.run_dir}: {exc.strerror}")
            return EX_SOFTWARE
        command = rd.read_command(self.run_dir)
        error: str | None = None
        code = 0
        if command is None:
            error, code = f"{rd.COMMAND_FILE} is missing or malformed in {self.run_dir}", 126
        else:
            self.grace_s = command.kill_grace_s
            error, code = self._spawn(command, log_fd)
        os.close(log_fd)
        if error is not None:
            _append(self.run_dir / rd.OUTPUT_LOG, f"labmind: {error}\n")
        child = self.child
        start = rd.StartRecord(
            pid=os.getpid(),
            start_time=my_start,
            pgid=None if child is None else child.pid,
            child_pid=None if child is None else child.pid,
            child_start_time=None if child is None else rd.process_start_time(child.pid),
            host=socket.gethostname(),
            started_at=started_at,
        )
        try:
            rd.write_json_atomic(self.run_dir / rd.START_FILE, start.to_json())
        except OSError as exc:
            _say(f"cannot write {rd.START_FILE} in {self.run_dir}: {exc}; stopping the command")
            if child is not None:
                _killpg(child.pid, signal.SIGKILL)
                child.wait()
            return EX_SOFTWARE

        if child is not None:
            timeout = command.timeout_s if command is not None else None
            self._wait(child, math.inf if timeout is None else t0 + timeout)
            self._stop_group(child.pid)
        exit_code: int | None = code
        signum: int | None = None
        if self.status is not None:
            if os.WIFSIGNALED(self.status):
                exit_code, signum = None, os.WTERMSIG(self.status)
            else:
                exit_code = os.waitstatus_to_exitcode(self.status)
        record = rd.ExitRecord(
            exit_code=exit_code,
            signal=signum,
            ended_at=time.time(),
            duration_s=round(time.monotonic() - t0, 6),
            timed_out=self.timed_out,
            cancelled=self.cancelled,
            error=error,
        )
        try:
            rd.write_json_atomic(self.run_dir / rd.EXIT_FILE, record.to_json())
        except OSError as exc:
            _say(f"cannot write {rd.EXIT_FILE} in {self.run_dir}: {exc}")
            return EX_SOFTWARE
        return 0

    def _spawn(self, command: rd.CommandRecord, log_fd: int) -> tuple[str | None, int]:
        """Start the command; on failure, the error and the shell's exit code for it."""
        if not Path(command.cwd).is_dir():
            return f"working directory does not exist: {command.cwd}", 127
        env = dict(os.environ)
        env.update(command.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env[rd.RUN_DIR_ENV] = str(self.run_dir)
        try:
            self.child = subprocess.Popen(
                command.argv,
                cwd=command.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                close_fds=True,
                process_group=0,
            )
        except FileNotFoundError as exc:
            return f"command not found: {command.argv[0]} ({exc.strerror})", 127
        except OSError as exc:
            return f"cannot run {command.argv[0]}: {exc.strerror or exc}", 126
        return None, 0

    # --- waiting and stopping ----------------------------------------------------------------

    def _wait(self, child: subprocess.Popen[bytes], timeout_at: float) -> None:
        while True:
            self._reap(child)
            if self.status is not None:
                return
            self._forward_pending(child.pid)
            now = time.monotonic()
            if now >= timeout_at and not self.timed_out:
                self.timed_out = True
                self._terminate(child.pid, now)
            if now >= self.kill_deadline:
                self._kill(child.pid, now)
            wake_at = self.kill_deadline if self.timed_out else min(timeout_at, self.kill_deadline)
            self._sleep(wake_at - now)

    def _stop_group(self, pgid: int) -> None:
        """Stop whatever the command left in its process group (TERM, grace, KILL)."""
        while True:
            self._reap(None)
            if not rd.process_group_alive(pgid):
                return
            self._forward_pending(pgid)
            now = time.monotonic()
            if not self.term_sent:
                self._terminate(pgid, now)
            elif now >= self.kill_deadline:
                self._kill(pgid, now)
            elif now >= self.kill_sent_at + _AFTER_KILL_S:
                _say(f"process group {pgid} is still there after SIGKILL; giving up on it")
                return
            wake = min(self.kill_deadline, self.kill_sent_at + _AFTER_KILL_S)
            self._sleep(min(wake - now, _CLEANUP_POLL_S))

    def _terminate(self, pgid: int, now: float) -> None:
        _killpg(pgid, signal.SIGTERM)
        self.term_sent = True
        self.kill_deadline = min(self.kill_deadline, now + self.grace_s)

    def _kill(self, pgid: int, now: float) -> None:
        _killpg(pgid, signal.SIGKILL)
        self.kill_deadline = math.inf
        self.kill_sent_at = now

    def _forward_pending(self, pgid: int) -> None:
        signals, self.pending = self.pending, []
        for sig in signals:
            self.cancelled = True
            _killpg(pgid, sig)
            self.term_sent = True
            self.kill_deadline = min(self.kill_deadline, time.monotonic() + self.grace_s)

    def _reap(self, child: subprocess.Popen[bytes] | None) -> None:
        """Collect every exited child (the command and reparented orphans)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if child is not None and pid == child.pid:
                self.status = status
                child.returncode = os.waitstatus_to_exitcode(status)

    def _sleep(self, seconds: float) -> None:
        """Wait for a signal (SIGCHLD or a stop signal) or ``seconds``, whichever is first."""
        if self.pending:
            return
        timeout = None if math.isinf(seconds) else max(0.0, seconds)
        ready, _, _ = select.select([self._wake_r], [], [], timeout)
        if ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 512):
                    pass


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _become_subreaper() -> None:
    """Let orphaned grandchildren be reparented to (and reaped by) the wrapper; Linux only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _detach() -> None:
    """Be a session leader, so that the daemon's session ending does not reach the run."""
    if os.getsid(0) != os.getpid():
        with contextlib.suppress(OSError):
            os.setsid()


def _take_lock(run_dir: Path, lock_fd: int | None) -> int | None:
    """Hold ``wrapper.lock`` for life; ``None`` when another wrapper holds it."""
    if lock_fd is not None:
        os.set_inheritable(lock_fd, False)
        return lock_fd
    fd = os.open(run_dir / rd.WRAPPER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _append(path: Path, text: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        _say(f"cannot write {path}: {exc.strerror}")


def _say(message: str) -> None:
    print(f"labmind wrapper: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labmind.trainers.wrapper")
    parser.add_argument("run_dir", type=Path, help="the attempt's run folder (with command.json)")
    parser.add_argument(
        "--lock-fd", type=int, default=None, help="an inherited fd that holds wrapper.lock"
    )
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.absolute()
    _detach()
    try:
        lock = _take_lock(run_dir, args.lock_fd)
    except OSError as exc:
        _say(f"cannot lock {run_dir / rd.WRAPPER_LOCK}: {exc.strerror}")
        return EX_SOFTWARE
    if lock is None:
        _say(f"another wrapper is already running {run_dir}")
        return EX_TEMPFAIL
    if (run_dir / rd.START_FILE).exists():
        _say(f"{run_dir} was started before; an attempt runs once (start a new attempt)")
        return EX_TEMPFAIL
    return Supervisor(run_dir).run()


if __name__ == "__main__":
    sys.exit(main())
