"""Backups through the real CLI and daemon: snapshot, push to a real git daemon, log, restore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon.backup.gitrepo import git_env, init_repo
from tests.daemon.backup.gitserver import GitDaemon, bare_repo

from .conftest import Lab

pytestmark = pytest.mark.slow


def test_backup_now_status_log_and_restore_from_the_cli(lab: Lab, tmp_path: Path) -> None:
    lab.configure('[embedder]\nenabled = false\n[backup]\nhost = "lab"\nquiet_s = 0\n')
    env = git_env(tmp_path / "home")
    served = tmp_path / "served"
    served.mkdir()
    bare = bare_repo(served, "project.git", env)
    repo = init_repo(tmp_path / "project", env)
    repo.write("train.py", "print('v1')\n")
    repo.commit_all("first")
    with GitDaemon(served, env) as server:
        repo.git("remote", "add", "origin", server.url("project.git"))
        repo.write("train.py", "print('v2, not committed')\n")
        repo.write(".env", "TOKEN=hunter2\n")
        before = repo.user_state()
        lab.cli("watch", "add", str(repo.root))

        [outcome] = lab.json("backup", "now", str(repo.root))

        assert outcome["created"] and outcome["error"] is None
        assert [p["status"] for p in outcome["pushes"]] == ["pushed"]
        assert [h["path"] for h in outcome["held_back"]] == [".env"]
        pushed = repo.git("--git-dir", str(bare), "rev-parse", "refs/heads/labmind/lab/main")
        assert pushed.strip() == outcome["snapshot"]

    status = lab.json("backup", "status")
    [entry] = status["repos"]
    assert (entry["path"], entry["branch"], entry["unpushed"]) == (str(repo.root), "main", 0)
    assert [h["path"] for h in entry["held_back"]] == [".env"]
    log = lab.json("backup", "log", str(repo.root))
    assert [(e["commit"], e["pushed"]) for e in log] == [(outcome["snapshot"], True)]

    target = tmp_path / "restored"
    restored = lab.json(
        "backup", "restore", str(repo.root), "--at", outcome["snapshot"][:8], "--to", str(target)
    )
    assert restored["commit"] == outcome["snapshot"]
    assert (target / "train.py").read_text() == "print('v2, not committed')\n"
    assert not (target / ".env").exists()

    again = lab.cli(
        "backup", "restore", str(repo.root), "--at", "0s", "--to", str(target), check=False
    )
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1 and "not empty" in again.stderr

    lab.cli("backup", "pause")
    assert lab.json("backup", "status")["paused"] is True
    lab.cli("backup", "resume")
    assert json.loads(lab.cli("backup", "status", "--json").stdout)["paused"] is False
    assert repo.user_state() == before
