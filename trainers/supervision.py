"""Supervising attempts in this process: start each command, wait, stop, record the end.

One :class:`Supervision` looks after any number of attempts. It is what makes a run outlive
the daemon: it runs in a process of its own session (the run supervisor,
:mod:`labmind.trainers.supervisor`, or one wrapper per attempt,
:mod:`labmind.trainers.wrapper`), never in the daemon.

For each attempt it reads ``command.json`` from the run folder and starts the command as its
child, with stdout and stderr going straight to ``output.log`` (nothing passes through this
process), ``LABMIND_RUN_DIR`` set to the run folder and ``PYTHONUNBUFFERED=1`` unless the
environment says otherwise. The command gets a process group of its own; that group is what
a timeout or a cancel stops (SIGTERM, then SIGKILL after ``kill_grace_s``). When the command
ends, whatever is left in its group is stopped the same way before ``exit.json`` is written,
so "exited" means the group is gone.

Each attempt's ``wrapper.lock`` is held through an fd from the moment the attempt is handed
over until its ``exit.json`` is written: a held lock is a living attempt, whoever asks.
SIGTERM, SIGINT and SIGHUP sent to this process are passed on to every command's group (and
the attempts count as cancelled), as is a cancel request in an attempt's folder
(``cancel.request``, written by the executor before it signals the group itself). The
process is a child subreaper on Linux, so orphaned grandchildren are reaped here.

An attempt may also be *lined up* behind one that runs (:meth:`Supervision.line_up`): it
starts the moment the one before it is over (its group gone), before that one's
``exit.json`` is written, so a slot of the daemon's queue never waits for the daemon. Until
then it holds its lock and has no ``start.json``; :meth:`Supervision.drop` lets go of it
(lock released, nothing written), as does a stop signal, so "no ``start.json`` and no lock"
always means "never started, start it again".

Standard library only: this code sits next to every run.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import math
import os
import select
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from . import run_dir as rd

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_CHILD_SUBREAPER = 36
_CLEANUP_POLL_S = 0.05
"""Group members that are not our children give no SIGCHLD: poll for them while stopping."""
_AFTER_KILL_S = 2.0


class NotStarted(Exception):
    """The attempt was not taken on (its folder is unusable): no ``exit.json`` will be
    written for it; the message says why, in one line."""


class StartedBefore(NotStarted):
    """The attempt has a ``start.json`` already: an attempt runs once."""


@dataclass
class _Attempt:
    run_dir: Path
    lock_fd: int
    t0: float
    folder: int = -1
    """An fd of ``run_dir``, where the attempt's records are written."""
    grace_s: float = 10.0
    timeout_at: float = math.inf
    child: int | None = None
    """The command's pid (and process group)."""
    status: int | None = None
    code: int = 0
    error: str | None = None
    timed_out: bool = False
    cancelled: bool = False
    term_sent: bool = False
    kill_deadline: float = math.inf
    kill_sent_at: float = math.inf

    @property
    def pgid(self) -> int | None:
        return self.child


@dataclass
class _LinedUp:
    """An attempt waiting for the one before it to end: its folder and its lock's fd."""

    run_dir: Path
    lock_fd: int

    def close(self) -> None:
        os.close(self.lock_fd)


@dataclass(frozen=True)
class Ending:
    """An attempt that is over, as :class:`Supervision` reports it."""

    run_dir: Path
    exit: rd.ExitRecord | None
    """What its ``exit.json`` holds; ``None`` when that could not be written."""
    started: tuple[tuple[Path, rd.StartRecord], ...] = ()
    """The attempts lined up behind it that started as it ended, with their ``start.json``."""


