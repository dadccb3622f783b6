from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from labmind.daemon import paths as paths_module
from labmind.daemon.paths import MAX_SOCKET_PATH_BYTES, InsecureRuntimeDir, Paths

NOBODY = 65534


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="lm-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def tmp_base(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand in for /tmp/labmind-<uid> so tests never touch the real one."""
    base = short_tmp / "base"
    monkeypatch.setattr(paths_module, "_tmp_base", lambda: base)
    return base


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_labmind_home_puts_everything_under_it(short_tmp: Path) -> None:
    paths = Paths.resolve({"LABMIND_HOME": str(short_tmp)})
    assert paths.config_dir == short_tmp / "config"
    assert paths.data_dir == short_tmp / "data"
    assert paths.runtime_dir == short_tmp / "run"
    assert paths.config_file == short_tmp / "config" / "config.toml"
    assert paths.store_file == short_tmp / "data" / "labmind.sqlite3"
    assert paths.index_dir == short_tmp / "data" / "index"
    assert paths.lexical_dir == short_tmp / "data" / "index" / "lexical"
    assert paths.vectors_file == short_tmp / "data" / "index" / "vectors.usearch"
    assert paths.log_file == short_tmp / "data" / "daemon.log"
    assert paths.socket_path == short_tmp / "run" / "daemon.sock"
    assert paths.lock_file == short_tmp / "run" / "daemon.lock"
    assert paths.pid_file == short_tmp / "run" / "daemon.pid"


def test_relative_labmind_home_is_made_absolute(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(short_tmp)
    paths = Paths.resolve({"LABMIND_HOME": "profile"})
    assert paths.config_dir == short_tmp / "profile" / "config"


def test_platform_dirs_and_xdg_runtime_dir(short_tmp: Path) -> None:
    paths = Paths.resolve({"XDG_RUNTIME_DIR": str(short_tmp)})
    assert paths.config_dir == platformdirs.user_config_path("labmind", appauthor=False)
    assert paths.data_dir == platformdirs.user_data_path("labmind", appauthor=False)
    assert paths.runtime_dir == short_tmp / "labmind"


@pytest.mark.parametrize("xdg", [None, "", "relative/dir", "/nonexistent/labmind-test"])
def test_unusable_xdg_runtime_dir_falls_back_to_tmp(xdg: str | None) -> None:
    env = {} if xdg is None else {"XDG_RUNTIME_DIR": xdg}
    assert Paths.resolve(env).runtime_dir == Path(f"/tmp/labmind-{os.getuid()}")


def test_xdg_runtime_dir_of_another_user_is_not_used(short_tmp: Path) -> None:
    os.chown(short_tmp, NOBODY, NOBODY)
    paths = Paths.resolve({"XDG_RUNTIME_DIR": str(short_tmp)})
    assert paths.runtime_dir == Path(f"/tmp/labmind-{os.getuid()}")


def test_long_socket_path_moves_runtime_dir_under_tmp(short_tmp: Path) -> None:
    home = short_tmp / ("x" * 90)
    paths = Paths.resolve({"LABMIND_HOME": str(home)})
    digest = hashlib.sha256(os.fsencode(home / "run")).hexdigest()[:16]
    assert paths.runtime_dir == Path(f"/tmp/labmind-{os.getuid()}") / digest
    assert len(os.fsencode(paths.socket_path)) <= MAX_SOCKET_PATH_BYTES
    assert Paths.resolve({"LABMIND_HOME": str(home)}) == paths
    assert paths.config_dir == home / "config"


def test_short_socket_path_is_kept(short_tmp: Path) -> None:
    paths = Paths.resolve({"LABMIND_HOME": str(short_tmp)})
    assert paths.runtime_dir == short_tmp / "run"


def test_ensure_dirs_creates_private_runtime_dir(short_tmp: Path) -> None:
    paths = Paths.resolve({"LABMIND_HOME": str(short_tmp / "home")})
    paths.ensure_dirs()
    assert paths.config_dir.is_dir()
    assert paths.data_dir.is_dir()
    assert mode(paths.runtime_dir) == 0o700
    paths.ensure_dirs()


def test_ensure_dirs_makes_tmp_parent_private(tmp_base: Path) -> None:
    paths = Paths(tmp_base.parent / "c", tmp_base.parent / "d", tmp_base / "0123456789abcdef")
    paths.ensure_dirs()
    assert mode(tmp_base) == 0o700
    assert mode(paths.runtime_dir) == 0o700


def test_group_readable_runtime_dir_is_tightened(short_tmp: Path) -> None:
    paths = Paths.resolve({"LABMIND_HOME": str(short_tmp)})
    paths.runtime_dir.mkdir()
    paths.runtime_dir.chmod(0o755)
    paths.ensure_dirs()
    assert mode(paths.runtime_dir) == 0o700


def test_runtime_dir_of_another_user_is_refused(short_tmp: Path) -> None:
    paths = Paths.resolve({"LABMIND_HOME": str(short_tmp)})
    paths.runtime_dir.mkdir(mode=0o700)
    os.chown(paths.runtime_dir, NOBODY, NOBODY)
    with pytest.raises(InsecureRuntimeDir, match=r"belongs to uid 65534"):
        paths.ensure_dirs()


def test_tmp_parent_of_another_user_is_refused(tmp_base: Path) -> None:
    tmp_base.mkdir(mode=0o700)
    os.chown(tmp_base, NOBODY, NOBODY)
    paths = Paths(tmp_base.parent / "c", tmp_base.parent / "d", tmp_base)
    with pytest.raises(InsecureRuntimeDir, match=str(tmp_base)):
        paths.ensure_dirs()


def test_symlinked_runtime_dir_is_refused(short_tmp: Path) -> None:
    target = short_tmp / "elsewhere"
    target.mkdir(mode=0o700)
    paths = Paths.resolve({"LABMIND_HOME": str(short_tmp)})
    paths.runtime_dir.symlink_to(target)
    with pytest.raises(InsecureRuntimeDir, match="not a plain directory"):
        paths.ensure_dirs()


def test_runtime_dir_that_cannot_be_tightened_is_refused(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths.resolve({"LABMIND_HOME": str(short_tmp)})
    paths.runtime_dir.mkdir()
    paths.runtime_dir.chmod(0o777)

    def refuse(self: Path, mode: int, *, follow_symlinks: bool = True) -> None:
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "chmod", refuse)
    with pytest.raises(InsecureRuntimeDir, match=r"mode 0777 .*chmod 700"):
        paths.ensure_dirs()
