"""SIGKILL a real process in the middle of snapshots: the user's repository and the ref survive.

The child is `bench.backup_victim`, which takes snapshots in a loop and prints a line
after each. The test waits for a snapshot line, keeps editing, and kills the child at a
random point of its next snapshots; every place a kill can land is acceptable, so the
checks hold whatever the timing: ``git fsck`` is clean, everything the user owns (the
``.git`` files outside the object database and labmind's refs, the index mtime, the
status and the work tree) is byte-identical, the snapshot ref is the old commit or one
that chains onto it with every object readable, and the next snapshot works. A second
child stops itself inside the snapshot ref's lock and is killed there.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from labmind.daemon.backup import Guards, take_snapshot

from .gitrepo import GitRepo

ROOT = Path(__file__).resolve().parents[3]
KILLS_PER_STATE = 2
NOT_THE_USERS = ("objects/", "refs/labmind/", "logs/refs/labmind/")


class Victim:
    """A running ``python -m bench.backup_victim`` whose lines are read as they come."""

    def __init__(self, repo: Path, *options: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.backup_victim", str(repo), "--seconds", "60", *options],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, prefix: str) -> str:
        """Read lines until one starts with ``prefix``; fail if the child ends first."""
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            assert line, f"the child ended before printing {prefix!r}: {self.lines[-3:]}"
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        assert self.proc.stdout is not None
        self.lines += self.proc.stdout.read().splitlines()
        self.proc.stdout.close()


def owned_by_the_user(repo: GitRepo) -> dict[str, object]:
    """`GitRepo.user_state`, plus every ``.git`` file outside objects and labmind's refs."""
    git_dir = repo.root / ".git"
    files = {
        path.relative_to(git_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(git_dir.rglob("*"))
        if path.is_file() and not path.relative_to(git_dir).as_posix().startswith(NOT_THE_USERS)
    }
    return {**repo.user_state(), "git dir": files}


def blobs(repo: pygit2.Repository, tree: pygit2.Tree) -> Iterator[pygit2.Oid]:
    for entry in tree:
        if entry.filemode == FileMode.TREE:
            yield from blobs(repo, repo[entry.id].peel(pygit2.Tree))
        elif entry.filemode != FileMode.COMMIT:
            yield entry.id


def snapshot_ref_value(repo: GitRepo, ref: str) -> pygit2.Oid | None:
    reference = pygit2.Repository(str(repo.root)).references.get(ref)
    return None if reference is None else pygit2.Oid(hex=str(reference.target))


def assert_ref_intact(repo: GitRepo, ref: str, previous: pygit2.Oid | None) -> pygit2.Oid | None:
    """The ref is ``previous`` or chains onto it, and all of its tree reads."""
    git = pygit2.Repository(str(repo.root))
    reference = git.references.get(ref)
    if reference is None:
        assert previous is None
        return None
    commit = git[reference.target].peel(pygit2.Commit)
    assert previous is None or commit.id == previous or git.descendant_of(commit.id, previous)
    for blob in blobs(git, commit.tree):
        git.odb.read(blob)
    return commit.id


def assert_fsck_clean(repo: GitRepo) -> None:
    assert repo.git("fsck", "--full", "--no-dangling", "--no-progress").strip() == ""


def make_conflicted(repo: GitRepo, state: str) -> str:
    """Leave ``repo`` in ``state`` (plain, merge or rebase); the snapshot ref for it."""
    if state == "plain":
        return "refs/labmind/snapshots/main"
    repo.git("checkout", "-q", "-b", "other")
    repo.write("train.py", "print('other')\n")
    repo.commit_all("other")
    repo.git("checkout", "-q", "main")
    repo.write("train.py", "print('main')\n")
    repo.commit_all("main")
    if state == "merge":
        with pytest.raises(AssertionError, match="merge"):
            repo.git("merge", "-q", "other")
        assert (repo.root / ".git" / "MERGE_HEAD").exists()
        return "refs/labmind/snapshots/main"
    repo.git("checkout", "-q", "other")
    with pytest.raises(AssertionError, match="rebase"):
        repo.git("rebase", "-q", "main")
    assert (repo.root / ".git" / "rebase-merge").is_dir()
    return "refs/labmind/snapshots/detached"


def put(repo: GitRepo, path: str, text: str) -> None:
    """Write ``path`` atomically (a complete file renamed into place)."""
    staging = repo.root.parent / "staging"
    staging.mkdir(exist_ok=True)
    (staging / "next").write_text(text)
    (repo.root / path).parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging / "next", repo.root / path)


