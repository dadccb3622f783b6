from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labmind.indexers.discovery import iter_files
from labmind.indexers.ignore import IgnoreRules

NOBODY = 65534

Skips = list[tuple[Path, str]]


def write(path: Path, text: str = "x = 1\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def walk(root: Path, rules: IgnoreRules | None = None) -> tuple[list[str], Skips]:
    skips: Skips = []
    found = iter_files(root, rules or IgnoreRules(root), lambda p, r: skips.append((p, r)))
    return [path.relative_to(root).as_posix() for path in found], skips


class RecordingRules(IgnoreRules):
    """Real rules that remember every path they were asked about."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.asked: list[Path] = []

    def is_ignored(self, path: Path, is_dir: bool) -> bool:
        self.asked.append(path)
        return super().is_ignored(path, is_dir)


def as_unprivileged(action: Callable[[], list[list[str]]]) -> list[list[str]]:
    """Run ``action`` as an ordinary user: as root, in a child that dropped to ``nobody``.

    Root can list any folder whatever its mode, so a chmod 000 folder is only
    unreadable to someone else.
    """
    if os.geteuid() != 0:
        return action()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with os.fdopen(write_end, "w") as out:
                json.dump(action(), out)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as result:
        payload = result.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    answer: list[list[str]] = json.loads(payload)
    return answer


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other users can enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="lm-discovery-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_yields_indexable_files_in_name_order(tmp_path: Path) -> None:
    for name in ["b.py", "a.md", "src/z.ts", "src/a/deep.rs", "notes.ipynb", "Makefile"]:
        write(tmp_path / name)
    for name in ["image.png", "archive.tar.gz", "package-lock.json", "no_extension"]:
        write(tmp_path / name)
    found, skips = walk(tmp_path)
    assert found == ["Makefile", "a.md", "b.py", "notes.ipynb", "src/z.ts", "src/a/deep.rs"]
    assert skips == []


def test_ignored_folders_are_never_entered(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "logs/\n*.tmp.py\n")
    write(tmp_path / "train.py")
    write(tmp_path / "scratch.tmp.py")
    for name in ["node_modules/pkg/index.js", ".git/hooks/pre-commit.sh", "logs/run/x.py"]:
        write(tmp_path / name)
    write(tmp_path / "venv-custom" / "pyvenv.cfg", "")
    write(tmp_path / "venv-custom" / "lib" / "site.py")
    rules = RecordingRules(tmp_path)
    found, _ = walk(tmp_path, rules)
    assert found == ["train.py"]
    pruned = {tmp_path / name for name in ["node_modules", ".git", "logs", "venv-custom"]}
    inside = [path for path in rules.asked if any(p in pruned for p in path.parents)]
    assert inside == []


def test_symlink_loop_terminates_and_files_come_once(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "mod.py")
    (tmp_path / "pkg" / "again").symlink_to(tmp_path)
    (tmp_path / "self").symlink_to(tmp_path / "self")
    found, skips = walk(tmp_path)
    assert found == ["pkg/mod.py"]
    assert (tmp_path / "pkg" / "again", "symlink to a folder: not followed") in skips
    assert (tmp_path / "self", "broken symlink: a symlink loop") in skips


def test_symlinked_files_are_followed_and_broken_ones_reported(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "shared.py")
    root = tmp_path / "root"
    root.mkdir()
    (root / "shared.py").symlink_to(outside)
    (root / "dangling.py").symlink_to(root / "missing.py")
    found, skips = walk(root)
    assert found == ["shared.py"]
    assert skips == [(root / "dangling.py", "broken symlink: its target does not exist")]


def test_pipes_are_not_yielded(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    write(tmp_path / "real.py")
    assert walk(tmp_path)[0] == ["real.py"]


def test_unreadable_folder_is_reported_and_the_walk_goes_on(shared_tmp: Path) -> None:
    write(shared_tmp / "locked" / "hidden.py")
    write(shared_tmp / "open" / "seen.py")
    (shared_tmp / "locked").chmod(0o000)

    def attempt() -> list[list[str]]:
        found, skips = walk(shared_tmp)
        return [found, [f"{path.name}: {reason}" for path, reason in skips]]

    try:
        found, skips = as_unprivileged(attempt)
    finally:
        (shared_tmp / "locked").chmod(0o755)
    assert found == ["open/seen.py"]
    assert skips == ["locked: unreadable folder: permission denied"]


def test_root_vanishing_mid_walk_ends_with_a_report(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "a" / "first.py")
    write(root / "b" / "second.py")
    skips: Skips = []
    walker = iter_files(root, IgnoreRules(root), lambda p, r: skips.append((p, r)))
    assert next(walker) == root / "a" / "first.py"
    shutil.rmtree(root)
    assert list(walker) == []
    assert skips == [(root, "root vanished during the walk")]


def test_missing_root_is_reported(tmp_path: Path) -> None:
    found, skips = walk(tmp_path / "nope")
    assert found == []
    assert skips == [(tmp_path / "nope", "root unavailable: no such file or folder")]
