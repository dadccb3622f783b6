"""One backup of one folder: snapshot it, find nested repositories, push what is not pushed.

`back_up` never raises for what can go wrong out there (a folder gone, a locked ref, a
remote that is offline or refuses): everything lands in the `CycleResult`, the store
records it, and the caller turns it into events and schedules. Pushes of a snapshot
branch are retried only when its commit changed or its backoff ran out; a refused push
(non-fast-forward, hook, credentials) is never forced, snapshots go on locally.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from .backup.credentials import CredentialSource
from .backup.guards import Guards, HeldBack
from .backup.history import snapshot_branches, snapshots
from .backup.push import (
    PushResult,
    push_branches_ahead,
    push_snapshot,
    remote_url,
    snapshot_remote_ref,
)
from .backup.shadow import open_shadow
from .backup.snapshot import (
    SnapshotError,
    SnapshotInterrupted,
    open_repository,
    snapshot_ref,
    take_snapshot,
)
from .backup_store import BackupRepo, BackupStore, PushRecord
from .config import BackupConfig, RepoBackupConfig

log = logging.getLogger("labmind.backup")

BACKOFF_START_S = 60.0
BACKOFF_MAX_S = 3600.0
UNPUSHED_WALK_LIMIT = 1000

_REF_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FolderSettings:
    """`[backup]` with the folder's own overrides from ``backup.repos`` applied."""

    enabled: bool
    interval_s: float
    push: bool
    remote: str


def folder_settings(config: BackupConfig, path: str) -> FolderSettings:
    """The settings of ``path``: the override whose folder holds it most closely wins."""
    best: tuple[int, str] | None = None
    for key in config.repos:
        folder = str(Path(key).expanduser().resolve())
        if (path == folder or path.startswith(folder.rstrip("/") + "/")) and (
            best is None or len(folder) > best[0]
        ):
            best = (len(folder), key)
    own = config.repos[best[1]] if best is not None else RepoBackupConfig()
    return FolderSettings(
        enabled=config.enabled and own.enabled is not False,
        interval_s=60.0 * (own.interval_min or config.interval_min),
        push=config.push if own.push is None else own.push,
        remote=config.remote if own.remote is None else own.remote,
    )


def host_name(config: BackupConfig) -> str:
    """This machine's name as it appears in ``labmind/<host>/<branch>``."""
    name = config.host or socket.gethostname() or "localhost"
    return _REF_UNSAFE.sub("-", name).strip(".-") or "localhost"


def shadow_label(path: str) -> str:
    """A ref-safe name for a shadow folder: its base name and a short hash of its path."""
    digest = hashlib.sha256(path.encode()).hexdigest()[:6]
    name = _REF_UNSAFE.sub("-", Path(path).name).strip(".-") or "folder"
    return f"{name}-{digest}"


@dataclass
class Backup:
    """What `back_up` needs besides the folder: store, guards, credentials, names."""

    store: BackupStore
    guards: Guards
    credentials: CredentialSource
    data_dir: Path
    host: str
    push_branches: bool = False
    cancelled: Callable[[], bool] = field(default=lambda: False)
    """Turns true when the daemon is stopping: a snapshot in progress stops, unrecorded."""


@dataclass
class CycleResult:
    path: str
    branch: str | None = None
    snapshot: str | None = None
    created: bool = False
    files_changed: int = 0
    held_back: list[HeldBack] = field(default_factory=list)
    newly_held: list[HeldBack] = field(default_factory=list)
    nested: list[str] = field(default_factory=list)
    pushes: list[PushRecord] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    """Pushes the remote refused (not the unreachable ones), one line each."""
    retry_in_s: float | None = None
    error: str | None = None


def open_folder(folder: BackupRepo, data_dir: Path) -> pygit2.Repository:
    """The repository of a backed-up folder (its shadow for a plain folder)."""
    path = Path(folder.path)
    if folder.shadow:
        return open_shadow(data_dir, path)
    return open_repository(path)


