from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.daemon.instance import AlreadyRunning, acquire, is_answering, read_pid
from labmind.daemon.paths import Paths
from labmind.daemon.transport import bind_unix_socket

HOLD_LOCK = """
import sys
from labmind.daemon.instance import acquire
from labmind.daemon.paths import Paths
lock = acquire(Paths.resolve())
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="lm-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def paths(home: Path) -> Paths:
    return Paths.resolve({"LABMIND_HOME": str(home)})


def test_acquire_writes_pid_and_release_cleans_up(paths: Paths) -> None:
    lock = acquire(paths)
    assert lock.held
    assert read_pid(paths) == os.getpid()
    bind_unix_socket(paths.socket_path).close()
    lock.release()
    assert not lock.held
    assert not paths.socket_path.exists()
    assert not paths.pid_file.exists()
    assert read_pid(paths) is None
    lock.release()
    acquire(paths).release()


def test_second_acquire_raises_already_running(paths: Paths) -> None:
    with acquire(paths):
        with pytest.raises(AlreadyRunning) as info:
            acquire(paths)
        assert info.value.pid == os.getpid()
        assert f"pid {os.getpid()}" in str(info.value)
        assert read_pid(paths) == os.getpid()
    with acquire(paths) as again:
        assert again.held


def test_something_answering_on_the_socket_wins(paths: Paths) -> None:
    paths.ensure_dirs()
    paths.pid_file.write_text("1\n")
    with bind_unix_socket(paths.socket_path):
        assert is_answering(paths.socket_path)
        with pytest.raises(AlreadyRunning) as info:
            acquire(paths)
        assert info.value.pid == 1
    assert paths.socket_path.exists()


def test_stale_socket_is_replaced(paths: Paths) -> None:
    paths.ensure_dirs()
    bind_unix_socket(paths.socket_path).close()
    assert paths.socket_path.exists()
    assert not is_answering(paths.socket_path)
    with acquire(paths):
        assert not paths.socket_path.exists()
        with bind_unix_socket(paths.socket_path):
            assert is_answering(paths.socket_path)


def test_is_answering_without_a_socket(paths: Paths) -> None:
    assert not is_answering(paths.socket_path)


def test_read_pid_ignores_garbage_and_dead_processes(paths: Paths) -> None:
    paths.ensure_dirs()
    assert read_pid(paths) is None
    paths.pid_file.write_text("not a pid\n")
    assert read_pid(paths) is None
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    paths.pid_file.write_text(dead.stdout)
    assert read_pid(paths) is None


def test_lock_is_released_when_the_holder_is_killed(home: Path, paths: Paths) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK],
        env={**os.environ, "LABMIND_HOME": str(home)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning) as info:
            acquire(paths)
        assert info.value.pid == holder.pid
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=20) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert read_pid(paths) is None
    with acquire(paths):
        assert read_pid(paths) == os.getpid()


def test_lock_file_is_not_inherited_by_children(paths: Paths) -> None:
    with acquire(paths):
        child = subprocess.run(
            ["/bin/sh", "-c", "ls -l /proc/self/fd"],
            check=True,
            capture_output=True,
            text=True,
            close_fds=False,
        )
    assert str(paths.lock_file) not in child.stdout


def test_already_running_without_pid(paths: Paths) -> None:
    error = AlreadyRunning(None)
    assert "already running" in str(error)
    assert error.pid is None


def test_unreachable_socket_path_is_not_answering(tmp_path: Path) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("")
    assert not is_answering(path)
