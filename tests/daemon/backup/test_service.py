"""The daemon's backup service with real repositories, a real store and real git servers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pygit2
import pytest
from typer.testing import CliRunner

from labmind.daemon.backup.credentials import StaticCredentials
from labmind.daemon.backups import BackupService
from labmind.daemon.cli import app
from labmind.daemon.config import BackupConfig
from labmind.daemon.events import EventBus
from labmind.daemon.protocol import RestoreRequest
from labmind.daemon.server import ApiError
from labmind.daemon.store import Store

from ..keyrings import MemoryKeyring, no_keyring
from .gitrepo import GitRepo, init_repo, worktree_fingerprint
from .gitserver import GitDaemon, HttpGitServer, bare_repo, wait_until

HOST = "testhost"


class Recorder:
    """A real event bus on its own loop, with every published event collected."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.events: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.bus.bind(self._loop)

        async def collect() -> None:
            events = self.bus.subscribe()
            self._ready.set()
            async for event in events:
                self.events.append(event)

        self._loop.run_until_complete(collect())

    def alerts(self) -> list[str]:
        return [e["message"] for e in self.events if e["type"] == "alert"]

    def close(self) -> None:
        self.bus.close()
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.sqlite3")
    yield store
    store.close()


Make = Any


@pytest.fixture
def make_service(tmp_path: Path, store: Store, recorder: Recorder) -> Iterator[Any]:
    services: list[BackupService] = []

    def make(tokens: dict[str, str] | None = None, **settings: Any) -> BackupService:
        config = BackupConfig.model_validate({"host": HOST, **settings})
        service = BackupService(
            store,
            recorder.bus,
            config,
            tmp_path / "data",
            credentials=StaticCredentials(tokens or {}),
        )
        services.append(service)
        return service

    yield make
    for service in services:
        service.stop()


def settled(recorder: Recorder, count: int) -> None:
    wait_until(lambda: len(recorder.events) >= count, f"{count} events")


def remote_head(bare: Path, ref: str) -> str | None:
    repo = pygit2.Repository(str(bare))
    found = repo.references.get(ref)
    return None if found is None else str(found.target)


def test_backup_now_snapshots_and_pushes_without_touching_the_repository(
    repo: GitRepo, http_server: HttpGitServer, served: Path, env: dict[str, str], make_service: Make
) -> None:
    bare = bare_repo(served, "project.git", env)
    repo.git("remote", "add", "origin", http_server.url("project.git"))
    repo.write("train.py", "print('train harder')\n")
    before = repo.user_state()
    service = make_service({http_server.host: http_server.token})
    service.sync_roots([str(repo.root)])

    [outcome] = service.now(None)

    assert outcome.created and outcome.files_changed == 1 and outcome.error is None
    assert [(p.status, p.remote_ref) for p in outcome.pushes] == [
        ("pushed", f"refs/heads/labmind/{HOST}/main")
    ]
    assert remote_head(bare, f"refs/heads/labmind/{HOST}/main") == outcome.snapshot
    assert repo.user_state() == before
    [status] = service.status().repos
    assert (status.branch, status.last_snapshot, status.unpushed) == ("main", outcome.snapshot, 0)
    assert status.remote == http_server.url("project.git")

    [again] = service.now(None)
    assert not again.created and again.pushes == []


def test_plain_folder_gets_a_shadow_and_a_nested_repository_its_own_backup(
    tmp_path: Path, env: dict[str, str], make_service: Make
) -> None:
    folder = tmp_path / "notes"
    (folder / "ideas.md").parent.mkdir(parents=True)
    (folder / "ideas.md").write_text("# ideas\n")
    nested = init_repo(folder / "side-project", env)
    nested.write("main.py", "print(1)\n")
    nested.commit_all("start")
    nested.write("main.py", "print(2)\n")
    service = make_service()
    service.sync_roots([str(folder)])

    outcomes = {Path(o.path).name: o for o in service.now(str(folder))}

    assert set(outcomes) == {"notes", "side-project"}
    assert outcomes["notes"].created and outcomes["side-project"].created
    assert not (folder / ".git").exists()
    [shadow] = [r for r in service.status().repos if r.shadow]
    assert shadow.path == str(folder)
    snap = nested.rev("refs/labmind/snapshots/main")
    assert nested.show(snap, "main.py") == "print(2)\n"


