"""Snapshots of real repositories: what goes in, what stays out, and what is never touched."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any

import pygit2
import pytest

from labmind.daemon.backup import (
    ConcurrentSnapshotError,
    Guards,
    SnapshotError,
    SnapshotInterrupted,
    restore,
    take_snapshot,
    update_ref_if_unchanged,
)
from labmind.daemon.backup import snapshot as snapshot_module

from .gitrepo import GitRepo, init_repo

REF = "refs/labmind/snapshots/main"


def test_snapshot_records_modified_new_and_deleted_files_on_top_of_head(
    repo: GitRepo, guards: Guards
) -> None:
    head = repo.rev("HEAD")
    repo.write("train.py", "print('train v2')\n")
    repo.write("eval.py", "print('eval')\n")
    (repo.root / "data" / "readme.md").unlink()

    result = take_snapshot(repo.root, guards=guards, now=1_700_000_000)

    assert result.created and not result.unchanged
    assert (result.branch, result.ref) == ("main", REF)
    assert repo.rev(REF) == str(result.commit)
    assert repo.rev(f"{REF}^") == head
    files = repo.tree_files(REF)
    assert set(files) == {".gitignore", "train.py", "eval.py"}
    assert repo.show(REF, "train.py") == "print('train v2')\n"
    assert result.files_changed == 3
    message = repo.git("log", "-1", "--format=%an <%ae>|%s|%at", REF).strip()
    assert (
        message
        == "labmind <labmind@localhost>|labmind snapshot of main: 3 files changed|1700000000"
    )
    assert result.held_back == [] and result.nested == []


def test_the_users_index_head_branches_config_and_files_are_untouched(
    repo: GitRepo, guards: Guards
) -> None:
    repo.git("branch", "side")
    repo.write("train.py", "print('staged')\n")
    repo.git("add", "train.py")
    repo.write("train.py", "print('staged then edited')\n")
    repo.write("notes.txt", "untracked\n")
    (repo.root / "data" / "readme.md").unlink()
    before = repo.user_state()

    first = take_snapshot(repo.root, guards=guards)
    repo.write("notes.txt", "more\n")
    second = take_snapshot(repo.root, guards=Guards())
    repo.write("notes.txt", "untracked\n")

    assert first.created and second.created
    assert repo.user_state() == before
    assert repo.show(REF, "train.py") == "print('staged then edited')\n"
    assert repo.git("fsck", "--strict", "--no-progress").strip() == ""


def test_ignored_files_stay_out(repo: GitRepo, guards: Guards) -> None:
    repo.write("run.log", "loss 0.1\n")
    repo.write("checkpoints/model.bin", "weights")
    repo.write("kept.txt", "kept\n")

    take_snapshot(repo.root, guards=guards)

    assert set(repo.tree_files(REF)) == {".gitignore", "train.py", "data/readme.md", "kept.txt"}


def test_no_change_means_no_commit_and_a_later_edit_chains_on_the_previous_snapshot(
    repo: GitRepo, guards: Guards
) -> None:
    clean = take_snapshot(repo.root, guards=guards)
    assert clean.unchanged and clean.commit is None
    assert repo.git("for-each-ref", "refs/labmind/") == ""

    repo.write("train.py", "print('v2')\n")
    first = take_snapshot(repo.root, guards=guards)
    again = take_snapshot(repo.root, guards=guards)
    assert again.unchanged and again.commit == first.commit

    repo.write("train.py", "print('v3')\n")
    second = take_snapshot(repo.root, guards=guards)
    assert second.created and second.files_changed == 1
    assert repo.rev(f"{REF}^") == str(first.commit)
    assert repo.show(REF, "train.py") == "print('v3')\n"


def test_executable_bits_and_symlinks_survive_a_restore(
    repo: GitRepo, guards: Guards, tmp_path: Path
) -> None:
    repo.write("run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    (repo.root / "latest").symlink_to("data/readme.md")
    (repo.root / "dangling").symlink_to("nowhere/at/all")

    result = take_snapshot(repo.root, guards=guards)

    files = repo.tree_files(REF)
    assert files["run.sh"] == "100755"
    assert files["train.py"] == "100644"
    assert files["latest"] == files["dangling"] == "120000"
    target = tmp_path / "restored"
    written = restore(pygit2.Repository(str(repo.root)), str(result.commit), target)
    assert written == 6
    assert (target / "run.sh").stat().st_mode & stat.S_IXUSR
    assert not (target / "train.py").stat().st_mode & stat.S_IXUSR
    assert (target / "latest").readlink() == Path("data/readme.md")
    assert (target / "latest").read_text() == "# data\n"
    assert (target / "dangling").readlink() == Path("nowhere/at/all")
    assert (target / "data" / "readme.md").read_text() == "# data\n"
    assert not (target / ".git").exists()


def test_restore_refuses_a_folder_that_is_not_empty(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("new.txt", "x\n")
    take_snapshot(repo.root, guards=Guards())
    target = tmp_path / "busy"
    target.mkdir()
    (target / "mine.txt").write_text("precious")

    with pytest.raises(SnapshotError, match="not empty") as caught:
        restore(pygit2.Repository(str(repo.root)), REF, target)

    assert "\n" not in str(caught.value)
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert (target / "mine.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert restore(pygit2.Repository(str(repo.root)), REF, empty) == 4


def test_secrets_are_held_back_with_reasons_and_templates_go_in(
    repo: GitRepo, guards: Guards
) -> None:
    repo.write(".env", "DATABASE_PASSWORD=hunter2\n")
    repo.write(".env.example", "DATABASE_PASSWORD=\n")
    aws = (
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    )
    repo.write("config/aws.ini", aws)
    repo.write("config/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
    repo.write("config/id_ed25519.pub", "ssh-ed25519 AAAA researcher\n")

    result = take_snapshot(repo.root, guards=guards)

    files = repo.tree_files(REF)
    assert ".env.example" in files and "config/id_ed25519.pub" in files
    assert not {".env", "config/aws.ini", "config/id_ed25519"} & set(files)
    reasons = {held.path: held.reason for held in result.held_back}
    assert set(reasons) == {".env", "config/aws.ini", "config/id_ed25519"}
    assert reasons[".env"] == "secret file name (matches .env)"
    assert reasons["config/aws.ini"].startswith("looks like a secret: AWS Access Key on line 2")
    for held in result.held_back:
        assert "AKIA" not in str(held) and "hunter2" not in str(held)
        assert "\n" not in str(held)
    every_object = repo.object_bytes()
    assert b"AKIAIOSFODNN7EXAMPLE" not in every_object and b"hunter2" not in every_object


def test_a_tracked_file_that_turns_secret_keeps_its_committed_version(
    repo: GitRepo, guards: Guards
) -> None:
    repo.write("settings.ini", "region = eu-west-1\n")
    repo.commit_all("settings")
    repo.write("settings.ini", "region = eu-west-1\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n")
    repo.write("other.txt", "changed\n")

    result = take_snapshot(repo.root, guards=guards)

    assert [held.path for held in result.held_back] == ["settings.ini"]
    assert repo.show(REF, "settings.ini") == "region = eu-west-1\n"


def test_the_allow_list_lets_a_held_back_file_through(repo: GitRepo) -> None:
    repo.write(".env", "DEBUG=1\n")
    repo.write("fixtures/fake_key.txt", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n")

    result = take_snapshot(repo.root, guards=Guards(allow=(".env", "fixtures/")))

    assert result.held_back == []
    assert {".env", "fixtures/fake_key.txt"} <= set(repo.tree_files(REF))


def test_a_file_over_the_size_cap_is_held_back(repo: GitRepo) -> None:
    repo.write("weights.bin", "0" * 2048)
    repo.write("small.txt", "ok\n")

    result = take_snapshot(repo.root, guards=Guards(max_file_bytes=1024))

    assert [(h.path, h.reason) for h in result.held_back] == [
        ("weights.bin", "too large (0.0 MB > 0.0 MB)")
    ]
    assert "weights.bin" not in repo.tree_files(REF)
    assert "small.txt" in repo.tree_files(REF)


def test_an_untracked_nested_repository_is_reported_not_added(
    repo: GitRepo, guards: Guards, env: dict[str, str]
) -> None:
    nested = init_repo(repo.root / "vendor" / "lib", env)
    nested.write("lib.py", "x = 1\n")
    nested.commit_all()
    repo.write("vendor/notes.md", "vendored\n")

    result = take_snapshot(repo.root, guards=guards)

    assert result.nested == [repo.root / "vendor" / "lib"]
    files = repo.tree_files(REF)
    assert "vendor/notes.md" in files
    assert not any(path.startswith("vendor/lib") for path in files)
    inner = take_snapshot(result.nested[0], guards=guards)
    assert inner.unchanged
    nested.write("lib.py", "x = 2\n")
    assert take_snapshot(result.nested[0], guards=guards).created


def test_a_submodule_stays_the_gitlink_head_records(
    repo: GitRepo, guards: Guards, env: dict[str, str], tmp_path: Path
) -> None:
    upstream = init_repo(tmp_path / "upstream", env)
    upstream.write("a.txt", "a\n")
    pinned = upstream.commit_all()
    repo.git(
        "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream.root), "sub"
    )
    repo.commit_all("add submodule")
    (repo.root / "sub" / "a.txt").write_text("edited inside the submodule\n")
    repo.write("train.py", "print('v2')\n")

    result = take_snapshot(repo.root, guards=guards)

    assert result.nested == []
    assert repo.git("ls-tree", REF, "sub").split()[:3] == ["160000", "commit", pinned]


def test_detached_head_snapshots_to_the_detached_ref(repo: GitRepo, guards: Guards) -> None:
    repo.git("checkout", "-q", "--detach", "HEAD")
    head = repo.rev("HEAD")
    repo.write("train.py", "print('detached')\n")
    before = repo.user_state()

    result = take_snapshot(repo.root, guards=guards)

    assert result.branch == "detached"
    assert repo.rev("refs/labmind/snapshots/detached^") == head
    assert repo.user_state() == before


def test_unborn_head_snapshots_without_a_parent(tmp_path: Path, env: dict[str, str]) -> None:
    repo = init_repo(tmp_path / "fresh", env)
    guards = Guards()
    assert take_snapshot(repo.root, guards=guards).unchanged
    repo.write("idea.py", "print('first')\n")
    before = repo.user_state()

    result = take_snapshot(repo.root, guards=guards)

    assert result.created and result.files_changed == 1
    assert repo.git("rev-list", "--parents", "-n1", REF).split() == [str(result.commit)]
    assert repo.tree_files(REF) == {"idea.py": "100644"}
    assert repo.user_state() == before
    assert not (repo.root / ".git" / "index").exists()


def test_a_snapshot_during_a_merge_conflict_changes_nothing_of_the_users(
    repo: GitRepo, guards: Guards
) -> None:
    repo.git("checkout", "-q", "-b", "other")
    repo.write("train.py", "print('other')\n")
    repo.commit_all("other")
    repo.git("checkout", "-q", "main")
    repo.write("train.py", "print('main')\n")
    repo.commit_all("main")
    proc_failed = False
    try:
        repo.git("merge", "-q", "other")
    except AssertionError:
        proc_failed = True
    assert proc_failed
    before = repo.user_state()
    merge_head = (repo.root / ".git" / "MERGE_HEAD").read_bytes()

    result = take_snapshot(repo.root, guards=guards)

    assert result.created
    assert "<<<<<<<" in repo.show(REF, "train.py")
    assert repo.user_state() == before
    assert (repo.root / ".git" / "MERGE_HEAD").read_bytes() == merge_head


def test_a_ref_moved_by_someone_else_is_detected_and_left_alone(
    repo: GitRepo, guards: Guards
) -> None:
    repo.write("train.py", "print('v2')\n")
    first = take_snapshot(repo.root, guards=guards)
    assert first.commit is not None
    git = pygit2.Repository(str(repo.root))
    head = git.head.target
    assert isinstance(head, pygit2.Oid)

    with pytest.raises(ConcurrentSnapshotError, match="moved"):
        update_ref_if_unchanged(git, REF, head, expected=None)
    assert repo.rev(REF) == str(first.commit)


def test_a_ref_lock_git_holds_for_a_moment_is_waited_for(repo: GitRepo, guards: Guards) -> None:
    lock = (repo.root / ".git" / REF).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("held by git pack-refs\n")
    release = threading.Timer(0.2, lambda: lock.unlink(missing_ok=True))
    release.start()
    repo.write("train.py", "print('v3')\n")

    result = take_snapshot(repo.root, guards=guards)
    release.join()

    assert result.created and repo.rev(REF) == str(result.commit)
    assert not lock.exists()


def test_a_folder_that_is_not_a_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="not a git repository"):
        take_snapshot(tmp_path, guards=Guards())


def test_a_ref_moved_while_the_snapshot_is_built_is_detected(
    repo: GitRepo, guards: Guards, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("train.py", "print('v2')\n")
    first = take_snapshot(repo.root, guards=guards)
    repo.write("train.py", "print('v3')\n")
    build = snapshot_module._apply_status

    def build_then_race(*args: Any, **kwargs: Any) -> Any:
        built = build(*args, **kwargs)
        repo.git("update-ref", REF, "HEAD")  # another labmind process wins the race
        return built

    monkeypatch.setattr(snapshot_module, "_apply_status", build_then_race)
    with pytest.raises(ConcurrentSnapshotError, match="moved"):
        take_snapshot(repo.root, guards=guards)

    assert repo.rev(REF) == repo.rev("HEAD") != str(first.commit)
    assert not (repo.root / ".git" / (REF + ".lock")).exists()


def test_a_file_deleted_while_the_snapshot_is_built_counts_as_deleted(repo: GitRepo) -> None:
    class DeletesWhileScanning:
        def find_secret(self, file: Path) -> str | None:
            file.unlink()
            return None

    repo.write("train.py", "print('about to vanish')\n")
    repo.write("scratch.txt", "also vanishing\n")
    repo.write("kept.md", "kept\n")

    result = take_snapshot(
        repo.root, guards=Guards(allow=("kept.md",), scanner=DeletesWhileScanning())
    )

    assert result.created and result.held_back == []
    assert set(repo.tree_files(REF)) == {".gitignore", "data/readme.md", "kept.md"}


def test_a_snapshot_asked_to_stop_changes_nothing(repo: GitRepo, guards: Guards) -> None:
    for n in range(5):
        repo.write(f"new_{n}.py", f"print({n})\n")
    before = repo.user_state()
    calls = 0

    def stop_after_two() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2

    with pytest.raises(SnapshotInterrupted, match="stopped before it was complete"):
        take_snapshot(repo.root, guards=guards, cancelled=stop_after_two)

    assert repo.git("for-each-ref", "refs/labmind") == ""
    assert repo.user_state() == before
    assert take_snapshot(repo.root, guards=guards).created
