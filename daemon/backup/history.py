"""Reading the snapshot history: the snapshots of a branch, and which one ``--at`` means.

A branch's snapshots are the first-parent chain of ``refs/labmind/snapshots/<branch>``
down to the user's commit the first snapshot was taken on; only commits labmind wrote
count as snapshots. ``--at`` takes a commit id (or a unique prefix), a ref or revision
git understands, an ISO date/time (local time unless it carries an offset), or an age
such as ``90m``, ``2h``, ``3d`` or ``1w`` (optionally followed by ``ago``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pygit2

from .snapshot import AUTHOR_EMAIL, SnapshotError, snapshot_ref


@dataclass(frozen=True)
class Snapshot:
    commit: pygit2.Oid
    time: float
    message: str


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*(?:ago)?\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def snapshots(
    repo: pygit2.Repository, branch: str, *, limit: int | None = None
) -> Iterator[Snapshot]:
    """The snapshots of ``branch``, newest first."""
    reference = repo.references.get(snapshot_ref(branch))
    if reference is None:
        return
    commit = reference.peel(pygit2.Commit)
    count = 0
    while commit.author.email == AUTHOR_EMAIL and (limit is None or count < limit):
        yield Snapshot(commit.id, float(commit.commit_time), commit.message.strip())
        count += 1
        if not commit.parents:
            return
        commit = commit.parents[0]


def snapshot_branches(repo: pygit2.Repository) -> list[str]:
    """Every branch that has snapshots."""
    prefix = snapshot_ref("")
    return sorted(name[len(prefix) :] for name in repo.references if name.startswith(prefix))


def parse_time(text: str, *, now: float | None = None) -> float | None:
    """``text`` as a point in time (an age or an ISO date/time), or ``None`` if it is neither."""
    match = _AGE.match(text)
    if match is not None:
        ago = float(match.group(1)) * _SECONDS[match.group(2).lower()]
        return (time.time() if now is None else now) - ago
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None


def resolve_snapshot(repo: pygit2.Repository, branch: str, at: str) -> Snapshot:
    """The snapshot ``at`` names: a commit/ref, or the newest snapshot taken at or before a time."""
    when = parse_time(at)
    if when is not None:
        for snap in snapshots(repo, branch):
            if snap.time <= when:
                return snap
        raise SnapshotError(f"no snapshot of {branch} at or before {at!r}")
    try:
        commit = repo.revparse_single(at).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
        raise SnapshotError(
            f"{at!r} is neither a snapshot commit nor a time (ISO date, or an age like 2h)"
        ) from exc
    return Snapshot(commit.id, float(commit.commit_time), commit.message.strip())