def test_held_back_secret_is_reported_once_and_listed_in_status(
    repo: GitRepo, make_service: Make, recorder: Recorder
) -> None:
    repo.write(".env", "API_KEY=abc\n")
    repo.write("train.py", "print('with a secret nearby')\n")
    service = make_service()
    service.sync_roots([str(repo.root)])

    [first] = service.now(None)
    settled(recorder, 2)
    [second] = service.now(None)
    settled(recorder, 3)

    assert [h.path for h in first.held_back] == [".env"]
    assert [h.path for h in second.held_back] == [".env"]
    assert ".env" not in repo.tree_files("refs/labmind/snapshots/main")
    alerts = recorder.alerts()
    assert len(alerts) == 1 and ".env" in alerts[0]
    [status] = service.status().repos
    assert [(h.path, h.reason) for h in status.held_back] == [(".env", first.held_back[0].reason)]


def test_edits_are_snapshotted_once_the_quiet_period_passes(
    repo: GitRepo, make_service: Make
) -> None:
    service = make_service(quiet_s=0.2, interval_min=60)
    service.start([str(repo.root)])
    changed = repo.write("train.py", "print('edited')\n")

    service.edited([changed])

    wait_until(
        lambda: getattr(service.records.repo(str(repo.root)), "snapshot_commit", None) is not None,
        "the quiet-period snapshot",
    )
    assert repo.show("refs/labmind/snapshots/main", "train.py") == "print('edited')\n"


def test_pause_is_remembered_and_backup_now_still_works(
    repo: GitRepo, make_service: Make, store: Store
) -> None:
    service = make_service(quiet_s=0.2)
    service.start([str(repo.root)])
    service.set_paused(True)
    service.edited([repo.write("train.py", "print('paused')\n")])

    status = service.status()
    assert status.paused and status.repos[0].next_check_at is None
    assert make_service().paused

    [outcome] = service.now(None)
    assert outcome.created
    service.set_paused(False)
    assert not make_service().paused


def test_unreachable_remote_backs_off_and_pushes_once_back(
    repo: GitRepo, http_server: HttpGitServer, served: Path, env: dict[str, str], make_service: Make
) -> None:
    bare = bare_repo(served, "project.git", env)
    repo.git("remote", "add", "origin", http_server.url("project.git"))
    service = make_service({http_server.host: http_server.token})
    service.start([str(repo.root)])
    repo.write("train.py", "print('offline')\n")
    http_server.offline()

    started = time.time()
    [offline] = service.now(None)

    [push] = offline.pushes
    assert push.status == "unreachable" and push.retry_at is not None
    assert push.retry_at >= started + 60
    next_check = service.scheduler.next_run(str(repo.root))
    assert next_check is not None and next_check <= push.retry_at + 1

    http_server.online()
    [online] = service.now(None)
    assert [p.status for p in online.pushes] == ["pushed"]
    assert remote_head(bare, f"refs/heads/labmind/{HOST}/main") == online.snapshot


def test_diverged_remote_is_reported_once_and_never_forced(
    repo: GitRepo,
    http_server: HttpGitServer,
    served: Path,
    env: dict[str, str],
    make_service: Make,
    recorder: Recorder,
) -> None:
    bare = bare_repo(served, "project.git", env)
    other = init_repo(served.parent / "other", env)
    other.write("x.txt", "someone else\n")
    theirs = other.commit_all("elsewhere")
    other.git("push", "-q", str(bare), f"HEAD:refs/heads/labmind/{HOST}/main")
    repo.git("remote", "add", "origin", http_server.url("project.git"))
    service = make_service({http_server.host: http_server.token})
    service.sync_roots([str(repo.root)])
    repo.write("train.py", "print('mine')\n")

    [first] = service.now(None)
    repo.write("train.py", "print('mine, again')\n")
    [second] = service.now(None)
    settled(recorder, 3)

    assert [p.status for p in first.pushes] == ["non_fast_forward"]
    assert [p.status for p in second.pushes] == ["non_fast_forward"]
    assert remote_head(bare, f"refs/heads/labmind/{HOST}/main") == theirs
    assert len([a for a in recorder.alerts() if "not pushed" in a]) == 1
    assert second.created


