"""Fault injection: SIGKILL a process that is taking snapshots, then check nothing broke.

Three repositories of ``--files`` files (made like `bench.backup`'s, with the git CLI in
an isolated environment): one plain, one in the middle of a merge with a conflict, one
in the middle of a rebase stopped at a conflict (detached HEAD). Each iteration takes
the next repository, starts a real child process (`bench.backup_victim`) that takes
snapshots in a loop while a thread here edits the work tree (modifies tracked files,
creates, rewrites and deletes untracked ones), waits until the child is ready, SIGKILLs
it after a random delay, and checks:

- ``git fsck --full`` is clean (dangling objects are fine);
- the user's state is byte-identical: every file in ``.git`` except the object database
  and labmind's own refs (index and its mtime, HEAD, branches, packed-refs, config,
  MERGE_HEAD, the rebase state, ...), and the work tree is exactly what the editor
  wrote;
- the snapshot ref is the old commit or a new one that chains onto it, and every tree
  and blob of it reads; never a broken ref;
- a lock file left behind; and whether the next snapshot (taken here, after one more
  edit) can move the ref: ``blocked`` if it cannot, ``blocked for good`` if a second try
  fails as well. The bench then deletes the stale lock and checks the snapshot after.

Every tenth iteration stops the child inside the snapshot ref's lock (the child stops
itself with SIGSTOP when it holds ``<ref>.lock``) and kills it there: a random kill
lands in that window only rarely. Half of the other iterations run the child with the
guards off, so that kills also land in the short phases (blobs, tree, commit, ref)
rather than mostly in detect-secrets.

    python -m bench.backup_faults [--json out.json] [--iterations 100] [--files 400]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from labmind.daemon.backup import (
    ConcurrentSnapshotError,
    Guards,
    current_branch,
    open_repository,
    snapshot_ref,
    take_snapshot,
)
from labmind.daemon.backup.snapshot import WRITER_LOCK_NAME

from .backup import copy_repository, git, git_env, make_repository
from .report import print_table

ROOT = Path(__file__).resolve().parent.parent
SEED = 4_242
MAX_DELAY_S = 1.0
"""Kills land uniformly within this long after the child says it is ready."""
LINE_TIMEOUT_S = 60.0
CONFLICTED = "conflicted.py"
CHECK_GUARDS = Guards(allow=("*",))
"""The snapshot this bench takes after a kill only needs to move the ref."""


# --- repositories in three states -----------------------------------------------------


@dataclass
class Subject:
    """One repository under test and what is known about it between iterations."""

    kind: str
    root: Path
    env: dict[str, str]
    editable: list[str]
    model: dict[str, str] = field(default_factory=dict)
    """``path -> sha256`` of the work tree as the user (the editor) left it."""
    last: pygit2.Oid | None = None
    """The snapshot ref's value after the previous iteration."""

    @property
    def git_dir(self) -> Path:
        return self.root / ".git"


def _conflicting_commits(root: Path, env: dict[str, str], branch: str) -> None:
    """Commit ``CONFLICTED`` differently on ``branch`` and on ``main``."""
    (root / CONFLICTED).write_text("value = 'base'\n")
    git(root, env, "add", CONFLICTED)
    git(root, env, "commit", "-q", "-m", "base")
    git(root, env, "checkout", "-q", "-b", branch)
    (root / CONFLICTED).write_text(f"value = '{branch}'\n")
    git(root, env, "commit", "-q", "-am", branch)
    git(root, env, "checkout", "-q", "main")
    (root / CONFLICTED).write_text("value = 'main'\n")
    git(root, env, "commit", "-q", "-am", "main")


def make_subjects(workdir: Path, env: dict[str, str], files: int) -> list[Subject]:
    """A plain repository, one with a merge conflict, one with a rebase stopped at one."""
    tracked = make_repository(workdir / "template", env, files)
    rng = random.Random(SEED)
    small = [p for p in tracked if p.endswith((".py", ".md", ".txt", ".yaml"))]
    small = [p for p in small if (workdir / "template" / p).stat().st_size < 3000]
    subjects: list[Subject] = []
    for kind in ("plain", "merge conflict", "rebase conflict"):
        root = copy_repository(workdir / "template", workdir / kind.replace(" ", "-"), env)
        if kind == "merge conflict":
            _conflicting_commits(root, env, "other")
            git(root, env, "merge", "-q", "other", check=False)
            assert (root / ".git" / "MERGE_HEAD").exists(), "no merge in progress"
        elif kind == "rebase conflict":
            _conflicting_commits(root, env, "feature")
            git(root, env, "checkout", "-q", "feature")
            git(root, env, "rebase", "-q", "main", check=False)
            assert (root / ".git" / "rebase-merge").is_dir(), "no rebase in progress"
        subject = Subject(kind, root, env, rng.sample(small, min(30, len(small))))
        subject.model = worktree_digests(root)
        subjects.append(subject)
    return subjects