def edit(repo: GitRepo, rng: random.Random, round_: int) -> None:
    """What a researcher does between two snapshots: edit, add, delete.

    Files are replaced atomically by files of the same size: a file whose size changes
    while a snapshot reads it fails that whole snapshot (a known problem, measured by
    ``bench.backup_faults``), and this test is about kills, not about that.
    """
    for number in range(3):
        put(repo, f"notes/{rng.randrange(5)}.md", f"round {round_:04d} note {number}\n")
    put(repo, "data/readme.md", f"# data, round {round_:04d}\n")
    (repo.root / "notes" / f"{rng.randrange(5)}.md").unlink(missing_ok=True)


USER_FILES = ("index", "index_mtime", "index_lock", "HEAD", "heads", "packed", "config", "git dir")


@pytest.mark.parametrize("state", ["plain", "merge", "rebase"])
def test_a_kill_during_snapshots_breaks_nothing_and_the_next_snapshot_works(
    repo: GitRepo, guards: Guards, state: str
) -> None:
    ref = make_conflicted(repo, state)
    rng = random.Random(f"faults-{state}")
    put(repo, "data/readme.md", "# data, round -001\n")
    previous = snapshot_ref_value(repo, ref)
    for round_ in range(KILLS_PER_STATE):
        edit(repo, rng, round_)
        victim = Victim(repo.root)
        victim.wait_for("snapshot")
        edit(repo, rng, round_ + 100)
        before = owned_by_the_user(repo)
        for _ in range(rng.randrange(3)):
            victim.wait_for("snapshot")
        time.sleep(rng.uniform(0.0, 0.02))  # where the kill lands; any point is fine
        victim.kill()

        assert [line for line in victim.lines if line.startswith("error")] == []
        assert_fsck_clean(repo)
        assert owned_by_the_user(repo) == before
        previous = assert_ref_intact(repo, ref, previous)
        lock = repo.root / ".git" / f"{ref}.lock"
        if lock.exists():  # the kill landed inside the ref lock: see the tests below
            lock.unlink()
        put(repo, "notes/after.md", f"after kill {round_}\n")
        result = take_snapshot(repo.root, guards=guards)
        assert result.created and result.ref == ref
        previous = assert_ref_intact(repo, ref, previous)
        after = owned_by_the_user(repo)
        assert {k: after[k] for k in USER_FILES} == {k: before[k] for k in USER_FILES}


def kill_inside_the_ref_lock(repo: GitRepo) -> None:
    """Start a child that stops itself holding ``<ref>.lock`` and SIGKILL it there."""
    victim = Victim(repo.root, "--stop-in-lock")
    victim.wait_for("in-lock")
    victim.kill()


def test_a_kill_inside_the_ref_lock_leaves_the_ref_objects_and_user_state_intact(
    repo: GitRepo,
) -> None:
    repo.write("train.py", "print('v2')\n")
    before = owned_by_the_user(repo)

    kill_inside_the_ref_lock(repo)

    assert_fsck_clean(repo)
    assert owned_by_the_user(repo) == before
    assert snapshot_ref_value(repo, "refs/labmind/snapshots/main") is None


def test_a_lock_left_by_a_killed_snapshot_does_not_block_later_snapshots(
    repo: GitRepo, guards: Guards
) -> None:
    repo.write("train.py", "print('v2')\n")
    kill_inside_the_ref_lock(repo)
    repo.write("train.py", "print('v3')\n")

    result = take_snapshot(repo.root, guards=guards)

    assert result.created
    assert repo.show("refs/labmind/snapshots/main", "train.py") == "print('v3')\n"