def back_up(
    folder: BackupRepo,
    settings: FolderSettings,
    ctx: Backup,
    *,
    force_push: bool = False,
    now: float | None = None,
    repo: pygit2.Repository | None = None,
) -> CycleResult:
    """Snapshot ``folder`` and push its snapshot branches; records everything in the store.

    ``repo`` is the folder's repository when the caller keeps it open (its parsed index
    and packs stay cached, which makes an unchanged snapshot much cheaper).
    """
    at = time.time() if now is None else now
    result = CycleResult(folder.path)
    try:
        if repo is None:
            repo = open_folder(folder, ctx.data_dir)
        snap = take_snapshot(repo, guards=ctx.guards, now=at, cancelled=ctx.cancelled)
    except SnapshotInterrupted:
        return result
    except (SnapshotError, OSError, pygit2.GitError) as exc:
        result.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        ctx.store.record_error(folder.path, result.error, at=at)
        return result
    result.branch = snap.branch
    result.snapshot = None if snap.commit is None else str(snap.commit)
    result.created = snap.created
    result.files_changed = snap.files_changed
    result.held_back = snap.held_back
    result.nested = [str(p) for p in snap.nested]
    before = {h.path for h in ctx.store.held(folder.path)}
    result.newly_held = [h for h in snap.held_back if h.path not in before]
    ctx.store.record_check(
        folder.path,
        at=at,
        held=[(h.path, h.reason) for h in snap.held_back],
        snapshot=(snap.branch, str(snap.commit), snap.files_changed) if snap.created else None,
    )
    if settings.push:
        _push_all(repo, folder, settings, ctx, result, force=force_push, at=at)
    return result


def folder_remote(
    repo: pygit2.Repository, folder: BackupRepo, settings: FolderSettings
) -> str | None:
    """Where this folder's snapshots go: the configured remote, else the repository's origin."""
    if settings.remote:
        return settings.remote
    return None if folder.shadow else remote_url(repo)


def folder_host(folder: BackupRepo, host: str) -> str:
    return f"{host}/{shadow_label(folder.path)}" if folder.shadow else host


def _push_all(
    repo: pygit2.Repository,
    folder: BackupRepo,
    settings: FolderSettings,
    ctx: Backup,
    result: CycleResult,
    *,
    force: bool,
    at: float,
) -> None:
    url = folder_remote(repo, folder, settings)
    if url is None:
        return
    host = folder_host(folder, ctx.host)
    for branch in snapshot_branches(repo):
        reference = repo.references.get(snapshot_ref(branch))
        if reference is None:
            continue
        commit = str(reference.target)
        target = snapshot_remote_ref(host, branch)
        previous = ctx.store.push(folder.path, branch, target)
        if previous is not None and previous.pushed_commit == commit:
            continue
        waiting = previous is not None and previous.retry_at is not None and previous.retry_at > at
        if waiting and not force:
            continue
        pushed = push_snapshot(repo, branch, url, host_name=host, credentials=ctx.credentials)
        _record(ctx, folder, branch, pushed, previous, result, at=at)
    if ctx.push_branches and not folder.shadow:
        for pushed in push_branches_ahead(repo, url, credentials=ctx.credentials):
            name = pushed.remote_ref.removeprefix("refs/heads/")
            previous = ctx.store.push(folder.path, name, pushed.remote_ref)
            _record(ctx, folder, name, pushed, previous, result, at=at)


def _record(
    ctx: Backup,
    folder: BackupRepo,
    branch: str,
    pushed: PushResult,
    previous: PushRecord | None,
    result: CycleResult,
    *,
    at: float,
) -> None:
    failures = (previous.failures + 1 if previous else 1) if pushed.status == "unreachable" else 0
    retry_in = min(BACKOFF_START_S * 2 ** (failures - 1), BACKOFF_MAX_S) if failures else None
    if pushed.ok:
        pushed_commit = pushed.local_commit
    else:
        pushed_commit = previous.pushed_commit if previous else None
    record = PushRecord(
        branch=branch,
        remote_ref=pushed.remote_ref,
        status=pushed.status,
        message=pushed.message,
        pushed_commit=pushed_commit,
        at=at,
        failures=failures,
        retry_at=None if retry_in is None else at + retry_in,
    )
    ctx.store.record_push(folder.path, record)
    result.pushes.append(record)
    if retry_in is not None:
        result.retry_in_s = min(retry_in, result.retry_in_s or retry_in)
    refused = not pushed.ok and pushed.status != "unreachable"
    if refused and (previous is None or previous.status != pushed.status):
        result.alerts.append(f"backup of {folder.path} ({branch}) not pushed: {pushed.message}")
    log.info("push %s %s → %s: %s", folder.path, branch, pushed.remote_ref, pushed.status)


def unpushed(repo: pygit2.Repository, branch: str, pushed_commit: str | None) -> int:
    """Snapshots of ``branch`` newer than ``pushed_commit`` (all of them when none was pushed)."""
    newer = snapshots(repo, branch, limit=UNPUSHED_WALK_LIMIT)
    return sum(1 for _ in itertools.takewhile(lambda s: str(s.commit) != pushed_commit, newer))
