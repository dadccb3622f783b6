"""Restore a snapshot's files into a new folder, never over the user's files.

Blobs become files (the executable bit kept), links become symlinks, submodule
gitlinks become empty folders. The target must not exist or be an empty folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from .snapshot import SnapshotError


class RestoreError(SnapshotError):
    """A snapshot cannot be restored; the one-line message says why."""


_UNSAFE_NAMES = frozenset({"", ".", "..", ".git"})


def restore(repo: pygit2.Repository, ref_or_oid: str | pygit2.Oid, target: Path) -> int:
    """Write the tree of the snapshot ``ref_or_oid`` into the new folder ``target``.

    ``ref_or_oid`` is a ref name, a revision git understands, or a commit/tree id.
    Returns the number of files and links written.
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RestoreError(f"{target} is not empty; restore writes only into a new folder")
    tree = _resolve_tree(repo, ref_or_oid)
    target.mkdir(parents=True, exist_ok=True)
    return _write_tree(repo, tree, target)


def _resolve_tree(repo: pygit2.Repository, ref_or_oid: str | pygit2.Oid) -> pygit2.Tree:
    try:
        found = repo[ref_or_oid] if isinstance(ref_or_oid, pygit2.Oid) else None
        if found is None:
            found = repo.revparse_single(str(ref_or_oid))
        return found.peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
        raise RestoreError(f"no snapshot {ref_or_oid} in {repo.path}") from exc


def _write_tree(repo: pygit2.Repository, tree: pygit2.Tree, folder: Path) -> int:
    written = 0
    for entry in tree:
        name = entry.name or ""
        if name in _UNSAFE_NAMES or "/" in name or "\\" in name:
            raise RestoreError(f"refusing to restore an entry named {name!r}")
        path = folder / name
        mode = entry.filemode
        if mode == FileMode.TREE:
            path.mkdir()
            written += _write_tree(repo, repo[entry.id].peel(pygit2.Tree), path)
        elif mode == FileMode.COMMIT:
            path.mkdir()
        elif mode == FileMode.LINK:
            link = repo[entry.id].peel(pygit2.Blob).data
            path.symlink_to(os.fsdecode(link))
            written += 1
        else:
            path.write_bytes(repo[entry.id].peel(pygit2.Blob).data)
            path.chmod(0o755 if mode == FileMode.BLOB_EXECUTABLE else 0o644)
            written += 1
    return written