def test_log_and_restore_write_a_snapshot_into_a_new_folder(
    repo: GitRepo, tmp_path: Path, make_service: Make
) -> None:
    service = make_service()
    service.sync_roots([str(repo.root)])
    repo.write("train.py", "print('v1')\n")
    [first] = service.now(None)
    repo.write("train.py", "print('v2')\n")
    [second] = service.now(None)
    assert first.snapshot and second.snapshot

    log = service.history(str(repo.root / "train.py"), None, 10)

    assert [e.commit for e in log] == [second.snapshot, first.snapshot]
    assert not any(e.pushed for e in log)
    target = tmp_path / "restored"
    result = service.restore(
        RestoreRequest(path=str(repo.root), at=first.snapshot[:10], to=str(target))
    )
    assert result.commit == first.snapshot
    assert (target / "train.py").read_text() == "print('v1')\n"
    latest = service.restore(RestoreRequest(path=str(repo.root), at="0s", to=str(tmp_path / "now")))
    assert latest.commit == second.snapshot


def test_restore_refuses_a_folder_with_files_and_leaves_it_alone(
    repo: GitRepo, tmp_path: Path, make_service: Make
) -> None:
    service = make_service()
    service.sync_roots([str(repo.root)])
    repo.write("train.py", "print('v1')\n")
    [outcome] = service.now(None)
    assert outcome.snapshot
    before = worktree_fingerprint(repo.root)

    with pytest.raises(ApiError) as refused:
        service.restore(RestoreRequest(path=str(repo.root), at=outcome.snapshot, to=str(repo.root)))

    assert refused.value.status == 400 and "not empty" in refused.value.detail
    assert worktree_fingerprint(repo.root) == before
    with pytest.raises(ApiError) as unknown:
        service.restore(
            RestoreRequest(path=str(repo.root), at="no-such-thing", to=str(tmp_path / "x"))
        )
    assert unknown.value.status == 400


def test_a_folder_that_stops_being_watched_is_no_longer_backed_up(
    repo: GitRepo, make_service: Make
) -> None:
    service = make_service()
    service.start([str(repo.root)])
    assert service.scheduler.next_run(str(repo.root)) is not None

    service.sync_roots([])

    assert service.status().repos == []
    assert service.scheduler.next_run(str(repo.root)) is None
    with pytest.raises(ApiError) as gone:
        service.now(str(repo.root))
    assert gone.value.status == 404


def test_a_vanished_folder_is_reported_and_the_others_still_back_up(
    repo: GitRepo, tmp_path: Path, make_service: Make, recorder: Recorder
) -> None:
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    (doomed / "a.txt").write_text("a\n")
    service = make_service()
    service.sync_roots([str(repo.root), str(doomed)])
    (doomed / "a.txt").unlink()
    doomed.rmdir()

    outcomes = {o.path: o for o in service.now(None)}

    assert outcomes[str(doomed)].error is not None
    assert outcomes[str(repo.root)].error is None
    settled(recorder, 3)
    assert any(str(doomed) in a for a in recorder.alerts())


def test_backup_token_stores_and_forgets_a_token_in_the_keyring(
    memory_keyring: MemoryKeyring,
) -> None:
    runner = CliRunner()

    stored = runner.invoke(app, ["backup", "token", "github.com"], input="ghp_secret\n")
    forgotten = runner.invoke(app, ["backup", "token", "github.com", "--delete"])
    again = runner.invoke(app, ["backup", "token", "github.com", "--delete"])

    assert stored.exit_code == 0 and "ghp_secret" not in stored.output
    assert forgotten.exit_code == 0 and "removed" in forgotten.output
    assert again.exit_code == 0 and "no token stored" in again.output
    assert memory_keyring.passwords == {}


def test_backup_token_without_a_keyring_is_one_clear_line() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(no_keyring())
    try:
        result = CliRunner().invoke(app, ["backup", "token", "github.com"], input="tok\n")
    finally:
        keyring.set_keyring(previous)
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "keyring" in result.output


def test_opted_in_branches_ahead_of_their_upstream_are_pushed_fast_forward(
    repo: GitRepo, git_daemon: GitDaemon, served: Path, env: dict[str, str], make_service: Make
) -> None:
    bare = bare_repo(served, "project.git", env)
    repo.git("remote", "add", "origin", git_daemon.url("project.git"))
    repo.git("push", "-q", "-u", "origin", "main")
    repo.write("train.py", "print('committed, not pushed')\n")
    ahead = repo.commit_all("ahead of origin")
    before = repo.user_state()
    service = make_service(push_branches=True)
    service.sync_roots([str(repo.root)])

    [outcome] = service.now(None)

    pushed = {p.remote_ref: p.status for p in outcome.pushes}
    assert pushed == {"refs/heads/main": "pushed"}
    assert remote_head(bare, "refs/heads/main") == ahead
    assert repo.user_state() == before