class Supervision:
    """The attempts this process supervises. ``on_end(ending)`` is called once an attempt
    is over and its ``exit.json`` written (or found unwritable). Call :meth:`install` once,
    from the main thread, before anything else; then :meth:`start` attempts and
    :meth:`run` (which takes more through its ``take`` callback).

    Two threads do the work, one at a time (:attr:`lock`): the main thread waits for
    requests, signals and timers; another waits for children in ``waitid``, so that the
    kernel wakes it where the child ended (a parent waiting for its child gets that hint,
    one woken by SIGCHLD does not and, on a busy machine, may wait for a busy core while
    the core the child left sits idle), and it starts what is lined up behind the attempt
    that ended at once."""

    def __init__(
        self,
        on_end: Callable[[Ending], None] = lambda ending: None,
        *,
        folder_log: bool = False,
    ) -> None:
        self.on_end = on_end
        self.folder_log = folder_log
        """Messages about an attempt go to its folder's ``wrapper.log`` (made when there is
        one), not to this process's stderr."""
        self._attempts: dict[Path, _Attempt] = {}
        self._waiting: dict[Path, list[_LinedUp]] = {}
        """Attempts lined up behind the running attempt whose folder is the key."""
        self._pending: list[int] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.lock = threading.Lock()
        """Held while either thread works on the attempts (:meth:`run` takes it)."""
        self._spawned = threading.Event()
        """Set when a command is started (the reaper waits for one when there are none)."""
        self._asleep_until = math.inf
        """When the main thread's wait ends (the reaper wakes it when things change sooner)."""
        self._me = rd.process_start_time(os.getpid()) or 0
        self._host = socket.gethostname()
        self._environ = dict(os.environ)
        """The commands' base environment (this process never changes its own)."""

    @property
    def busy(self) -> bool:
        return bool(self._attempts)

    # --- signals ---------------------------------------------------------------------------

    def install(self) -> None:
        """Signal handlers (stop signals are passed on) and, on Linux, the child subreaper
        flag."""
        # A mask inherited from whatever thread started us must not hide these signals.
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)
        # Children stay for waitid to find (an inherited SIG_IGN would reap them unseen).
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        libc = _libc()
        if libc is not None:
            with contextlib.suppress(AttributeError):
                libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._pending.append(signum)

    # --- starting --------------------------------------------------------------------------

    def start(self, run_dir: Path, lock_fd: int) -> rd.StartRecord:
        """Take on the attempt in ``run_dir`` whose ``wrapper.lock`` ``lock_fd`` holds (the
        fd becomes this object's). Its ``start.json`` once written; raises
        :class:`NotStarted` (having closed the fd) when it is not taken on."""
        os.set_inheritable(lock_fd, False)  # posix_spawn passes every inheritable fd on
        attempt = _Attempt(run_dir, lock_fd, time.monotonic())
        started_at = time.time()
        try:
            attempt.folder = folder = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            self._drop(attempt)
            raise NotStarted(f"cannot open the run folder {run_dir}: {exc.strerror}") from None
        if rd.exists_at(folder, rd.START_FILE):
            self._drop(attempt)
            raise StartedBefore(
                f"{run_dir} was started before; an attempt runs once (start a new attempt)"
            )
        try:
            out_fd = os.open(
                rd.OUTPUT_LOG,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                0o644,
                dir_fd=folder,
            )
        except OSError as exc:
            self._drop(attempt)
            raise NotStarted(f"cannot open {rd.OUTPUT_LOG} in {run_dir}: {exc.strerror}") from None
        command = rd.read_command_at(folder)
        if command is None:
            attempt.error = f"{rd.COMMAND_FILE} is missing or malformed in {run_dir}"
            attempt.code = 126
        else:
            attempt.grace_s = command.kill_grace_s
            if command.timeout_s is not None:
                attempt.timeout_at = attempt.t0 + command.timeout_s
            self._spawn(attempt, command, out_fd)
        os.close(out_fd)
        if attempt.error is not None:
            _append(run_dir / rd.OUTPUT_LOG, f"labmind: {attempt.error}\n")
        child = attempt.child
        start = rd.StartRecord(
            pid=os.getpid(),
            start_time=self._me,
            pgid=attempt.pgid,
            child_pid=child,
            child_start_time=None if child is None else rd.process_start_time(child),
            host=self._host,
            started_at=started_at,
        )
        try:
            rd.write_json_at(folder, rd.START_FILE, start.to_json())
        except OSError as exc:
            if child is not None:
                killpg(child, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child, 0)
            self._drop(attempt)
            raise NotStarted(
                f"cannot write {rd.START_FILE} in {run_dir}: {exc}; stopped the command"
            ) from None
        self._attempts[run_dir] = attempt
        return start

    def _spawn(self, attempt: _Attempt, command: rd.CommandRecord, out_fd: int) -> None:
        if not Path(command.cwd).is_dir():
            attempt.error, attempt.code = f"working directory does not exist: {command.cwd}", 127
            return
        env = self._environ.copy()
        env.update(command.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env[rd.RUN_DIR_ENV] = str(attempt.run_dir)
        try:
            attempt.child = _spawn(command.argv, command.cwd, env, out_fd)
            self._spawned.set()
        except FileNotFoundError as exc:
            attempt.error = f"command not found: {command.argv[0]} ({exc.strerror})"
            attempt.code = 127
        except OSError as exc:
            attempt.error = f"cannot run {command.argv[0]}: {exc.strerror or exc}"
            attempt.code = 126

    def line_up(self, run_dir: Path, lock_fd: int, after: Path) -> None:
        """Take on the attempt in ``run_dir`` (as :meth:`start` does) to start once the
        attempt in ``after`` is over; at once when ``after`` is not supervised here (any
        more). An attempt that cannot start says why in ``wrapper.log`` and lets go of its
        lock, with no ``start.json``."""
        os.set_inheritable(lock_fd, False)  # commands start before this one does
        lined = _LinedUp(run_dir, lock_fd)
        if after in self._attempts:
            self._waiting.setdefault(after, []).append(lined)
        else:
            self._start_lined_up(lined)

    def drop(self, run_dir: Path) -> bool:
        """Let go of the attempt lined up in ``run_dir`` that has not started (its lock is
        released, nothing is written); whether there was one."""
        for after, lined in list(self._waiting.items()):
            for one in lined:
                if one.run_dir == run_dir:
                    lined.remove(one)
                    if not lined:
                        del self._waiting[after]
                    one.close()
                    return True
        return False

    def drop_waiting(self) -> None:
        """Let go of every attempt lined up that has not started."""
        waiting, self._waiting = self._waiting, {}
        for lined in waiting.values():
            for one in lined:
                one.close()

    def _start_lined_up(self, lined: _LinedUp) -> rd.StartRecord | None:
        try:
            return self.start(lined.run_dir, lined.lock_fd)
        except NotStarted as exc:  # start() has let go of the lock
            _append(lined.run_dir / rd.WRAPPER_LOG, f"labmind supervisor: {exc}\n")
            return None

    # --- the loop --------------------------------------------------------------------------

    def run(self, requests: int | None = None, take: Callable[[], bool] = lambda: False) -> None:
        """Supervise until every attempt is over and nothing more can come: with
        ``requests`` (an fd), ``take()`` is called, holding :attr:`lock`, whenever it is
        readable, and says whether to go on listening (when it stops, what is lined up is
        let go of)."""
        reaper = threading.Thread(target=self._wait_for_children, name="reaper", daemon=True)
        reaper.start()
        listening = requests is not None
        while True:
            with self.lock:
                self._drain_wake()
                due = self._step()
                if not listening and not self.busy:
                    return
                self._asleep_until = math.inf if due is None else time.monotonic() + due
            watched = [self._wake_r]
            if listening and requests is not None:
                watched.append(requests)
            try:
                ready, _, _ = select.select(watched, [], [], due)
            except InterruptedError:
                continue
            if requests in ready:
                with self.lock:
                    listening = take()
                    if not listening:
                        self.drop_waiting()

    def _wait_for_children(self) -> None:
        """The reaper thread: wait until a child has ended (leaving it to :meth:`_step` to
        collect), then move the attempts on; wake the main thread when its wait should end
        sooner."""
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # the main thread's to handle
        while True:
            self._spawned.clear()
            try:
                os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                self._spawned.wait()
                continue
            with self.lock:
                due = self._step()
                sooner = due is not None and time.monotonic() + due < self._asleep_until
                if sooner or not self.busy:
                    with contextlib.suppress(BlockingIOError):
                        os.write(self._wake_w, b"\0")

    def _step(self) -> float | None:
        """Reap, pass signals on, enforce timeouts and grace periods, finish what is over
        (and advance what started meanwhile). Seconds until something is due (``None``:
        only a wake-up can bring anything). Hold :attr:`lock`."""
        self._reap()
        pending, self._pending = self._pending, []
        if pending:
            self.drop_waiting()  # stopped: nothing new starts
        now = time.monotonic()
        due = math.inf
        advanced: set[Path] = set()
        while fresh := [a for a in self._attempts.values() if a.run_dir not in advanced]:
            for attempt in fresh:
                advanced.add(attempt.run_dir)
                if pending and attempt.pgid is not None and attempt.status is None:
                    attempt.cancelled = True
                    for sig in pending:
                        killpg(attempt.pgid, sig)
                    self._terminated(attempt, now)
                due = min(due, self._advance(attempt, now))
        return None if math.isinf(due) else max(0.0, due - now)

    def _advance(self, attempt: _Attempt, now: float) -> float:
        """Move one attempt on; when the next thing about it is due."""
        pgid = attempt.pgid
        if pgid is None:
            self._finish(attempt)
            return math.inf
        if attempt.status is None:  # the command runs
            if now >= attempt.timeout_at and not attempt.timed_out:
                attempt.timed_out = True
                killpg(pgid, signal.SIGTERM)
                self._terminated(attempt, now)
            if now >= attempt.kill_deadline:
                self._kill(attempt, now)
            if attempt.timed_out or attempt.term_sent:
                return attempt.kill_deadline
            return min(attempt.timeout_at, attempt.kill_deadline)
        # The command is over: stop what is left of its group, then record the end.
        if not rd.process_group_alive(pgid):
            self._finish(attempt)
            return math.inf
        if not attempt.term_sent:
            killpg(pgid, signal.SIGTERM)
            self._terminated(attempt, now)
        elif now >= attempt.kill_deadline:
            self._kill(attempt, now)
        elif now >= attempt.kill_sent_at + _AFTER_KILL_S:
            self._say(attempt, f"process group {pgid} is still there after SIGKILL; giving up")
            self._finish(attempt)
            return math.inf
        return min(
            attempt.kill_deadline, attempt.kill_sent_at + _AFTER_KILL_S, now + _CLEANUP_POLL_S
        )

    def _terminated(self, attempt: _Attempt, now: float) -> None:
        attempt.term_sent = True
        attempt.kill_deadline = min(attempt.kill_deadline, now + attempt.grace_s)

    def _kill(self, attempt: _Attempt, now: float) -> None:
        if attempt.pgid is not None:
            killpg(attempt.pgid, signal.SIGKILL)
        attempt.kill_deadline = math.inf
        attempt.kill_sent_at = now

    def _finish(self, attempt: _Attempt) -> None:
        del self._attempts[attempt.run_dir]
        exit_code: int | None = attempt.code
        signum: int | None = None
        if attempt.status is not None:
            if os.WIFSIGNALED(attempt.status):
                exit_code, signum = None, os.WTERMSIG(attempt.status)
            else:
                exit_code = os.waitstatus_to_exitcode(attempt.status)
        cancelled = attempt.cancelled or rd.exists_at(attempt.folder, rd.CANCEL_FILE)
        record = rd.ExitRecord(
            exit_code=exit_code,
            signal=signum,
            ended_at=time.time(),
            duration_s=round(time.monotonic() - attempt.t0, 6),
            timed_out=attempt.timed_out,
            cancelled=cancelled and not attempt.timed_out,
            error=attempt.error,
        )
        # The group is gone: what was lined up behind it takes its place before the end
        # is written.
        started = []
        for lined in self._waiting.pop(attempt.run_dir, []):
            start = self._start_lined_up(lined)
            if start is not None:
                started.append((lined.run_dir, start))
        written: rd.ExitRecord | None = record
        try:
            rd.write_json_at(attempt.folder, rd.EXIT_FILE, record.to_json())
        except OSError as exc:
            self._say(attempt, f"cannot write {rd.EXIT_FILE} in {attempt.run_dir}: {exc}")
            written = None
        self._drop(attempt)
        self.on_end(Ending(attempt.run_dir, written, tuple(started)))

    def _drop(self, attempt: _Attempt) -> None:
        """Let go of the attempt's lock (and its folder)."""
        os.close(attempt.lock_fd)
        if attempt.folder >= 0:
            os.close(attempt.folder)

    def _reap(self) -> None:
        """Collect every exited child (the commands and reparented orphans)."""
        children = {a.child: a for a in self._attempts.values() if a.child is not None}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            attempt = children.get(pid)
            if attempt is not None:
                attempt.status = status

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    def _say(self, attempt: _Attempt, message: str) -> None:
        if self.folder_log:
            _append(attempt.run_dir / rd.WRAPPER_LOG, f"labmind supervisor: {message}\n")
        else:
            say(message)


def _spawn(argv: Sequence[str], cwd: str, env: dict[str, str], out_fd: int) -> int:
    """Start ``argv`` in ``cwd`` as the leader of a new process group, stdin from
    ``/dev/null``, stdout and stderr to ``out_fd``; its pid. ``posix_spawn`` (a vfork and an
    exec, with none of ``subprocess``'s bookkeeping): this process opens every fd
    close-on-exec, so the command inherits none of them, and the command starts with no
    signal blocked, whichever thread starts it. Searches the ``PATH`` of ``env`` for a bare
    name, as ``subprocess`` does, and raises ``OSError`` as it does. The caller holds the
    supervision's lock (the working directory is the process's, changed for the spawn)."""
    program = argv[0]
    if os.sep not in program:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        program = found
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_fd, 1),
        (os.POSIX_SPAWN_DUP2, out_fd, 2),
    ]
    here = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(cwd)  # posix_spawn has no cwd of its own here; nothing else uses ours
        try:
            return os.posix_spawn(
                program,
                list(argv),
                env,
                file_actions=actions,
                setpgroup=0,
                setsigmask=(),
                setsigdef=_DEFAULT_IN_COMMANDS,
            )
        finally:
            os.fchdir(here)
    finally:
        os.close(here)


_DEFAULT_IN_COMMANDS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)
)
"""Signals Python ignores that the commands get back at their default (as with subprocess)."""


def killpg(pgid: int, sig: int) -> None:
    """Signal a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library on Linux (loaded once)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _append(path: Path, text: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        say(f"cannot write {path}: {exc.strerror}")


def say(message: str) -> None:
    print(f"labmind supervisor: {message}", file=sys.stderr, flush=True)
