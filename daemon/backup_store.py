"""What the store remembers about backups: each backed-up folder, its held-back files, its pushes.

The snapshots themselves live in git (``refs/labmind/snapshots/<branch>``); these
tables only keep what git cannot tell: which folders are backed up, when they were
last checked, what the guards kept out, and how each push went (with its backoff).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .store import Store


@dataclass(frozen=True, slots=True)
class BackupRepo:
    """A folder that is backed up: a repository, or a plain folder with a shadow repository."""

    path: str
    root: str
    shadow: bool
    added_at: float
    snapshot_at: float | None
    snapshot_branch: str | None
    snapshot_commit: str | None
    files_changed: int
    checked_at: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class HeldFile:
    path: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class PushRecord:
    """The last push of one snapshot branch to one remote ref."""

    branch: str
    remote_ref: str
    status: str
    message: str
    pushed_commit: str | None
    at: float
    failures: int
    retry_at: float | None


_REPO_SELECT = (
    "SELECT path, root, shadow, added_at, snapshot_at, snapshot_branch, snapshot_commit, "
    "files_changed, checked_at, error FROM backup_repos"
)
_PUSH_SELECT = (
    "SELECT branch, remote_ref, status, message, pushed_commit, at, failures, retry_at "
    "FROM backup_pushes"
)


def _repo(row: tuple[Any, ...]) -> BackupRepo:
    path, root, shadow, added, snap_at, branch, commit, changed, checked, error = row
    return BackupRepo(
        str(path),
        str(root),
        bool(shadow),
        float(added),
        None if snap_at is None else float(snap_at),
        None if branch is None else str(branch),
        None if commit is None else str(commit),
        int(changed),
        None if checked is None else float(checked),
        None if error is None else str(error),
    )


def _push(row: tuple[Any, ...]) -> PushRecord:
    branch, remote_ref, status, message, commit, at, failures, retry_at = row
    return PushRecord(
        str(branch),
        str(remote_ref),
        str(status),
        str(message),
        None if commit is None else str(commit),
        float(at),
        int(failures),
        None if retry_at is None else float(retry_at),
    )


class BackupStore:
    """Backup bookkeeping on the daemon's `Store` (tables ``backup_*``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, path: str, root: str, *, shadow: bool, at: float) -> bool:
        """Start backing up ``path`` (found under the watched ``root``); False if known."""
        with self.store.transaction() as tx:
            cursor = tx.execute(
                "INSERT OR IGNORE INTO backup_repos(path, root, shadow, added_at) "
                "VALUES (?, ?, ?, ?)",
                (path, root, int(shadow), at),
            )
            return cursor.rowcount > 0

    def remove(self, path: str) -> None:
        with self.store.transaction() as tx:
            tx.execute("DELETE FROM backup_repos WHERE path=?", (path,))

    def remove_root(self, root: str) -> list[str]:
        """Forget every folder found under the watched ``root``; returns their paths."""
        with self.store.transaction() as tx:
            rows = tx.execute("SELECT path FROM backup_repos WHERE root=?", (root,)).fetchall()
            tx.execute("DELETE FROM backup_repos WHERE root=?", (root,))
        return [str(r[0]) for r in rows]

    def repos(self) -> list[BackupRepo]:
        rows = self.store.reader().execute(f"{_REPO_SELECT} ORDER BY path")
        return [_repo(r) for r in rows]

    def repo(self, path: str) -> BackupRepo | None:
        row = self.store.reader().execute(f"{_REPO_SELECT} WHERE path=?", (path,)).fetchone()
        return None if row is None else _repo(row)

    def record_check(
        self,
        path: str,
        *,
        at: float,
        held: Sequence[tuple[str, str]],
        snapshot: tuple[str, str, int] | None,
    ) -> None:
        """A snapshot ran: what it held back and, when it made one, (branch, commit, changed)."""
        with self.store.transaction() as tx:
            tx.execute("UPDATE backup_repos SET checked_at=?, error=NULL WHERE path=?", (at, path))
            if snapshot is not None:
                branch, commit, changed = snapshot
                tx.execute(
                    "UPDATE backup_repos SET snapshot_at=?, snapshot_branch=?, "
                    "snapshot_commit=?, files_changed=? WHERE path=?",
                    (at, branch, commit, changed, path),
                )
            previous = {
                str(r[0]): float(r[1])
                for r in tx.execute("SELECT path, at FROM backup_held WHERE repo=?", (path,))
            }
            tx.execute("DELETE FROM backup_held WHERE repo=?", (path,))
            tx.executemany(
                "INSERT INTO backup_held(repo, path, reason, at) VALUES (?, ?, ?, ?)",
                [(path, file, reason, previous.get(file, at)) for file, reason in held],
            )

    def record_error(self, path: str, error: str, *, at: float) -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE backup_repos SET checked_at=?, error=? WHERE path=?", (at, error, path)
            )

    def held(self, path: str) -> list[HeldFile]:
        rows = self.store.reader().execute(
            "SELECT path, reason, at FROM backup_held WHERE repo=? ORDER BY path", (path,)
        )
        return [HeldFile(str(p), str(r), float(a)) for p, r, a in rows]

    def record_push(self, path: str, record: PushRecord) -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO backup_pushes(repo, branch, remote_ref, status, message, "
                "pushed_commit, at, failures, retry_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    path,
                    record.branch,
                    record.remote_ref,
                    record.status,
                    record.message,
                    record.pushed_commit,
                    record.at,
                    record.failures,
                    record.retry_at,
                ),
            )

    def pushes(self, path: str) -> list[PushRecord]:
        rows = self.store.reader().execute(
            f"{_PUSH_SELECT} WHERE repo=? ORDER BY branch, remote_ref",
            (path,),
        )
        return [_push(r) for r in rows]

    def push(self, path: str, branch: str, remote_ref: str) -> PushRecord | None:
        row = (
            self.store.reader()
            .execute(
                f"{_PUSH_SELECT} WHERE repo=? AND branch=? AND remote_ref=?",
                (path, branch, remote_ref),
            )
            .fetchone()
        )
        return None if row is None else _push(row)
