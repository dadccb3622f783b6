"""The backup side of the daemon: which folders are backed up, when, and the backup routes.

Every watched folder is backed up: a repository in place (snapshots on
``refs/labmind/snapshots/<branch>``), a plain folder through a shadow repository in
the data folder, and repositories found nested inside either as folders of their own.
`BackupScheduler` runs the backups (interval, quiet period after edits, retries with
backoff); ``backup now`` runs them at once. Pausing stops the scheduled backups and is
remembered across restarts; ``backup now`` still works while paused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pygit2

from .backup.credentials import CredentialSource, KeyringCredentials
from .backup.guards import Guards, HeldBack
from .backup.history import resolve_snapshot, snapshots
from .backup.push import mask_url, set_network_timeouts, snapshot_remote_ref
from .backup.restore import restore
from .backup.snapshot import SnapshotError, current_branch, take_snapshot
from .backup_cycle import (
    Backup,
    CycleResult,
    back_up,
    folder_host,
    folder_remote,
    folder_settings,
    host_name,
    open_folder,
    unpushed,
)
from .backup_schedule import BackupScheduler
from .backup_store import BackupRepo, BackupStore, HeldFile, PushRecord
from .config import BackupConfig
from .events import EventBus
from .protocol import (
    BackupOutcome,
    BackupRepoStatus,
    BackupStatus,
    HeldBackFile,
    PushState,
    RestoreRequest,
    RestoreResult,
    SnapshotEntry,
)
from .server import ApiError
from .store import Store

log = logging.getLogger("labmind.backup")

PAUSED_KEY = "backup.paused"
NESTED_FIRST_RUN_S = 1.0
MAX_ALERT_FILES = 20


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _held_now(items: Iterable[HeldBack], since: float) -> list[HeldBackFile]:
    return [HeldBackFile(path=h.path, reason=h.reason, since=since) for h in items]


def _held_stored(items: Iterable[HeldFile]) -> list[HeldBackFile]:
    return [HeldBackFile(path=h.path, reason=h.reason, since=h.at) for h in items]


def _push_state(p: PushRecord) -> PushState:
    return PushState.model_validate(p, from_attributes=True)


class BackupService:
    """Owns the backed-up folders, their schedule and the backup routes."""

    def __init__(
        self,
        store: Store,
        events: EventBus,
        config: BackupConfig,
        data_dir: Path,
        *,
        credentials: CredentialSource | None = None,
    ) -> None:
        self.records = BackupStore(store)
        self.store = store
        self.events = events
        self.config = config
        self.data_dir = data_dir
        self.credentials = credentials if credentials is not None else KeyringCredentials()
        self.scheduler = BackupScheduler(self._scheduled)
        self.paused = store.get_meta(PAUSED_KEY) == "1"
        self._lock = threading.Lock()
        self._open_repos: dict[str, pygit2.Repository] = {}
        self._stopping = threading.Event()
        self._guards = self._make_guards(config)

    # -- life cycle --------------------------------------------------------------------------

    def start(self, roots: list[str]) -> None:
        set_network_timeouts()
        self.scheduler.start()
        self.sync_roots(roots)

    def stop(self) -> None:
        """Stop scheduling; a snapshot in progress stops between files, a push finishes."""
        self._stopping.set()
        self.scheduler.shutdown()

    def reconfigure(self, config: BackupConfig) -> None:
        """New intervals, guards and remotes apply from the next backup on."""
        self.config = config
        self._guards = self._make_guards(config)
        for folder in self.records.repos():
            self._schedule(folder.path)

    def sync_roots(self, roots: Iterable[str]) -> None:
        """Back up exactly the folders found under the watched ``roots``."""
        wanted = set(roots)
        for folder in self.records.repos():
            if folder.root not in wanted:
                self.scheduler.forget(folder.path)
                self.records.remove(folder.path)
        for root in sorted(wanted):
            self._add(root, root=root, shadow=not (Path(root) / ".git").exists())

    def edited(self, paths: Iterable[Path]) -> None:
        """Files changed: back up their folders once the quiet period passes without edits."""
        if self.config.quiet_s <= 0 or not self.config.enabled or self.paused:
            return
        folders = [f.path for f in self.records.repos()]
        owners = {self._owner_of(str(p), folders) for p in paths}
        for owner in owners - {None}:
            assert owner is not None
            if folder_settings(self.config, owner).enabled:
                self.scheduler.edited(owner, self.config.quiet_s)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.store.set_meta(PAUSED_KEY, "1" if paused else "0")
        self.events.publish({"type": "backup_paused", "paused": paused})

    # -- routes ------------------------------------------------------------------------------

    def now(self, path: str | None) -> list[BackupOutcome]:
        """Back up ``path``'s folder (every folder when ``None``) now, retrying refused pushes."""
        if not self.config.enabled:
            raise ApiError(
                409, "backup is off; turn it on with `labmind config set backup.enabled true`"
            )
        if path is None:
            todo = [f.path for f in self.records.repos()]
        else:
            todo = [self._folder_of(path).path]
        outcomes: list[BackupOutcome] = []
        done: set[str] = set()
        while todo:
            folder = todo.pop(0)
            if folder in done or not folder_settings(self.config, folder).enabled:
                continue
            done.add(folder)
            result = self._run(folder, force_push=True)
            if result is None:
                continue
            outcomes.append(self._outcome(result))
            todo.extend(n for n in result.nested if n not in done)
        return outcomes

    def status(self) -> BackupStatus:
        return BackupStatus(
            enabled=self.config.enabled,
            paused=self.paused,
            push=self.config.push,
            repos=[self._repo_status(f) for f in self.records.repos()],
        )

    def history(self, path: str, branch: str | None, limit: int) -> list[SnapshotEntry]:
        folder = self._folder_of(path)
        repo = self._open(folder)
        name = branch or current_branch(repo)
        target = snapshot_remote_ref(folder_host(folder, host_name(self.config)), name)
        record = self.records.push(folder.path, name, target)
        pushed = False
        entries: list[SnapshotEntry] = []
        for snap in snapshots(repo, name, limit=limit):
            pushed = pushed or (record is not None and str(snap.commit) == record.pushed_commit)
            entries.append(
                SnapshotEntry(
                    commit=str(snap.commit), time=snap.time, message=snap.message, pushed=pushed
                )
            )
        return entries

    def restore(self, req: RestoreRequest) -> RestoreResult:
        folder = self._folder_of(req.path)
        repo = self._open(folder)
        target = Path(req.to).expanduser().resolve()
        try:
            snap = resolve_snapshot(repo, req.branch or current_branch(repo), req.at)
            files = restore(repo, snap.commit, target)
        except SnapshotError as exc:
            raise ApiError(400, str(exc)) from exc
        except OSError as exc:
            raise ApiError(400, f"cannot restore into {target}: {exc.strerror or exc}") from exc
        return RestoreResult(
            commit=str(snap.commit), time=snap.time, target=str(target), files=files
        )

    def snapshot_code(self, folder: Path) -> str | None:
        """The commit that holds ``folder``'s code as it is now: a snapshot of the
        repository around it (HEAD's commit when nothing changed), or ``None`` outside one."""
        found = pygit2.discover_repository(str(folder))
        if found is None:
            return None
        with self._lock:
            try:
                repo = pygit2.Repository(found)
                if repo.workdir is None:
                    return None
                result = take_snapshot(repo, guards=self._guards)
            except (SnapshotError, pygit2.GitError, OSError) as exc:
                log.warning("no code snapshot of %s: %s", folder, exc)
                return None
        if result.commit is not None:
            return str(result.commit)
        return None if repo.head_is_unborn else str(repo.head.target)

    # -- internals ---------------------------------------------------------------------------

    def _make_guards(self, config: BackupConfig) -> Guards:
        return Guards(
            allow=tuple(config.allow), max_file_bytes=int(config.max_file_mb * 1024 * 1024)
        )

    def _context(self) -> Backup:
        return Backup(
            store=self.records,
            guards=self._guards,
            credentials=self.credentials,
            data_dir=self.data_dir,
            host=host_name(self.config),
            push_branches=self.config.push_branches,
            cancelled=self._stopping.is_set,
        )

    def _add(self, path: str, *, root: str, shadow: bool, first_in_s: float | None = None) -> None:
        if self.records.add(path, root, shadow=shadow, at=time.time()):
            log.info("backing up %s%s", path, " (shadow repository)" if shadow else "")
        self._schedule(path, first_in_s)

    def _schedule(self, path: str, first_in_s: float | None = None) -> None:
        settings = folder_settings(self.config, path)
        if not (self.config.enabled and settings.enabled):
            self.scheduler.forget(path)
            return
        if first_in_s is None:
            self.scheduler.schedule(path, settings.interval_s)
        else:
            self.scheduler.schedule(path, settings.interval_s, first_in_s=first_in_s)

    def _scheduled(self, path: str, reason: str) -> None:
        if self.paused or self._stopping.is_set():
            return
        log.debug("backup of %s (%s)", path, reason)
        self._run(path, force_push=False)

    def _run(self, path: str, *, force_push: bool) -> CycleResult | None:
        with self._lock:
            folder = self.records.repo(path)
            if folder is None:
                self._open_repos.pop(path, None)
                return None
            repo = self._kept_open(folder)
            result = back_up(
                folder,
                folder_settings(self.config, path),
                self._context(),
                force_push=force_push,
                repo=repo,
            )
            if result.error is not None:
                self._open_repos.pop(path, None)
        for nested in result.nested:
            self._add(nested, root=folder.root, shadow=False, first_in_s=NESTED_FIRST_RUN_S)
        if result.retry_in_s is not None:
            self.scheduler.retry(path, result.retry_in_s)
        self._publish(folder, result)
        return result

    def _publish(self, folder: BackupRepo, result: CycleResult) -> None:
        self.events.publish(
            {
                "type": "backup",
                "path": result.path,
                "snapshot": result.snapshot,
                "created": result.created,
                "files_changed": result.files_changed,
                "pushes": {p.branch: p.status for p in result.pushes},
                "error": result.error,
            }
        )
        alerts: list[dict[str, object]] = [
            {"kind": "push_refused", "message": message} for message in result.alerts
        ]
        if result.newly_held:
            names = ", ".join(h.path for h in result.newly_held[:3])
            more = len(result.newly_held) - 3
            message = (
                f"backup of {folder.path} holds back {names}"
                + (f" and {more} more" if more > 0 else "")
                + f" ({result.newly_held[0].reason}); see `labmind backup status`"
            )
            alerts.append(
                {
                    "kind": "held_back",
                    "files": [h.path for h in result.newly_held[:MAX_ALERT_FILES]],
                    "count": len(result.newly_held),
                    "reason": result.newly_held[0].reason,
                    "message": message,
                }
            )
        if result.error is not None and result.error != folder.error:
            message = f"backup of {folder.path} failed: {result.error}"
            alerts.append({"kind": "failed", "message": message})
        for alert in alerts:
            self.events.publish({"type": "alert", "source": "backup", "path": folder.path, **alert})

    def _outcome(self, result: CycleResult) -> BackupOutcome:
        return BackupOutcome(
            path=result.path,
            branch=result.branch,
            snapshot=result.snapshot,
            created=result.created,
            files_changed=result.files_changed,
            held_back=_held_now(result.held_back, time.time()),
            pushes=[_push_state(p) for p in result.pushes],
            error=result.error,
        )

    def _repo_status(self, folder: BackupRepo) -> BackupRepoStatus:
        remote: str | None = None
        pending = 0
        branch = folder.snapshot_branch
        pushes = self.records.pushes(folder.path)
        try:
            repo = open_folder(folder, self.data_dir)
            branch = current_branch(repo)
            url = folder_remote(repo, folder, folder_settings(self.config, folder.path))
            remote = None if url is None else mask_url(url)
            target = snapshot_remote_ref(folder_host(folder, host_name(self.config)), branch)
            record = next(
                (p for p in pushes if p.branch == branch and p.remote_ref == target), None
            )
            pending = unpushed(repo, branch, record.pushed_commit if record else None)
        except (SnapshotError, pygit2.GitError, OSError):
            pass
        return BackupRepoStatus(
            path=folder.path,
            root=folder.root,
            shadow=folder.shadow,
            branch=branch,
            last_snapshot=folder.snapshot_commit,
            last_snapshot_at=folder.snapshot_at,
            files_changed=folder.files_changed,
            checked_at=folder.checked_at,
            next_check_at=None if self.paused else self.scheduler.next_run(folder.path),
            remote=remote,
            unpushed=pending,
            pushes=[_push_state(p) for p in pushes],
            held_back=_held_stored(self.records.held(folder.path)),
            error=folder.error,
        )

    def _kept_open(self, folder: BackupRepo) -> pygit2.Repository | None:
        """The folder's repository, opened once and kept (call with the lock held)."""
        repo = self._open_repos.get(folder.path)
        if repo is None:
            try:
                repo = open_folder(folder, self.data_dir)
            except (SnapshotError, pygit2.GitError, OSError):
                return None  # back_up opens it again and reports why it cannot
            self._open_repos[folder.path] = repo
        return repo

    def _owner_of(self, path: str, folders: list[str]) -> str | None:
        owners = [f for f in folders if _inside(path, f)]
        return max(owners, key=len, default=None)

    def _folder_of(self, path: str) -> BackupRepo:
        real = str(Path(path).expanduser().resolve())
        owner = self._owner_of(real, [f.path for f in self.records.repos()])
        folder = None if owner is None else self.records.repo(owner)
        if folder is None:
            raise ApiError(404, f"{path} is not backed up; watch it first with `labmind watch add`")
        return folder

    def _open(self, folder: BackupRepo) -> pygit2.Repository:
        try:
            return open_folder(folder, self.data_dir)
        except SnapshotError as exc:
            raise ApiError(409, str(exc)) from exc
