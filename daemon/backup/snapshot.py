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
- a file the `Guards` hold back (or that keeps changing while it is read) is left as
  HEAD has it, or as the previous snapshot had it when HEAD has none (untracked files,
  shadow folders), and is reported in `SnapshotResult.held_back`;
- content equal to the previous snapshot's is not scanned again, and a clean working
  tree (empty status) costs no index at all: an unchanged snapshot is about a `status`;
- a ref ``.lock`` left by a killed snapshot is removed by the next one (labmind's
  writers serialise on an ``flock``, which the kernel releases when its holder dies);
- an untracked folder with its own ``.git`` is not added; it is reported in
  `SnapshotResult.nested` so that it can be snapshotted as a repository of its own;
- submodules stay the gitlinks HEAD records; symlinks are stored as links and the
  executable bit is kept.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, RepositoryOpenFlag

from .guards import Guards, HeldBack

SNAPSHOT_REF_PREFIX = "refs/labmind/snapshots/"
DETACHED_BRANCH = "detached"
"""The branch name snapshots of a detached HEAD are filed under."""

log = logging.getLogger("labmind.backup")

WRITER_LOCK_NAME = "writer.lock"
"""Under ``refs/labmind/``; git skips ``*.lock`` names when it lists refs."""
LOCK_ATTEMPTS = 20
LOCK_RETRY_S = 0.05
READ_ATTEMPTS = 3
"""Reads of a file that keeps changing while it is read, before its last version is kept."""

AUTHOR_NAME = "labmind"
AUTHOR_EMAIL = "labmind@localhost"


class SnapshotError(Exception):
    """A snapshot cannot be taken; the one-line message says why."""


class SnapshotInterrupted(SnapshotError):
    """The snapshot was asked to stop (the daemon is shutting down); nothing was changed."""


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
    repo_path: Path | pygit2.Repository,
    *,
    guards: Guards,
    now: float | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> SnapshotResult:
    """Snapshot the working tree of ``repo_path`` onto ``refs/labmind/snapshots/<branch>``.

    ``repo_path`` is a repository's work tree or git dir (a shadow repository's git dir
    works too), or an open repository. ``now`` sets the commit time (default: now).
    Raises `ConcurrentSnapshotError` when the ref moved while the snapshot was built, and
    `SnapshotInterrupted` when ``cancelled()`` turns true while files are being read.
    """
    repo = repo_path if isinstance(repo_path, pygit2.Repository) else open_repository(repo_path)
    if repo.workdir is None:
        raise SnapshotError(f"{repo.path} has no working tree to snapshot")
    branch = current_branch(repo)
    ref = snapshot_ref(branch)
    previous = _ref_target(repo, ref)
    head_commit = None if repo.head_is_unborn else repo.head.peel(pygit2.Commit)
    parent = repo[previous].peel(pygit2.Commit) if previous is not None else head_commit
    parent_tree = parent.tree if parent is not None else None

    status = repo.status(untracked_files="all", ignored=False)
    held_back: list[HeldBack] = []
    nested: list[Path] = []
    if not status and head_commit is not None:
        tree_id = head_commit.tree.id  # the working tree is HEAD's: no index to build
        empty = False
    else:
        index = pygit2.Index()
        if head_commit is not None:
            index.read_tree(head_commit.tree)
        held_back, nested = _apply_status(
            repo, index, status, guards, parent_tree, cancelled or _never
        )
        tree_id = index.write_tree(repo)
        empty = len(index) == 0

    if (parent_tree is None and empty) or (parent_tree is not None and parent_tree.id == tree_id):
        return SnapshotResult(branch, ref, previous, False, 0, held_back, nested)

    tree = repo[tree_id].peel(pygit2.Tree)
    changed = len(parent_tree.diff_to_tree(tree)) if parent_tree is not None else _count(tree)
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
    `ConcurrentSnapshotError` is raised and the ref keeps its value. labmind's writers
    also hold an ``flock`` (``refs/labmind/writer.lock``) meanwhile, so a ``.lock``
    file that outlives a short wait was left by a killed writer and is removed.
    """
    with _writer_lock(repo):
        for _ in range(LOCK_ATTEMPTS):
            try:
                _set_ref_if(repo, ref, new, expected)
                return
            except pygit2.GitError:
                time.sleep(LOCK_RETRY_S)
        lock = _git_common_dir(repo) / f"{ref}.lock"
        if lock.exists():
            # Every labmind writer holds the writer lock while it touches the ref, and
            # git itself (pack-refs) keeps a ref lock for milliseconds: one still there
            # now was left by a writer that was killed.
            log.warning("removing %s, left by an interrupted snapshot", lock)
            lock.unlink(missing_ok=True)
        try:
            _set_ref_if(repo, ref, new, expected)
        except pygit2.GitError as exc:
            raise ConcurrentSnapshotError(f"{ref} is being updated by someone else: {exc}") from exc


def _set_ref_if(
    repo: pygit2.Repository, ref: str, new: pygit2.Oid, expected: pygit2.Oid | None
) -> None:
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


def _git_common_dir(repo: pygit2.Repository) -> Path:
    """Where the repository's refs live (a linked worktree's git dir points there)."""
    git_dir = Path(repo.path)
    common = git_dir / "commondir"
    if common.is_file():
        return (git_dir / common.read_text(encoding="utf-8").strip()).resolve()
    return git_dir


@contextmanager
def _writer_lock(repo: pygit2.Repository) -> Iterator[None]:
    """Exclusive among labmind's writers of this repository's snapshot refs (any process);
    released by the kernel when its holder dies, unlike git's ``.lock`` files."""
    folder = _git_common_dir(repo) / "refs" / "labmind"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / WRITER_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ref_target(repo: pygit2.Repository, ref: str) -> pygit2.Oid | None:
    reference = repo.references.get(ref)
    if reference is None:
        return None
    target = reference.target
    return target if isinstance(target, pygit2.Oid) else None


