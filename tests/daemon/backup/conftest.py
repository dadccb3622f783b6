"""Fixtures: real git repositories, real git servers on 127.0.0.1, an in-memory keyring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.compat import properties

from labmind.daemon.backup import Guards

from .gitrepo import GitRepo, git_env, init_repo
from .gitserver import GitDaemon, HttpGitServer


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return git_env(tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> GitRepo:
    """A repository on ``main`` with two committed files and a ``.gitignore``."""
    repo = init_repo(tmp_path / "work", env)
    repo.write("train.py", "print('train')\n")
    repo.write("data/readme.md", "# data\n")
    repo.write(".gitignore", "*.log\ncheckpoints/\n")
    repo.commit_all("first")
    return repo


@pytest.fixture
def guards() -> Guards:
    return Guards()


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict; never picked by keyring's own discovery."""

    @properties.classproperty
    def priority(self) -> float:
        raise RuntimeError("test backend: only used when set explicitly")

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")


def no_keyring() -> KeyringBackend:
    """keyring's own stand-in for "no backend on this machine" (raises NoKeyringError)."""
    return fail.Keyring()  # type: ignore[no-untyped-call]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The process-wide keyring replaced by an in-memory one; the previous one comes back."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """The folder the test servers serve bare repositories from."""
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def http_server(served: Path, env: dict[str, str]) -> Iterator[HttpGitServer]:
    """``git http-backend`` behind Basic auth on 127.0.0.1."""
    with HttpGitServer(served, env) as server:
        yield server


@pytest.fixture
def git_daemon(served: Path, env: dict[str, str]) -> Iterator[GitDaemon]:
    """``git daemon`` with pushes enabled and no authentication on 127.0.0.1."""
    with GitDaemon(served, env) as daemon:
        yield daemon


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test servers are on 127.0.0.1: a proxy from the environment must not get in the way."""
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
