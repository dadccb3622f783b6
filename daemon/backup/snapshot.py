"""Snapshots of a repository's working tree as commits on ``refs/labmind/snapshots/<branch>``.

A snapshot never touches what the user owns: it builds a stand-alone in-memory
`pygit2.Index` from HEAD's tree (never ``.git/index``, never ``index.lock``), applies
what `Repository.status` reports (which honours the ignore rules), writes blobs, a tree
and a commit into the object database, and moves only its own ref, with a
compare-and-swap on the previous snapshot. HEAD, branches, the index file, the config
and the working tree stay as they were.

Rules worth knowing:

- the first snapshot's parent is HEAD's commit (none on an unborn HEAD); later ones
  chain on the previous snapshot; nothing is written when the tree is unchanged;
- a detached HEAD snapshots to the branch name ``detached``;
- a file the `Guards` hold back is left as HEAD has it (absent when it is new) and is
  reported in `SnapshotResult.held_back`;
- an untracked folder with its own ``.git`` is not added; it is reported in
  `SnapshotResult.nested` so that it can be snapshotted as a repository of its own;
- submodules stay the gitlinks HEAD records; symlinks are stored as links and the
  executable bit is kept.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, RepositoryOpenFlag

from .guards import Guards, HeldBack

SNAPSHOT_REF_PREFIX = "refs/labmind/snapshots/"
DETACHED_BRANCH = "detached"
"""The branch name snapshots of a detached HEAD are filed under."""

AUTHOR_NAME = "labmind"
AUTHOR_EMAIL = "labmind@localhost"


class SnapshotError(Exception):
    """A snapshot cannot be taken; the one-line message says why."""


class ConcurrentSnapshotError(SnapshotError):
    """Someone else moved (or is moving) the snapshot ref; nothing was changed."""


@dataclass
class SnapshotResult:
    """What one snapshot did."""

    branch: str
    ref: str
    commit: pygit2.Oid | None
    """The ref's commit after the call: the new snapshot, the previous one, or ``None``."""
    created: bool
    files_changed: int = 0
    """Paths that differ from the parent's tree (0 when nothing was created)."""
    held_back: list[HeldBack] = field(default_factory=list)
    nested: list[Path] = field(default_factory=list)
    """Untracked folders holding their own repository, as absolute paths."""

    @property
    def unchanged(self) -> bool:
        """True when no new snapshot commit was needed."""
        return not self.created


def snapshot_ref(branch: str) -> str:
    """The ref that holds the snapshots of ``branch``."""
    return SNAPSHOT_REF_PREFIX + branch


