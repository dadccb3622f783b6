"""Where labmind keeps its configuration, data and runtime files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "labmind"
HOME_ENV = "LABMIND_HOME"

# AF_UNIX paths are limited to 107 bytes plus a NUL on Linux (103 on macOS);
# leave some room and move the runtime folder somewhere short past this.
MAX_SOCKET_PATH_BYTES = 100

_SOCKET_NAME = "daemon.sock"


class InsecureRuntimeDir(RuntimeError):
    """The runtime folder could be read or entered by someone else."""


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    runtime_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def store_file(self) -> Path:
        return self.data_dir / "labmind.sqlite3"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def lexical_dir(self) -> Path:
        return self.index_dir / "lexical"

    @property
    def vectors_file(self) -> Path:
        return self.index_dir / "vectors.usearch"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "daemon.log"

    @property
    def socket_path(self) -> Path:
        return self.runtime_dir / _SOCKET_NAME

    @property
    def lock_file(self) -> Path:
        return self.runtime_dir / "daemon.lock"

    @property
    def pid_file(self) -> Path:
        return self.runtime_dir / "daemon.pid"

    @classmethod
    def resolve(cls, env: Mapping[str, str] = os.environ) -> Paths:
        """Paths for `LABMIND_HOME` when it is set, else the platform's user folders."""
        home = env.get(HOME_ENV, "")
        if home:
            base = Path(home).expanduser().absolute()
            config_dir, data_dir, runtime_dir = base / "config", base / "data", base / "run"
        else:
            config_dir = platformdirs.user_config_path(APP_NAME, appauthor=False)
            data_dir = platformdirs.user_data_path(APP_NAME, appauthor=False)
            runtime_dir = _default_runtime_dir(env)
        return cls(config_dir, data_dir, _short_enough(runtime_dir))

    def ensure_dirs(self) -> None:
        """Create the folders; the runtime folder (and its /tmp parent) private to this user."""
        self.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp_base = _tmp_base()
        if self.runtime_dir.parent == tmp_base:
            _make_private_dir(tmp_base)
        else:
            self.runtime_dir.parent.mkdir(parents=True, exist_ok=True)
        _make_private_dir(self.runtime_dir)


def _tmp_base() -> Path:
    return Path("/tmp") / f"{APP_NAME}-{os.getuid()}"  # noqa: S108


def _default_runtime_dir(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and _usable_runtime_base(Path(xdg)):
        return Path(xdg) / APP_NAME
    return _tmp_base()


def _usable_runtime_base(path: Path) -> bool:
    if not path.is_absolute():
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and os.access(path, os.W_OK | os.X_OK)
    )


def _short_enough(runtime_dir: Path) -> Path:
    socket_path = runtime_dir / _SOCKET_NAME
    if len(os.fsencode(socket_path)) <= MAX_SOCKET_PATH_BYTES:
        return runtime_dir
    digest = hashlib.sha256(os.fsencode(runtime_dir)).hexdigest()[:16]
    return _tmp_base() / digest


def _make_private_dir(path: Path) -> None:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise InsecureRuntimeDir(
            f"runtime folder {path} is not a plain directory; remove it and start labmind again"
        )
    uid = os.getuid()
    if st.st_uid != uid:
        raise InsecureRuntimeDir(
            f"runtime folder {path} belongs to uid {st.st_uid}, not to you (uid {uid}); "
            "remove it or set LABMIND_HOME to a folder of your own"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        try:
            path.chmod(0o700)
        except OSError as exc:
            raise InsecureRuntimeDir(
                f"runtime folder {path} has mode {stat.S_IMODE(st.st_mode):04o} and cannot be "
                f"made private ({exc.strerror}); run `chmod 700 {path}`"
            ) from exc
