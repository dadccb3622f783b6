"""Starting the daemon in the background and stopping it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .client import DaemonClient, DaemonError, DaemonUnavailable
from .instance import is_answering, read_pid
from .paths import HOME_ENV, Paths

POLL_S = 0.05
LOG_TAIL_LINES = 20
SIGTERM_GRACE_S = 5.0

# Daemons started by this process, so their exit can be reaped instead of left as zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


class DaemonStartError(DaemonUnavailable):
    """The daemon process exited, or did not answer, while starting.

    The message is one line; `log_tail` holds the last lines it logged.
    """

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail or []


def daemon_command() -> list[str]:
    return [sys.executable, "-m", "labmind.daemon", "daemon"]


def start_background(paths: Paths, *, timeout_s: float = 60) -> int:
    """Start `labmind daemon` detached from this terminal; its pid once it answers."""
    env = _child_env(paths)
    paths.ensure_dirs()
    log_start = _size(paths.log_file)
    with (
        Path(os.devnull).open("rb") as stdin,
        paths.log_file.open("ab") as log,
    ):
        proc = subprocess.Popen(
            daemon_command(),
            stdin=stdin,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    deadline = time.monotonic() + timeout_s
    while True:
        if is_answering(paths.socket_path):
            return read_pid(paths) or proc.pid
        code = proc.poll()
        if code is not None:
            _children.pop(proc.pid, None)
            if is_answering(paths.socket_path):
                # Another daemon for this home won the race to start; it is the one.
                return read_pid(paths) or proc.pid
            tail = _log_tail(paths.log_file, log_start)
            raise DaemonStartError(_exit_message(paths, code, tail), tail)
        if time.monotonic() >= deadline:
            raise DaemonStartError(
                f"the labmind daemon (pid {proc.pid}) did not answer within {timeout_s:g} s; "
                f"see {paths.log_file}",
                _log_tail(paths.log_file, log_start),
            )
        time.sleep(POLL_S)


def stop(paths: Paths, *, timeout_s: float = 30) -> bool:
    """Ask the daemon to shut down, then make sure it is gone; whether one was running."""
    pid = read_pid(paths)
    asked = False
    if is_answering(paths.socket_path):
        asked = True
        with (
            contextlib.suppress(DaemonUnavailable, DaemonError),
            DaemonClient(paths, timeout=min(timeout_s, 10.0)) as client,
        ):
            client.shutdown()
    if pid is not None and not asked and not _lock_held(paths):
        # The pid file outlived its daemon and the pid now belongs to someone else.
        pid = None
    if pid is None:
        if asked:
            _wait(lambda: not is_answering(paths.socket_path), timeout_s)
        return asked
    _terminate(pid, asked=asked, timeout_s=timeout_s)
    return True


def _terminate(pid: int, *, asked: bool, timeout_s: float) -> None:
    """Wait for `pid` to exit after a shutdown request; SIGTERM, then SIGKILL, if it does not."""
    if asked and _wait(lambda: _exited(pid), timeout_s):
        return
    term_grace = SIGTERM_GRACE_S if asked else timeout_s
    for sig, grace in ((signal.SIGTERM, term_grace), (signal.SIGKILL, SIGTERM_GRACE_S)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait(lambda: _exited(pid), grace):
            return


def _child_env(paths: Paths) -> dict[str, str]:
    """This process's environment, with `LABMIND_HOME` set if `paths` need it."""
    env = dict(os.environ)
    if Paths.resolve(env) == paths:
        return env
    env[HOME_ENV] = str(paths.config_dir.parent)
    if Paths.resolve(env) == paths:
        return env
    raise ValueError(
        f"cannot start a daemon for {paths}: they are neither this environment's paths "
        f"nor those of a {HOME_ENV}"
    )


def _exited(pid: int) -> bool:
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return False
        _children.pop(pid, None)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _lock_held(paths: Paths) -> bool:
    """Whether a daemon (starting or running) holds this home's instance lock."""
    try:
        fd = os.open(paths.lock_file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _wait(done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _exit_message(paths: Paths, code: int, tail: list[str]) -> str:
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    last = tail[-1] if tail else "nothing was logged"
    return f"the labmind daemon {how} while starting: {last} (see {paths.log_file})"


def _log_tail(path: Path, start: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return lines[-LOG_TAIL_LINES:]