# --- what the user owns ------------------------------------------------------------------

_NOT_THE_USERS = ("objects/", "refs/labmind/", "logs/refs/labmind/")


def git_dir_state(git_dir: Path) -> dict[str, str]:
    """``path -> sha256`` of every file in ``git_dir`` the user owns, and the index mtime."""
    state: dict[str, str] = {}
    for path in sorted(git_dir.rglob("*")):
        name = path.relative_to(git_dir).as_posix()
        if path.is_file() and not name.startswith(_NOT_THE_USERS):
            state[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    index = git_dir / "index"
    state["index mtime"] = str(index.stat().st_mtime_ns) if index.exists() else "-"
    return state


def worktree_digests(root: Path) -> dict[str, str]:
    """``path -> sha256`` of every file outside ``.git``."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = Path(dirpath) / name
            found[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# --- the user editing ------------------------------------------------------------------


class Editor(threading.Thread):
    """Edits the work tree until stopped, keeping the subject's model of it up to date."""

    def __init__(self, subject: Subject, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.subject = subject
        self.rng = rng
        self.stopping = threading.Event()
        self.edits = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            self.edit_once()
            self.stopping.wait(self.rng.uniform(0.002, 0.02))

    def edit_once(self) -> None:
        roll = self.rng.random()
        if roll < 0.6:
            path = self.rng.choice(self.subject.editable)
            self.write(path, f"# edit {self.edits}: {self.rng.random():.6f}\n")
        elif roll < 0.85:
            self.write(f"scratch/note_{self.rng.randrange(10)}.txt", f"note {self.edits}\n")
        else:
            self.delete(f"scratch/note_{self.rng.randrange(10)}.txt")
        self.edits += 1

    def write(self, path: str, line: str) -> None:
        file = self.subject.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        old = file.read_bytes() if file.exists() and not path.startswith("scratch/") else b""
        data = old + line.encode()
        file.write_bytes(data)
        self.subject.model[path] = hashlib.sha256(data).hexdigest()

    def delete(self, path: str) -> None:
        (self.subject.root / path).unlink(missing_ok=True)
        self.subject.model.pop(path, None)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


# --- the child ----------------------------------------------------------------------------


class Victim:
    """A running `bench.backup_victim` and the lines it printed."""

    def __init__(self, repo: Path, *, stop_in_lock: bool, guards_on: bool) -> None:
        cmd = [sys.executable, "-m", "bench.backup_victim", str(repo), "--seconds", "300"]
        if stop_in_lock:
            cmd.append("--stop-in-lock")
        if not guards_on:
            cmd.append("--guards-off")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str) -> None:
        """Block until the child prints a line starting with ``prefix``."""
        deadline = time.monotonic() + LINE_TIMEOUT_S
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(line)
            if line.startswith(prefix):
                return

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join()  # the pipe is at its end once the child is gone
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def drain(self) -> list[str]:
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return self.seen


# --- checks -----------------------------------------------------------------------------


def fsck(subject: Subject) -> str | None:
    """``None`` when ``git fsck --full`` is clean, else what it said."""
    proc = subprocess.run(
        ["git", "fsck", "--full", "--no-dangling", "--no-progress"],
        cwd=subject.root,
        env=subject.env,
        capture_output=True,
        text=True,
        check=False,
    )
    said = (proc.stdout + proc.stderr).strip()
    return None if proc.returncode == 0 and not said else f"rc {proc.returncode}: {said[:500]}"


def garbage_files(subject: Subject) -> int:
    """Temporary object files left in the object database (``git count-objects -v``)."""
    for line in git(subject.root, subject.env, "count-objects", "-v").splitlines():
        if line.startswith("garbage:"):
            return int(line.split()[1])
    return 0


def lock_files(subject: Subject) -> list[str]:
    """git ``.lock`` files left behind (labmind's ``flock`` file is not one: it stays)."""
    writer = subject.git_dir / "refs" / "labmind" / WRITER_LOCK_NAME
    return sorted(
        p.relative_to(subject.git_dir).as_posix()
        for p in subject.git_dir.rglob("*.lock")
        if p != writer
    )


def _walk(repo: pygit2.Repository, tree: pygit2.Tree) -> Iterator[pygit2.Oid]:
    for entry in tree:
        if entry.filemode == FileMode.TREE:
            yield from _walk(repo, repo[entry.id].peel(pygit2.Tree))
        elif entry.filemode != FileMode.COMMIT:
            yield entry.id


def ref_problem(subject: Subject, printed: pygit2.Oid | None) -> str | None:
    """Why the snapshot ref is broken, or ``None``: it must be the last value or chain onto
    it (and onto the last commit the child printed), with every object of its tree readable."""
    try:
        repo = open_repository(subject.root)
        ref = snapshot_ref(current_branch(repo))
        reference = repo.references.get(ref)
        if reference is None:
            return None if subject.last is None else f"{ref} vanished"
        commit = repo[reference.target].peel(pygit2.Commit)
        for blob in _walk(repo, commit.tree):
            repo.odb.read(blob)
        for known in (subject.last, printed):
            if known is not None and not _descends(repo, commit, known):
                return f"{ref} at {commit.id} does not chain onto {known}"
    except (KeyError, ValueError, pygit2.GitError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _descends(repo: pygit2.Repository, commit: pygit2.Commit, ancestor: pygit2.Oid) -> bool:
    return commit.id == ancestor or repo.descendant_of(commit.id, ancestor)


def ref_value(subject: Subject) -> pygit2.Oid | None:
    repo = open_repository(subject.root)
    reference = repo.references.get(snapshot_ref(current_branch(repo)))
    target = reference.target if reference is not None else None
    return target if isinstance(target, pygit2.Oid) else None


def last_printed(lines: list[str]) -> pygit2.Oid | None:
    """The newest commit the child reported creating."""
    for line in reversed(lines):
        parts = line.split()
        if parts[0] == "snapshot" and parts[3] == "1":
            return pygit2.Oid(hex=parts[2])
    return None


@dataclass
class NextSnapshot:
    """Whether the snapshot after a kill could move the ref, and what it said if not."""

    blocked: bool = False
    blocked_for_good: bool = False
    after_unlock_ok: bool = True
    message: str = ""


def next_snapshot(subject: Subject, iteration: int) -> NextSnapshot:
    """One edit, then a snapshot here; on a lock error a second try, then the lock removed."""
    outcome = NextSnapshot()
    note = f"scratch/after_kill_{iteration % 5}.txt"
    data = f"after kill {iteration}\n".encode()
    (subject.root / note).parent.mkdir(exist_ok=True)
    (subject.root / note).write_bytes(data)
    subject.model[note] = hashlib.sha256(data).hexdigest()
    for attempt in range(2):
        try:
            take_snapshot(subject.root, guards=CHECK_GUARDS)
            return outcome
        except ConcurrentSnapshotError as exc:
            outcome.blocked = True
            outcome.blocked_for_good = attempt == 1
            outcome.message = str(exc)
    for lock in lock_files(subject):
        if lock.startswith("refs/labmind/"):
            (subject.git_dir / lock).unlink()
    try:
        take_snapshot(subject.root, guards=CHECK_GUARDS)
    except ConcurrentSnapshotError:
        outcome.after_unlock_ok = False
    return outcome


# --- one iteration ----------------------------------------------------------------------


@dataclass
class Outcome:
    """What one kill left behind."""

    variant: str
    snapshots: int
    ref_advanced: bool
    fsck: str | None
    broken_ref: str | None
    user_state_changed: list[str]
    locks: list[str]
    next: NextSnapshot
    child_errors: list[str]
    garbage: int


def state_difference(subject: Subject, before: dict[str, str]) -> list[str]:
    """What differs from ``before`` in ``.git`` and from the editor's model in the work tree."""
    after = git_dir_state(subject.git_dir)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    tree = worktree_digests(subject.root)
    model = subject.model
    changed += sorted(
        f"worktree:{k}" for k in tree.keys() | model.keys() if tree.get(k) != model.get(k)
    )
    return changed


def kill_once(subject: Subject, rng: random.Random, *, in_lock: bool, guards_on: bool) -> Outcome:
    """Start a child on ``subject``, kill it, and check everything it could have broken."""
    before = git_dir_state(subject.git_dir)
    last_before = subject.last
    editor = Editor(subject, random.Random(rng.random()))
    editor.start()
    victim = Victim(subject.root, stop_in_lock=in_lock, guards_on=guards_on)
    try:
        victim.wait_for("ready")
        if in_lock:
            victim.wait_for("in-lock")
        else:
            time.sleep(rng.uniform(0.0, MAX_DELAY_S))
    finally:
        victim.kill()
        editor.stop()
    lines = victim.drain()
    locks = lock_files(subject)
    broken = ref_problem(subject, last_printed(lines))
    after_kill = ref_value(subject)
    fsck_said = fsck(subject)
    changed = state_difference(subject, before)
    garbage = garbage_files(subject)
    follow = next_snapshot(subject, len(lines))
    changed += [f"after next snapshot: {k}" for k in state_difference(subject, before)]
    broken = broken or ref_problem(subject, None)
    subject.last = ref_value(subject)
    variant = "kill inside ref lock" if in_lock else subject.kind
    return Outcome(
        variant=f"{variant}, guards {'on' if guards_on else 'off'}",
        snapshots=sum(line.startswith("snapshot") for line in lines),
        ref_advanced=after_kill != last_before,
        fsck=fsck_said,
        broken_ref=broken,
        user_state_changed=changed,
        locks=locks,
        next=follow,
        child_errors=[line for line in lines if line.startswith("error")],
        garbage=garbage,
    )


COLUMNS = (
    "iterations",
    "snapshots before kill",
    "ref advanced by victim",
    "fsck failures",
    "broken refs",
    "user-state changes",
    "stale locks",
    "next blocked",
    "blocked for good",
    "child errors",
    "garbage files",
)


def tally(outcomes: list[Outcome]) -> dict[str, float]:
    return {
        "iterations": len(outcomes),
        "snapshots before kill": sum(o.snapshots for o in outcomes),
        "ref advanced by victim": sum(o.ref_advanced for o in outcomes),
        "fsck failures": sum(o.fsck is not None for o in outcomes),
        "broken refs": sum(o.broken_ref is not None for o in outcomes),
        "user-state changes": sum(bool(o.user_state_changed) for o in outcomes),
        "stale locks": sum(bool(o.locks) for o in outcomes),
        "next blocked": sum(o.next.blocked for o in outcomes),
        "blocked for good": sum(o.next.blocked_for_good for o in outcomes),
        "child errors": sum(bool(o.child_errors) for o in outcomes),
        "garbage files": max((o.garbage for o in outcomes), default=0),
    }


def table(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    variants = sorted({o.variant for o in outcomes})
    rows = {v: tally([o for o in outcomes if o.variant == v]) for v in variants}
    rows["all"] = tally(outcomes)
    return rows


def problems(outcomes: list[Outcome]) -> list[dict[str, object]]:
    """Every iteration where something went wrong, with the details."""
    found: list[dict[str, object]] = []
    for number, o in enumerate(outcomes):
        if (
            o.fsck
            or o.broken_ref
            or o.user_state_changed
            or o.locks
            or o.next.blocked
            or o.child_errors
        ):
            found.append(
                {
                    "iteration": number,
                    "variant": o.variant,
                    "fsck": o.fsck,
                    "broken_ref": o.broken_ref,
                    "user_state_changed": o.user_state_changed[:20],
                    "locks": o.locks,
                    "next_snapshot": vars(o.next),
                    "child_errors": sorted(set(o.child_errors))[:5],
                }
            )
    return found


def findings(outcomes: list[Outcome]) -> dict[str, object]:
    """Problems grouped by kind, with how often each was seen."""
    locked = [o for o in outcomes if o.locks]
    return {
        "stale locks": dict(Counter(lock for o in locked for lock in o.locks)),
        "next snapshot after a stale lock": dict(
            Counter(o.next.message.split(": failed")[0] for o in locked if o.next.blocked)
        ),
        "snapshot works once the lock is deleted": sum(o.next.after_unlock_ok for o in locked),
        "child errors": dict(Counter(e for o in outcomes for e in set(o.child_errors))),
        "fsck": [o.fsck for o in outcomes if o.fsck],
        "broken refs": [o.broken_ref for o in outcomes if o.broken_ref],
        "user-state changes": [o.user_state_changed for o in outcomes if o.user_state_changed],
    }


def run(iterations: int, files: int, workdir: Path) -> list[Outcome]:
    env = git_env(workdir / "home")
    subjects = make_subjects(workdir, env, files)
    rng = random.Random(SEED)
    outcomes: list[Outcome] = []
    for number in range(iterations):
        subject = subjects[number % len(subjects)]
        in_lock = number % 10 == 9
        guards_on = in_lock or (number // len(subjects)) % 2 == 0
        outcome = kill_once(subject, rng, in_lock=in_lock, guards_on=guards_on)
        outcomes.append(outcome)
        print(
            f"{number + 1:4d}/{iterations} {outcome.variant:32s} snapshots={outcome.snapshots}"
            f" locks={outcome.locks} blocked={outcome.next.blocked}",
            flush=True,
        )
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lmb-faults-", dir="/tmp"))
    try:
        started = time.perf_counter()
        outcomes = run(args.iterations, args.files, workdir)
        took = time.perf_counter() - started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = table(outcomes)
    title = (
        f"SIGKILL during snapshots: {args.iterations} kills, {args.files}-file repositories "
        f"({took:.0f} s)"
    )
    print_table(title, rows)
    kinds = findings(outcomes)
    print(json.dumps(kinds, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results = {"title": title, "rows": rows, "findings": kinds, "problems": problems(outcomes)}
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