def open_repository(path: Path) -> pygit2.Repository:
    """Open the repository at exactly ``path`` (a work tree or a git dir), no upward search."""
    try:
        return pygit2.Repository(str(path), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError as exc:
        raise SnapshotError(f"{path} is not a git repository") from exc


def current_branch(repo: pygit2.Repository) -> str:
    """HEAD's branch name (also when unborn), or ``detached``."""
    if repo.head_is_detached:
        return DETACHED_BRANCH
    target = repo.references["HEAD"].target
    name = str(target)
    return name.removeprefix("refs/heads/")


def take_snapshot(
    repo_path: Path | pygit2.Repository, *, guards: Guards, now: float | None = None
) -> SnapshotResult:
    """Snapshot the working tree of ``repo_path`` onto ``refs/labmind/snapshots/<branch>``.

    ``repo_path`` is a repository's work tree or git dir (a shadow repository's git dir
    works too), or an open repository. ``now`` sets the commit time (default: now).
    Raises `ConcurrentSnapshotError` when the ref moved while the snapshot was built.
    """
    repo = repo_path if isinstance(repo_path, pygit2.Repository) else open_repository(repo_path)
    if repo.workdir is None:
        raise SnapshotError(f"{repo.path} has no working tree to snapshot")
    branch = current_branch(repo)
    ref = snapshot_ref(branch)
    previous = _ref_target(repo, ref)
    head_commit = None if repo.head_is_unborn else repo.head.peel(pygit2.Commit)

    index = pygit2.Index()
    if head_commit is not None:
        index.read_tree(head_commit.tree)
    held_back, nested = _apply_status(repo, index, guards)
    tree_id = index.write_tree(repo)

    parent = repo[previous].peel(pygit2.Commit) if previous is not None else head_commit
    parent_tree = parent.tree if parent is not None else None
    if (parent_tree is None and len(index) == 0) or (
        parent_tree is not None and parent_tree.id == tree_id
    ):
        return SnapshotResult(branch, ref, previous, False, 0, held_back, nested)

    tree = repo[tree_id].peel(pygit2.Tree)
    changed = len(parent_tree.diff_to_tree(tree)) if parent_tree is not None else len(index)
    when = time.time() if now is None else now
    signature = pygit2.Signature(
        AUTHOR_NAME, AUTHOR_EMAIL, int(when), time.localtime(when).tm_gmtoff // 60
    )
    noun = "file" if changed == 1 else "files"
    commit_id = repo.create_commit(
        None,
        signature,
        signature,
        f"labmind snapshot of {branch}: {changed} {noun} changed\n",
        tree_id,
        [parent.id] if parent is not None else [],
    )
    update_ref_if_unchanged(repo, ref, commit_id, expected=previous)
    return SnapshotResult(branch, ref, commit_id, True, changed, held_back, nested)


def update_ref_if_unchanged(
    repo: pygit2.Repository,
    ref: str,
    new: pygit2.Oid,
    *,
    expected: pygit2.Oid | None,
) -> None:
    """Point ``ref`` at ``new`` only if it still points at ``expected`` (``None``: absent).

    The ref is locked (``<ref>.lock``) for the check and the write, so a concurrent
    writer either fails to take the lock or is seen here; either way
    `ConcurrentSnapshotError` is raised and the ref keeps its value.
    """
    try:
        with repo.transaction() as txn:
            txn.lock_ref(ref)
            current = _ref_target(repo, ref)
            if current != expected:
                raise ConcurrentSnapshotError(
                    f"{ref} moved to {current} while a snapshot was built on {expected}"
                )
            # No signature: pygit2 1.21 cannot pass one to libgit2 here (TypeError), and
            # refs outside refs/heads get no reflog by default anyway.
            txn.set_target(ref, new, message="labmind snapshot")
    except pygit2.GitError as exc:
        raise ConcurrentSnapshotError(f"{ref} is being updated by someone else: {exc}") from exc


def _ref_target(repo: pygit2.Repository, ref: str) -> pygit2.Oid | None:
    reference = repo.references.get(ref)
    if reference is None:
        return None
    target = reference.target
    return target if isinstance(target, pygit2.Oid) else None


def _apply_status(
    repo: pygit2.Repository, index: pygit2.Index, guards: Guards
) -> tuple[list[HeldBack], list[Path]]:
    """Bring ``index`` (HEAD's tree) to the working tree's state; report what stayed out."""
    workdir = Path(str(repo.workdir))
    trust_filemode = _config_bool(repo, "core.filemode", default=True)
    held_back: list[HeldBack] = []
    nested: list[Path] = []
    additions: list[tuple[str, Path, os.stat_result]] = []
    for path in sorted(repo.status(untracked_files="all", ignored=False)):
        if path.endswith("/"):
            folder = workdir / path.rstrip("/")
            if (folder / ".git").exists():
                nested.append(folder)
            continue
        if path in index and index[path].mode == FileMode.COMMIT:
            continue  # submodule: keep HEAD's gitlink
        file = workdir / path
        try:
            info = file.lstat()
        except FileNotFoundError:
            if path in index:
                index.remove(path)
            continue
        if stat.S_ISDIR(info.st_mode):
            if path in index:
                index.remove(path)
            continue
        additions.append((path, file, info))
    for path, file, info in additions:
        try:
            refusal = guards.check(path, file)
            blob = repo.create_blob_fromworkdir(path) if refusal is None else None
        except (OSError, pygit2.GitError):
            if os.path.lexists(file):
                raise
            if path in index:  # deleted while the snapshot was built
                index.remove(path)
            continue
        if blob is None:
            if refusal is not None:
                held_back.append(refusal)
            continue
        mode = _file_mode(info)
        if not trust_filemode and path in index and mode != FileMode.LINK:
            old = index[path].mode
            mode = old if old in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE) else mode
        index.add(pygit2.IndexEntry(path, blob, mode))
    return held_back, nested


def _file_mode(info: os.stat_result) -> FileMode:
    if stat.S_ISLNK(info.st_mode):
        return FileMode.LINK
    if info.st_mode & stat.S_IXUSR:
        return FileMode.BLOB_EXECUTABLE
    return FileMode.BLOB


def _config_bool(repo: pygit2.Repository, name: str, *, default: bool) -> bool:
    try:
        return repo.config.get_bool(name)
    except KeyError:
        return default
