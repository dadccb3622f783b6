"""Shadow repositories for folders that are not repositories."""

from __future__ import annotations

import stat
from pathlib import Path

import pygit2
import pytest

from labmind.daemon.backup import (
    Guards,
    SnapshotError,
    open_shadow,
    restore,
    shadow_dir,
    take_snapshot,
)

from .gitrepo import GitRepo, worktree_fingerprint

REF = "refs/labmind/snapshots/main"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "notebooks"
    (root / "exp").mkdir(parents=True)
    (root / "exp" / "run.py").write_text("print('run')\n")
    (root / "go.sh").write_text("#!/bin/sh\n")
    (root / "go.sh").chmod(0o755)
    (root / "current").symlink_to("exp/run.py")
    (root / ".env").write_text("TOKEN=abc\n")
    for ignored in ["node_modules/pkg/index.js", ".venv/bin/python", "exp/__pycache__/r.pyc"]:
        (root / ignored).parent.mkdir(parents=True, exist_ok=True)
        (root / ignored).write_text("ignored\n")
    return root


def test_a_plain_folder_gets_a_shadow_outside_it_and_snapshots_and_restores(
    folder: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    before = worktree_fingerprint(folder)

    shadow = open_shadow(data, folder)
    result = take_snapshot(shadow, guards=Guards())

    assert Path(shadow.path) == shadow_dir(data, folder)
    assert Path(shadow.path).is_relative_to(data / "shadows")
    assert not (folder / ".git").exists()
    assert worktree_fingerprint(folder) == before
    assert result.created and result.branch == "main" and result.ref == REF
    assert [held.path for held in result.held_back] == [".env"]
    inspector = GitRepo(tmp_path, {**env, "GIT_DIR": shadow.path})
    assert inspector.tree_files(REF) == {
        "current": "120000",
        "exp/run.py": "100644",
        "go.sh": "100755",
    }
    assert inspector.git("fsck", "--strict", "--no-progress").strip() == ""

    target = tmp_path / "restored"
    assert restore(shadow, REF, target) == 3
    assert (target / "go.sh").stat().st_mode & stat.S_IXUSR
    assert (target / "current").readlink() == Path("exp/run.py")
    assert not (target / ".env").exists()


def test_shadow_snapshots_chain_and_skip_when_nothing_changed(folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = take_snapshot(open_shadow(data, folder), guards=Guards())
    again = take_snapshot(open_shadow(data, folder), guards=Guards())
    assert again.unchanged and again.commit == first.commit

    (folder / "exp" / "run.py").write_text("print('run v2')\n")
    (folder / "go.sh").unlink()
    reopened = pygit2.Repository(str(shadow_dir(data, folder)))
    second = take_snapshot(Path(reopened.path), guards=Guards())

    assert second.created and second.files_changed == 2
    assert second.commit is not None and first.commit is not None
    commit = reopened[second.commit].peel(pygit2.Commit)
    assert commit.parent_ids == [first.commit]
    assert sorted(str(e.name) for e in commit.tree) == ["current", "exp"]
    assert not (folder / ".git").exists()


def test_shadows_of_two_folders_are_separate_and_a_repository_needs_none(
    folder: Path, tmp_path: Path, repo: GitRepo
) -> None:
    data = tmp_path / "data"
    other = tmp_path / "other"
    other.mkdir()
    assert shadow_dir(data, folder) != shadow_dir(data, other)
    assert shadow_dir(data, folder) == shadow_dir(data, folder / "exp" / "..")
    with pytest.raises(SnapshotError, match="is a git repository"):
        open_shadow(data, repo.root)
    with pytest.raises(SnapshotError, match="is not a folder"):
        open_shadow(data, tmp_path / "missing")
