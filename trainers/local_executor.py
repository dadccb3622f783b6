"""Runs attempts on this machine under a supervisor that outlives the daemon (POSIX).

``start`` writes ``command.json`` and hands the attempt to the run supervisor
(:mod:`labmind.trainers.supervisor`), one process in a session of its own that supervises
all the attempts this executor starts; when none can be reached, the attempt gets a wrapper
process of its own (``python -m labmind.trainers.wrapper RUN_DIR``). No pipe ties either to
this process, so runs outlive it. The executor locks ``wrapper.lock`` and hands the locked fd
over: from the first instant to the writing of ``exit.json`` a living attempt can be told
from a dead one by that lock alone, whichever process supervises it.

``poll`` believes ``exit.json`` first, then the lock; neither means the attempt is lost.
``cancel`` leaves ``cancel.request`` in the folder and stops the command's process group.
``watch`` wakes the caller when an attempt ends (the supervisor says so; for attempts of an
earlier supervisor or a wrapper, the end of the process does, through a pidfd).

``line_up`` hands the supervisor an attempt to start the moment one it runs is over (a queue
slot changes hands without waiting for the daemon); ``withdraw`` takes one back that has not
started, and ``take_over`` tells, once the attempt before it has ended, whether and when it
did start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import run_dir as rd
from .executor import AttemptSpec, AttemptState, ExecutorError, Handle
from .process_exits import ProcessExits
from .supervision import Ending, killpg
from .supervisor import Supervisor, SupervisorGone

WRAPPER_MODULE = "labmind.trainers.wrapper"
_AFTER_KILL_S = 5.0


class LocalExecutor:
    """The default :class:`~labmind.trainers.executor.Executor`: local processes.

    ``supervisor=False`` starts a wrapper process per attempt (``wrapper_module``) instead
    of handing attempts to the run supervisor."""

    def __init__(
        self,
        *,
        python: str = sys.executable,
        wrapper_module: str = WRAPPER_MODULE,
        start_timeout_s: float = 30.0,
        supervisor: bool = True,
    ) -> None:
        self.python = python
        self.wrapper_module = wrapper_module
        self.start_timeout_s = start_timeout_s
        self._wrappers: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._wake: Callable[[], None] | None = None
        self._exits: ProcessExits | None = None
        self._watched: set[tuple[int, int]] = set()
        self._supervisor = Supervisor(python, on_end=self._ended) if supervisor else None
        self._lined_up: set[Path] = set()
        self._reported: dict[Path, rd.ExitRecord | None] = {}
        """Attempts the supervisor said have ended, with their exit record, until polled."""
        self._starts: dict[Path, rd.StartRecord] = {}
        """Attempts lined up that the supervisor said have started, until taken over."""

    # --- start ---------------------------------------------------------------------------

    def start(self, attempt: AttemptSpec) -> Handle:
        run_dir, lock_fd = self._prepare(attempt)
        try:
            handle = self._hand_over(run_dir, lock_fd)
        finally:
            os.close(lock_fd)  # the supervisor holds the lock through its own copy
        self._watch_process(handle.pid, handle.start_time)
        return handle

    def prepare(self) -> None:
        """Start the run supervisor if none runs, so that it is up by the next start (a
        Python start-up, ~0.1 s); a supervisor that cannot start is tried again then."""
        if self._supervisor is not None:
            with contextlib.suppress(OSError):  # SupervisorGone, or no fds for its socket
                self._supervisor.boot()

    def can_line_up(self, after: Handle) -> bool:
        """Whether ``after`` runs under this executor's run supervisor (which can start an
        attempt the moment ``after`` is over)."""
        supervisor = self._supervisor
        return (
            supervisor is not None
            and after.job is None
            and after.pgid is not None
            and supervisor.pid == after.pid
        )

    def line_up(self, attempt: AttemptSpec, after: Handle) -> Handle | None:
        """Hand ``attempt`` to the supervisor of ``after`` to start once ``after`` is over
        (its process group gone); ``None`` when ``after`` is not under this executor's
        supervisor (nothing was handed over: start the attempt later). The handle names the
        supervisor and no process group until :meth:`take_over` finds the attempt started.
        Raises :class:`ExecutorError` as :meth:`start` does."""
        supervisor = self._supervisor
        if supervisor is None or not self.can_line_up(after):
            return None
        pid = after.pid
        run_dir, lock_fd = self._prepare(attempt)
        try:
            supervisor.line_up(run_dir, lock_fd, after.run_dir.absolute(), pid)
        except SupervisorGone:
            return None
        finally:
            os.close(lock_fd)
        with self._lock:
            self._lined_up.add(run_dir)
        return Handle(pid=pid, pgid=None, start_time=after.start_time, run_dir=run_dir)

    def take_over(self, handle: Handle) -> tuple[Handle, float] | None:
        """For an attempt lined up with :meth:`line_up` whose predecessor is over: its handle
        with the command's process group, and when it started (``start.json``). ``None`` when
        it never started (withdrawn, or its supervisor went away): nothing of it runs and it
        may be started again. Raises :class:`ExecutorError` when it could not be started."""
        with self._lock:
            self._lined_up.discard(handle.run_dir)
            start = self._starts.pop(handle.run_dir, None)
        start = start or rd.read_start(handle.run_dir)
        if start is None and self._supervisor is not None:
            # Normally it started before its predecessor's end was written; if it still
            # waits (its predecessor outlived a cancel), it is taken back.
            self._supervisor.drop(handle.run_dir)
        if start is None and self._withdrawn(handle.run_dir):
            error = _wrapper_error(handle.run_dir)
            if error is not None:
                raise ExecutorError(error)
            return None
        start = start or rd.read_start(handle.run_dir)
        if start is None:  # still held without a start after a long wait: poll tells
            return handle, time.time()
        full = dataclasses.replace(
            handle, pid=start.pid, pgid=start.pgid, start_time=start.start_time
        )
        return full, start.started_at

    def withdraw(self, handle: Handle) -> bool:
        """Take back an attempt lined up with :meth:`line_up`; whether it will not start
        (``False``: it has started, and runs or ran as any other)."""
        with self._lock:
            lined_up = handle.run_dir in self._lined_up
            self._lined_up.discard(handle.run_dir)
        if not lined_up or rd.read_start(handle.run_dir) is not None:
            return False
        if self._supervisor is not None:
            self._supervisor.drop(handle.run_dir)
        return self._withdrawn(handle.run_dir)

    def _withdrawn(self, run_dir: Path) -> bool:
        """Whether the attempt in ``run_dir`` is let go of without a start: waits while its
        supervisor still holds it without ``start.json`` (answering a drop, or starting it)."""
        deadline = time.monotonic() + self.start_timeout_s
        pause = 0.0005
        while rd.wrapper_lock_held(run_dir) and rd.read_start(run_dir) is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        return rd.read_start(run_dir) is None and rd.read_exit(run_dir) is None

    def _prepare(self, attempt: AttemptSpec) -> tuple[Path, int]:
        """The run folder with ``command.json``, and ``wrapper.lock`` locked (its fd, to hand
        over and close)."""
        run_dir = attempt.run_dir.absolute()
        name = f"run {attempt.run_id} attempt {attempt.attempt}"
        try:
            fresh = _make_folder(run_dir)
        except OSError as exc:
            raise ExecutorError(f"cannot create the run folder {run_dir}: {_why(exc)}") from None
        if not fresh and ((run_dir / rd.START_FILE).exists() or (run_dir / rd.EXIT_FILE).exists()):
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
            except OSError as exc:
                raise ExecutorError(
                    f"cannot write in the run folder {run_dir}: {_why(exc)}"
                ) from None
        except BaseException:
            os.close(lock_fd)
            raise
        return run_dir, lock_fd

    def _hand_over(self, run_dir: Path, lock_fd: int) -> Handle:
        """To the run supervisor when there is one, else to a wrapper of its own (whose
        output goes to ``wrapper.log``; the supervisor makes that file only to say something
        about the attempt)."""
        if self._supervisor is not None:
            try:
                start = self._supervisor.start(run_dir, lock_fd)
            except SupervisorGone:
                pass  # nothing was started: start a wrapper instead
            except OSError as exc:
                raise ExecutorError(f"cannot start {run_dir}: {_why(exc)}") from None
            else:
                return Handle(start.pid, start.pgid, start.start_time, run_dir)
        argv = [self.python, "-P", "-m", self.wrapper_module, str(run_dir)]
        try:
            with (run_dir / rd.WRAPPER_LOG).open("ab") as log:
                proc = subprocess.Popen(
                    [*argv, "--lock-fd", str(lock_fd)],
                    cwd=run_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    close_fds=True,
                    pass_fds=(lock_fd,),
                    start_new_session=True,
                )
        except OSError as exc:
            raise ExecutorError(
                f"cannot start the run wrapper {self.python}: {_why(exc)}"
            ) from None
        with self._lock:
            self._wrappers[proc.pid] = proc
        # Not reaped before this read: a wrapper that already ended is still there (a zombie).
        start_time = rd.process_start_time(proc.pid, zombies=True) or 0
        return Handle(pid=proc.pid, pgid=None, start_time=start_time, run_dir=run_dir)

    # --- watch ---------------------------------------------------------------------------

    def poll(self, handle: Handle) -> AttemptState:
        supervisor = self._supervisor
        if supervisor is not None and handle.pgid is not None and supervisor.reports(handle.pid):
            # Its supervisor lives and says when an attempt ends: no need to look yet.
            with self._lock:
                if handle.run_dir not in self._reported:
                    return AttemptState("running")
                told = self._reported.pop(handle.run_dir)
            if told is not None:
                return AttemptState.exited(told)
        self._reap()
        ended = rd.read_exit(handle.run_dir)
        if ended is None and rd.wrapper_lock_held(handle.run_dir):
            return AttemptState("running")
        # The supervisor may have written exit.json just before it let go of the lock.
        ended = ended or rd.read_exit(handle.run_dir)
        if ended is None:
            return AttemptState("lost", error=_wrapper_error(handle.run_dir))
        return AttemptState.exited(ended)

    def reattach(self, run_dir: Path) -> Handle | None:
        run_dir = run_dir.absolute()
        start = rd.read_start(run_dir)
        if start is None and rd.wrapper_lock_held(run_dir):
            # A supervisor has the attempt but has not written start.json yet: give it time.
            deadline = time.monotonic() + self.start_timeout_s
            while start is None and time.monotonic() < deadline:
                time.sleep(0.01)
                start = rd.read_start(run_dir)
                if start is None and not rd.wrapper_lock_held(run_dir):
                    start = rd.read_start(run_dir)
                    break
        elif start is None:
            # No lock: the attempt never started, or started and let go of the lock between
            # the two looks (start.json is written first): look once more.
            start = rd.read_start(run_dir)
        if start is None:
            return None
        self._watch_process(start.pid, start.start_time)
        if start.child_pid is not None and start.child_start_time is not None:
            # An earlier supervisor does not tell us when the attempt ends; its command does.
            self._watch_process(start.child_pid, start.child_start_time)
        return Handle(pid=start.pid, pgid=start.pgid, start_time=start.start_time, run_dir=run_dir)

    def watch(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` when an attempt started or reattached from now on ends; ``False``
        where the platform cannot tell, and attempts must be polled."""
        if not ProcessExits.supported():
            return False
        with self._lock:
            self._wake = wake
            if self._exits is None:
                self._exits = ProcessExits(wake)
        return True

    def _ended(self, ending: Ending) -> None:
        with self._lock:
            self._reported[ending.run_dir] = ending.exit
            self._starts.update(ending.started)
        wake = self._wake
        if wake is not None:
            wake()

    def _watch_process(self, pid: int, start_time: int) -> None:
        """Wake when this process ends (a wrapper, a command, or a supervisor, which takes
        its attempts with it)."""
        with self._lock:
            exits = self._exits
            if exits is None or (pid, start_time) in self._watched:
                return
            self._watched.add((pid, start_time))
        exits.add(pid, start_time)

    def close(self) -> None:
        """Let go of the supervisor and the exit watch; the runs go on."""
        if self._supervisor is not None:
            self._supervisor.close()
        with self._lock:
            exits, self._exits = self._exits, None
            self._watched.clear()
        if exits is not None:
            exits.close()

    def log_tail(self, run_dir: Path, max_bytes: int = 16384) -> str:
        tail = rd.read_log_tail(run_dir / rd.OUTPUT_LOG, max_bytes)
        return tail or rd.read_log_tail(run_dir / rd.WRAPPER_LOG, max_bytes)

    # --- stop ----------------------------------------------------------------------------

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        """Leave ``cancel.request`` for the supervisor, SIGTERM to the command's process
        group, SIGKILL after ``grace_s``. The supervisor also escalates by itself after the
        attempt's ``kill_grace_s``. Blocks until the attempt is over, at most ``grace_s`` and
        a few seconds: call it from a thread in async code."""
        if rd.read_exit(handle.run_dir) is not None or self.withdraw(handle):
            return
        with self._lock:
            self._starts.pop(handle.run_dir, None)
        handle = self._started(handle)
        with contextlib.suppress(OSError):
            (handle.run_dir / rd.CANCEL_FILE).touch()
        if handle.pgid is not None:
            killpg(handle.pgid, signal.SIGTERM)
        elif rd.process_alive(handle.pid, handle.start_time) and handle.pid in self._wrappers:
            # A wrapper of ours that has not started the command: it passes the signal on.
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signal.SIGTERM)
        if self._wait_over(handle, time.monotonic() + grace_s):
            return
        if handle.pgid is not None:
            killpg(handle.pgid, signal.SIGKILL)
        self._wait_over(handle, time.monotonic() + _AFTER_KILL_S)

    def _started(self, handle: Handle) -> Handle:
        """``handle`` with the command's process group, once ``start.json`` names it; a
        supervisor still starting the attempt is given the time to."""
        deadline = time.monotonic() + self.start_timeout_s
        pause = 0.001
        while handle.pgid is None:
            start = rd.read_start(handle.run_dir)
            if start is not None:
                return dataclasses.replace(handle, pgid=start.pgid)
            if not rd.wrapper_lock_held(handle.run_dir) or time.monotonic() >= deadline:
                return handle
            self._reap()
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        return handle

    def _wait_over(self, handle: Handle, deadline: float) -> bool:
        """Wait until the attempt is over: exit.json, or no lock and no command group."""
        pause = 0.001
        while True:
            self._reap()
            if rd.read_exit(handle.run_dir) is not None:
                return True
            held = rd.wrapper_lock_held(handle.run_dir)
            if not held and (handle.pgid is None or not rd.process_group_alive(handle.pgid)):
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, 0.02)

    def _reap(self) -> None:
        """Collect the wrappers of ours that have ended."""
        with self._lock:
            for pid, proc in list(self._wrappers.items()):
                if proc.poll() is not None:
                    del self._wrappers[pid]


def _wrapper_error(run_dir: Path) -> str | None:
    """Why an attempt ended without ``exit.json``, from the last line its supervisor wrote."""
    lines = rd.read_log_tail(run_dir / rd.WRAPPER_LOG, 4096).strip().splitlines()
    if not lines:
        return None
    return f"the run's supervisor ended without an exit status: {lines[-1]}"


def _make_folder(run_dir: Path) -> bool:
    """``mkdir -p run_dir``; whether ``run_dir`` itself was made now (so holds nothing)."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)  # the run's: new for a first attempt
        run_dir.mkdir()
    except FileExistsError:
        if not run_dir.is_dir():
            raise
        return False
    return True


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
