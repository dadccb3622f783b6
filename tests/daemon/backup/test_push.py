"""Pushing snapshots and branches to real git servers on 127.0.0.1 (smart HTTP, git daemon)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import Option

from labmind.daemon.backup import (
    CredentialSource,
    Guards,
    KeyringCredentials,
    PushResult,
    StaticCredentials,
    open_shadow,
    push_branches_ahead,
    push_ref,
    push_snapshot,
    remote_url,
    set_network_timeouts,
    take_snapshot,
)

from ..keyrings import MemoryKeyring, no_keyring
from .gitrepo import GitRepo, init_repo
from .gitserver import GitDaemon, HttpGitServer, bare_repo, free_port, reject_pushes

HOST = "box"
REMOTE_REF = "refs/heads/labmind/box/main"
SNAPSHOT = "refs/labmind/snapshots/main"


@pytest.fixture
def bare(served: Path, env: dict[str, str]) -> GitRepo:
    """The server's repository ``project.git``, read with the git CLI."""
    return GitRepo(bare_repo(served, "project.git", env), env)


@pytest.fixture
def credentials(memory_keyring: MemoryKeyring, http_server: HttpGitServer) -> KeyringCredentials:
    """The keyring holds the HTTP server's token under its ``host:port``."""
    store = KeyringCredentials()
    store.set_token(http_server.host, http_server.token)
    return store


def snapshot(repo: GitRepo, text: str) -> str:
    repo.write("train.py", text)
    result = take_snapshot(repo.root, guards=Guards())
    assert result.created
    return str(result.commit)