def _apply_status(
    repo: pygit2.Repository,
    index: pygit2.Index,
    status: dict[str, int],
    guards: Guards,
    parent_tree: pygit2.Tree | None,
    cancelled: Callable[[], bool],
) -> tuple[list[HeldBack], list[Path]]:
    """Bring ``index`` (HEAD's tree) to the working tree's state; report what stayed out.

    A file whose content and mode equal its entry in the previous snapshot is taken
    from there without a content scan (only the quick name and size checks run). A file
    that stays out, or keeps changing while it is read, keeps its previous snapshot's
    version when HEAD has none (untracked files, shadow folders).
    """
    workdir = Path(str(repo.workdir))
    trust_filemode = _config_bool(repo, "core.filemode", default=True)
    held_back: list[HeldBack] = []
    nested: list[Path] = []
    for path in sorted(status):
        if cancelled():
            raise SnapshotInterrupted(f"snapshot of {workdir} stopped before it was complete")
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
            _remove(index, path)
            continue
        if stat.S_ISDIR(info.st_mode):
            _remove(index, path)
            continue
        mode = _file_mode(info)
        if not trust_filemode and path in index and mode != FileMode.LINK:
            old = index[path].mode
            mode = old if old in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE) else mode
        previous = _tree_entry(parent_tree, path)
        try:
            refusal = _check(guards, path, file, info, mode, previous)
            blob = _blob(repo, path, file) if refusal is None else None
        except FileNotFoundError:
            _remove(index, path)  # deleted while the snapshot was built
            continue
        except PermissionError:
            refusal, blob = HeldBack(path, "not readable (permission denied)"), None
        if blob is not None:
            index.add(pygit2.IndexEntry(path, blob, mode))
            continue
        held_back.append(refusal or HeldBack(path, "kept changing while it was read"))
        if path not in index and previous is not None:
            index.add(pygit2.IndexEntry(path, *previous))
    return held_back, nested


def _check(
    guards: Guards,
    path: str,
    file: Path,
    info: os.stat_result,
    mode: FileMode,
    previous: tuple[pygit2.Oid, FileMode] | None,
) -> HeldBack | None:
    """The guards' verdict; content already in the previous snapshot is not scanned again."""
    if previous is not None and previous[1] == mode:
        quick = guards.check_quick(path, info)
        if quick is not None or _content_id(file, mode) == previous[0]:
            return quick
    return guards.check(path, file)


def _content_id(file: Path, mode: FileMode) -> pygit2.Oid | None:
    """The blob id of the file's content as it is on disk (no filters), if it can be read."""
    try:
        if mode == FileMode.LINK:
            return pygit2.hash(os.fsencode(file.readlink()))
        return pygit2.hashfile(str(file))
    except (OSError, pygit2.GitError):
        return None


def _blob(repo: pygit2.Repository, path: str, file: Path) -> pygit2.Oid | None:
    """The blob of ``path`` as it is now; ``None`` if it changed during every read."""
    for _ in range(READ_ATTEMPTS):
        try:
            return repo.create_blob_fromworkdir(path)
        except PermissionError:
            raise
        except (OSError, pygit2.GitError):
            if not os.path.lexists(file):
                raise FileNotFoundError(path) from None
    return None


def _tree_entry(tree: pygit2.Tree | None, path: str) -> tuple[pygit2.Oid, FileMode] | None:
    if tree is None:
        return None
    try:
        entry = tree[path]
    except KeyError:
        return None
    mode = FileMode(entry.filemode)
    if mode not in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE, FileMode.LINK):
        return None
    return entry.id, mode


def _never() -> bool:
    return False


def _remove(index: pygit2.Index, path: str) -> None:
    if path in index:
        index.remove(path)


def _count(tree: pygit2.Tree) -> int:
    """Entries (files, links, gitlinks) in ``tree``, recursively."""
    return len(tree.diff_to_tree())


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
