"""Fixtures: real git repositories, real git servers on 127.0.0.1, an in-memory keyring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