def remote_refs(bare: GitRepo) -> dict[str, str]:
    """``ref -> commit`` of everything the server holds."""
    out = bare.git("for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines())


def push(repo: GitRepo, url: str, credentials: CredentialSource) -> PushResult:
    return push_snapshot(
        pygit2.Repository(str(repo.root)), "main", url, host_name=HOST, credentials=credentials
    )


def test_the_first_push_creates_the_labmind_branch_and_touches_nothing_of_the_user(
    repo: GitRepo,
    bare: GitRepo,
    http_server: HttpGitServer,
    credentials: KeyringCredentials,
) -> None:
    commit = snapshot(repo, "print('v2')\n")
    repo.git("remote", "add", "origin", http_server.url("project.git"))
    before = repo.user_state()

    result = push(repo, http_server.url("project.git"), credentials)

    assert (result.status, result.ok) == ("pushed", True)
    assert (result.remote_ref, result.local_commit, result.remote_commit) == (
        REMOTE_REF,
        commit,
        None,
    )
    assert (
        result.message
        == f"pushed {commit[:12]} to {REMOTE_REF} on {http_server.url('project.git')}"
    )
    assert remote_refs(bare) == {REMOTE_REF: commit}
    assert bare.show(REMOTE_REF, "train.py") == "print('v2')\n"
    assert bare.git("fsck", "--strict", "--no-progress").strip() == ""
    assert repo.user_state() == before
    assert repo.git("for-each-ref", "--format=%(refname)").split() == ["refs/heads/main", SNAPSHOT]
    assert not (repo.root / ".git" / "FETCH_HEAD").exists()
    assert http_server.auth.rejected == 0 and http_server.pushes == 1


def test_a_second_snapshot_is_pushed_as_a_fast_forward(
    repo: GitRepo, bare: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    first = snapshot(repo, "print('v2')\n")
    assert push(repo, http_server.url("project.git"), credentials).status == "pushed"
    second = snapshot(repo, "print('v3')\n")

    result = push(repo, http_server.url("project.git"), credentials)

    assert result.status == "pushed"
    assert (result.local_commit, result.remote_commit) == (second, first)
    assert bare.rev(REMOTE_REF) == second and bare.rev(f"{REMOTE_REF}^") == first
    assert bare.show(REMOTE_REF, "train.py") == "print('v3')\n"


def test_pushing_again_without_a_new_snapshot_is_up_to_date_and_uploads_nothing(
    repo: GitRepo, bare: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    commit = snapshot(repo, "print('v2')\n")
    push(repo, http_server.url("project.git"), credentials)
    uploads = http_server.pushes

    result = push(repo, http_server.url("project.git"), credentials)

    assert (result.status, result.ok) == ("up_to_date", True)
    assert result.local_commit == result.remote_commit == commit
    assert "already at" in result.message
    assert http_server.pushes == uploads


def test_a_wrong_token_fails_after_one_rejected_attempt(
    repo: GitRepo,
    bare: GitRepo,
    http_server: HttpGitServer,
    memory_keyring: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "ghp_wrongwrongwrongwrongwrongwrongwrong"
    store = KeyringCredentials()
    store.set_token(http_server.host, wrong)
    snapshot(repo, "print('v2')\n")
    before = repo.user_state()
    caplog.set_level(logging.DEBUG)

    result = push(repo, http_server.url("project.git"), store)

    assert (result.status, result.ok) == ("auth_failed", False)
    assert result.message == f"authentication failed: {http_server.host} refused the credentials"
    assert http_server.auth.rejected == 1
    assert http_server.auth.accepted == 0
    assert remote_refs(bare) == {}
    assert repo.user_state() == before
    assert wrong not in caplog.text and wrong not in repr(result)


def test_a_token_without_write_access_is_an_auth_failure(
    repo: GitRepo, bare: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    http_server.read_only = True
    snapshot(repo, "print('v2')\n")

    result = push(repo, http_server.url("project.git"), credentials)

    assert result.status == "auth_failed"
    assert "403" in result.message
    assert remote_refs(bare) == {}


def test_no_stored_token_is_an_auth_failure_that_sends_nothing(
    repo: GitRepo, bare: GitRepo, http_server: HttpGitServer, memory_keyring: MemoryKeyring
) -> None:
    snapshot(repo, "print('v2')\n")

    result = push(repo, http_server.url("project.git"), KeyringCredentials())

    assert result.status == "auth_failed"
    assert f"{http_server.host} wants a token and none is stored for it" in result.message
    assert http_server.auth.rejected == 0
    assert remote_refs(bare) == {}


def test_a_keyring_without_backend_is_an_auth_failure_with_the_reason(
    repo: GitRepo, http_server: HttpGitServer
) -> None:
    snapshot(repo, "print('v2')\n")

    result = push(repo, http_server.url("project.git"), KeyringCredentials(backend=no_keyring()))

    assert result.status == "auth_failed"
    assert "no keyring backend is available" in result.message


def test_a_pre_receive_hook_rejection_is_reported_with_the_hooks_message(
    repo: GitRepo, bare: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    reject_pushes(bare.root, "GH013: Repository rule violations found: secret detected")
    commit = snapshot(repo, "print('v2')\n")
    before = repo.user_state()

    result = push(repo, http_server.url("project.git"), credentials)

    assert (result.status, result.ok) == ("rejected", False)
    assert result.local_commit == commit
    assert "pre-receive hook declined" in result.message
    assert "GH013: Repository rule violations found: secret detected" in result.message
    assert "\n" not in result.message
    assert remote_refs(bare) == {}
    assert repo.rev(SNAPSHOT) == commit  # the snapshot stays here
    assert repo.user_state() == before


def test_a_remote_someone_else_moved_is_reported_and_never_forced(
    repo: GitRepo,
    bare: GitRepo,
    http_server: HttpGitServer,
    credentials: KeyringCredentials,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    snapshot(repo, "print('v2')\n")
    assert push(repo, http_server.url("project.git"), credentials).status == "pushed"
    other = init_repo(tmp_path / "elsewhere", env)
    other.write("theirs.txt", "theirs\n")
    theirs = other.commit_all("pushed from another machine")
    other.git("push", "-q", "--force", str(bare.root), f"HEAD:{REMOTE_REF}")
    ours = snapshot(repo, "print('v3')\n")
    uploads = http_server.pushes
    before = repo.user_state()

    result = push(repo, http_server.url("project.git"), credentials)

    assert (result.status, result.ok) == ("non_fast_forward", False)
    assert (result.local_commit, result.remote_commit) == (ours, theirs)
    assert "nothing forced" in result.message
    assert "holds commits this repository does not have" in result.message
    assert bare.rev(REMOTE_REF) == theirs
    assert http_server.pushes == uploads
    assert repo.rev(SNAPSHOT) == ours
    assert repo.user_state() == before


def test_an_offline_server_is_unreachable_and_the_push_succeeds_once_it_is_back(
    repo: GitRepo, bare: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    commit = snapshot(repo, "print('v2')\n")
    http_server.offline()

    offline = push(repo, http_server.url("project.git"), credentials)

    assert (offline.status, offline.ok) == ("unreachable", False)
    assert offline.message.startswith(f"cannot reach {http_server.url('project.git')}: ")
    assert "Connection refused" in offline.message
    assert remote_refs(bare) == {}

    http_server.online()
    back = push(repo, http_server.url("project.git"), credentials)

    assert back.status == "pushed"
    assert bare.rev(REMOTE_REF) == commit


@pytest.fixture
def short_timeouts() -> Iterator[None]:
    """libgit2's process-wide timeouts set short, and put back afterwards."""
    connect = pygit2.option(Option.GET_SERVER_CONNECT_TIMEOUT)
    io = pygit2.option(Option.GET_SERVER_TIMEOUT)
    set_network_timeouts(connect_s=0.3, io_s=0.3)
    yield
    pygit2.option(Option.SET_SERVER_CONNECT_TIMEOUT, connect)
    pygit2.option(Option.SET_SERVER_TIMEOUT, io)


def test_a_server_that_never_answers_times_out_as_unreachable(
    repo: GitRepo, short_timeouts: None, memory_keyring: MemoryKeyring
) -> None:
    snapshot(repo, "print('v2')\n")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete, nobody ever reads or answers
        port = silent.getsockname()[1]

        result = push(repo, f"http://127.0.0.1:{port}/project.git", KeyringCredentials())

    assert result.status == "unreachable"
    assert "timed out" in result.message


def test_an_ssh_url_to_a_closed_port_is_unreachable(repo: GitRepo) -> None:
    snapshot(repo, "print('v2')\n")

    result = push(repo, f"ssh://git@127.0.0.1:{free_port()}/project.git", StaticCredentials())

    assert result.status == "unreachable"


def test_a_missing_repository_on_the_server_is_an_error(
    repo: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    snapshot(repo, "print('v2')\n")

    result = push(repo, http_server.url("nothing-here.git"), credentials)

    assert result.status == "error"
    assert "404" in result.message


def test_git_daemon_takes_pushes_without_credentials(
    repo: GitRepo, bare: GitRepo, git_daemon: GitDaemon
) -> None:
    url = git_daemon.url("project.git")
    first = snapshot(repo, "print('v2')\n")
    before = repo.user_state()

    pushed = push(repo, url, StaticCredentials())
    again = push(repo, url, StaticCredentials())

    assert [pushed.status, again.status] == ["pushed", "up_to_date"]
    assert repo.user_state() == before
    second = snapshot(repo, "print('v3')\n")
    before = repo.user_state()

    later = push(repo, url, StaticCredentials())

    assert (later.status, later.remote_commit, later.local_commit) == ("pushed", first, second)
    assert bare.rev(REMOTE_REF) == second
    assert repo.user_state() == before


def test_a_folders_shadow_repository_pushes_its_snapshots(
    tmp_path: Path, bare: GitRepo, git_daemon: GitDaemon
) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "analysis.py").write_text("print('plots')\n")
    shadow = open_shadow(tmp_path / "data", folder)
    made = take_snapshot(shadow, guards=Guards())

    result = push_snapshot(
        shadow,
        "main",
        git_daemon.url("project.git"),
        host_name=HOST,
        credentials=StaticCredentials(),
    )

    assert result.status == "pushed"
    assert bare.rev(REMOTE_REF) == str(made.commit)
    assert bare.show(REMOTE_REF, "analysis.py") == "print('plots')\n"
    assert not (folder / ".git").exists()


def test_without_a_snapshot_there_is_nothing_to_push_and_the_server_is_not_asked(
    repo: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    result = push(repo, http_server.url("project.git"), credentials)

    assert result.status == "error"
    assert result.message == f"nothing to push: no {SNAPSHOT} here"
    assert http_server.auth.missing == http_server.auth.accepted == 0


def test_bad_ref_names_are_a_programming_error(repo: GitRepo, git_daemon: GitDaemon) -> None:
    pygit_repo = pygit2.Repository(str(repo.root))
    with pytest.raises(ValueError, match="not a valid full ref name"):
        push_snapshot(
            pygit_repo,
            "main",
            git_daemon.url("x.git"),
            host_name="my box",
            credentials=StaticCredentials(),
        )
    with pytest.raises(ValueError, match="not a valid full ref name"):
        push_ref(
            pygit_repo,
            git_daemon.url("x.git"),
            "main",
            "refs/heads/main",
            credentials=StaticCredentials(),
        )


def test_tokens_never_reach_results_or_logs(
    repo: GitRepo,
    bare: GitRepo,
    http_server: HttpGitServer,
    credentials: KeyringCredentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = http_server.token
    in_url = http_server.url("project.git").replace("://", f"://x-access-token:{token}@")
    snapshot(repo, "print('v2')\n")
    results = [push(repo, in_url, credentials)]
    reject_pushes(bare.root, f"refusing; you sent {token[:3]}...")
    snapshot(repo, "print('v3')\n")
    results.append(push(repo, in_url, credentials))
    http_server.offline()
    results.append(push(repo, in_url, credentials))

    assert [r.status for r in results] == ["pushed", "rejected", "unreachable"]
    for result in results:
        assert token not in result.message and token not in repr(result)
        assert f"http://***@{http_server.host}/" in result.message
    assert caplog.records, "push outcomes are logged"
    assert token not in caplog.text


def test_remote_url_reads_the_config_and_never_writes_it(repo: GitRepo) -> None:
    pygit_repo = pygit2.Repository(str(repo.root))
    assert remote_url(pygit_repo) is None
    repo.git("remote", "add", "origin", "https://github.com/me/project.git")
    repo.git("remote", "add", "mirror", "https://example.org/project.git")
    repo.git("config", "remote.mirror.pushurl", "git@example.org:me/project.git")
    config = (repo.root / ".git" / "config").read_bytes()

    pygit_repo = pygit2.Repository(str(repo.root))
    assert remote_url(pygit_repo) == "https://github.com/me/project.git"
    assert remote_url(pygit_repo, "mirror") == "git@example.org:me/project.git"
    assert remote_url(pygit_repo, "upstream") is None
    assert (repo.root / ".git" / "config").read_bytes() == config


def track(repo: GitRepo, name: str) -> None:
    """Make ``name`` track ``origin/<name>`` (the config ``git push -u`` writes)."""
    repo.git("config", f"branch.{name}.remote", "origin")
    repo.git("config", f"branch.{name}.merge", f"refs/heads/{name}")


def commit_on(repo: GitRepo, branch: str, text: str) -> str:
    repo.git("checkout", "-q", branch)
    repo.write(f"{branch}.txt", text)
    commit = repo.commit_all(f"{branch}: {text.strip()}")
    repo.git("checkout", "-q", "main")
    return commit


def test_opt_in_branch_push_only_fast_forwards(
    repo: GitRepo, bare: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    url = http_server.url("project.git")
    repo.git("remote", "add", "origin", url)
    names = ("ahead", "behind", "diverged", "same", "untracked")
    for name in (*names, "theirs", "gone"):
        repo.git("branch", name)
    repo.git("push", "-q", str(bare.root), *names)
    for name in ("ahead", "behind", "diverged", "same", "gone"):
        track(repo, name)
    ahead = commit_on(repo, "ahead", "more work\n")
    forward = commit_on(repo, "behind", "pushed from here, then reset\n")
    repo.git("push", "-q", str(bare.root), "behind")
    repo.git("branch", "-f", "behind", "behind~1")
    theirs = commit_on(repo, "theirs", "someone else's\n")
    repo.git("push", "-q", str(bare.root), "theirs:diverged")
    repo.git("branch", "-D", "-q", "theirs")
    commit_on(repo, "diverged", "mine\n")
    commit_on(repo, "untracked", "no upstream\n")
    commit_on(repo, "gone", "upstream never pushed\n")
    remote_before = remote_refs(bare)
    before = repo.user_state()

    results = push_branches_ahead(pygit2.Repository(str(repo.root)), url, credentials=credentials)

    assert [(r.remote_ref, r.status) for r in results] == [
        ("refs/heads/ahead", "pushed"),
        ("refs/heads/behind", "non_fast_forward"),
        ("refs/heads/diverged", "non_fast_forward"),
        ("refs/heads/same", "up_to_date"),
    ]
    assert "it is ahead of refs/heads/behind" in results[1].message
    assert "it has diverged from refs/heads/diverged" in results[2].message
    assert remote_refs(bare) == {**remote_before, "refs/heads/ahead": ahead}
    assert remote_before["refs/heads/behind"] == forward
    assert remote_before["refs/heads/diverged"] == theirs
    assert repo.user_state() == before
    assert http_server.pushes == 1


def test_branch_push_with_no_tracking_branches_contacts_nobody(
    repo: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    assert (
        push_branches_ahead(
            pygit2.Repository(str(repo.root)),
            http_server.url("project.git"),
            credentials=credentials,
        )
        == []
    )
    assert http_server.auth.missing == 0


def test_branch_push_to_an_offline_server_reports_every_branch_unreachable(
    repo: GitRepo, http_server: HttpGitServer, credentials: KeyringCredentials
) -> None:
    repo.git("branch", "feature")
    track(repo, "main")
    track(repo, "feature")
    http_server.offline()

    results = push_branches_ahead(
        pygit2.Repository(str(repo.root)), http_server.url("project.git"), credentials=credentials
    )

    assert [(r.remote_ref, r.status) for r in results] == [
        ("refs/heads/feature", "unreachable"),
        ("refs/heads/main", "unreachable"),
    ]
