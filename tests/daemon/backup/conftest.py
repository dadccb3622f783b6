"""Fixtures: real git repositories in temporary folders, no network, no user config."""

from __future__ import annotations

from pathlib import Path

import pytest

from labmind.daemon.backup import Guards

from .gitrepo import GitRepo, git_env, init_repo


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
