"""One daemon per `LABMIND_HOME`: the socket answers, or an `flock` decides."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from .paths import Paths

CONNECT_TIMEOUT_S = 1.0


class AlreadyRunning(RuntimeError):
    """Another daemon serves (or is starting for) this `LABMIND_HOME`."""

    def __init__(self, pid: int | None, runtime_dir: Path | None = None) -> None:
        where = f" in {runtime_dir}" if runtime_dir is not None else ""
        who = f" (pid {pid})" if pid is not None else ""
        super().__init__(f"a labmind daemon is already running{who}{where}; use `labmind stop`")
        self.pid = pid


class InstanceLock:
    """Held for the life of the daemon; `release()` removes the socket and pid file."""

    def __init__(self, paths: Paths, fd: int) -> None:
        self.paths = paths
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.paths.socket_path.unlink(missing_ok=True)
            if read_pid_file(self.paths.pid_file) == os.getpid():
                self.paths.pid_file.unlink(missing_ok=True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def acquire(paths: Paths) -> InstanceLock:
    """Become the one daemon for `paths`, or raise `AlreadyRunning`.

    Something answering on the socket wins. Otherwise an exclusive `flock` on the lock
    file decides between daemons starting at the same moment; the winner removes a
    stale socket left by a daemon that died, and writes its pid.
    """
    paths.ensure_dirs()
    if is_answering(paths.socket_path):
        raise AlreadyRunning(read_pid(paths), paths.runtime_dir)
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(read_pid(paths), paths.runtime_dir) from None
    except BaseException:
        os.close(fd)
        raise
    lock = InstanceLock(paths, fd)
    try:
        paths.socket_path.unlink(missing_ok=True)
        _write_pid(paths.pid_file, os.getpid())
    except BaseException:
        lock.release()
        raise
    return lock


def is_answering(socket_path: Path, *, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a process accepts connections on `socket_path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(os.fspath(socket_path))
        except OSError:
            return False
    return True


def read_pid(paths: Paths) -> int | None:
    """The daemon's pid from the pid file, if that process still exists."""
    pid = read_pid_file(paths.pid_file)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    with contextlib.suppress(ValueError):
        pid = int(text)
        if pid > 0:
            return pid
    return None


def _write_pid(path: Path, pid: int) -> None:
    tmp = path.with_name(f".{path.name}.{pid}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{pid}\n".encode("ascii"))
    finally:
        os.close(fd)
    tmp.replace(path)
