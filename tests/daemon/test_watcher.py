from __future__ import annotations

import errno
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from watchdog.observers.inotify_c import InotifyFD

from labmind.daemon import watcher as watcher_module
from labmind.daemon.watcher import ChangeBatch, Watcher, WatchError
from labmind.indexers.ignore import IgnoreRules

TIMEOUT_S = 10.0


@dataclass
class Seen:
    """Everything delivered so far, accumulated over batches."""

    batches: list[ChangeBatch] = field(default_factory=list)
    changed: set[Path] = field(default_factory=set)
    deleted: set[Path] = field(default_factory=set)
    changed_dirs: set[Path] = field(default_factory=set)
    deleted_dirs: set[Path] = field(default_factory=set)
    rules_changed: set[Path] = field(default_factory=set)
    root_gone: set[Path] = field(default_factory=set)

    def add(self, batch: ChangeBatch) -> None:
        self.batches.append(batch)
        self.changed |= batch.changed
        self.deleted |= batch.deleted
        self.changed_dirs |= batch.changed_dirs
        self.deleted_dirs |= batch.deleted_dirs
        self.rules_changed |= batch.rules_changed
        self.root_gone |= batch.root_gone

    def all_paths(self) -> set[Path]:
        return self.changed | self.deleted | self.changed_dirs | self.deleted_dirs


class Batches:
    """The ``on_batch`` callback: queues each batch, with the file contents seen on delivery."""

    def __init__(self, fail_first: bool = False) -> None:
        self.queue: queue.Queue[ChangeBatch] = queue.Queue()
        self.seen = Seen()
        self.contents: dict[Path, str] = {}
        self.threads: set[str] = set()
        self._lock = threading.Lock()
        self._fail_next = fail_first

    def __call__(self, batch: ChangeBatch) -> None:
        with self._lock:
            self.threads.add(threading.current_thread().name)
            for path in batch.changed:
                try:
                    self.contents[path] = path.read_text()
                except OSError:
                    continue
            fail, self._fail_next = self._fail_next, False
        self.queue.put(batch)
        if fail:
            raise RuntimeError("consumer broke")

    def until(
        self, predicate: Callable[[Seen], bool], timeout: float = TIMEOUT_S
    ) -> list[ChangeBatch]:
        """Drain batches until ``predicate(seen)`` holds; return the batches drained."""
        deadline = time.monotonic() + timeout
        drained: list[ChangeBatch] = []
        while not predicate(self.seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s; seen {self.seen}")
            try:
                batch = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.add(batch)
            drained.append(batch)
        return drained


MakeWatcher = Callable[..., Watcher]


@pytest.fixture
def batches() -> Batches:
    return Batches()


@pytest.fixture
def make_watcher(batches: Batches) -> Iterator[MakeWatcher]:
    made: list[Watcher] = []

    def make(
        *roots: Path,
        on_batch: Callable[[ChangeBatch], None] | None = None,
        debounce_s: float = 0.1,
        max_delay_s: float = 2.0,
    ) -> Watcher:
        watcher = Watcher(on_batch or batches, debounce_s=debounce_s, max_delay_s=max_delay_s)
        made.append(watcher)
        for root in roots:
            watcher.add_root(root, IgnoreRules(root))
        watcher.start()
        return watcher

    yield make
    for watcher in made:
        watcher.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "proj"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def fast_root_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watcher_module, "ROOT_CHECK_S", 0.05)


def test_created_file_is_reported_changed_on_the_delivery_thread(
    root: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    (root / "pkg").mkdir()
    make_watcher(root)
    (root / "a.py").write_text("a = 1\n")
    (root / "pkg" / "b.py").write_text("b = 2\n")

    batches.until(lambda s: {root / "a.py", root / "pkg" / "b.py"} <= s.changed)

    assert batches.contents[root / "a.py"] == "a = 1\n"
    assert not batches.seen.deleted
    assert batches.threads == {"labmind-watcher"}


def test_rapid_writes_to_one_file_are_coalesced(
    root: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    make_watcher(root, debounce_s=0.3)
    hot = root / "hot.py"
    for i in range(50):
        hot.write_text(f"step = {i}\n")
    sentinel = root / "sentinel.py"

    batches.until(lambda s: batches.contents.get(hot) == "step = 49\n")
    sentinel.write_text("done\n")
    batches.until(lambda s: sentinel in s.changed)

    assert len(batches.seen.batches) < 10
    assert hot not in batches.seen.deleted


def test_a_file_written_constantly_is_delivered_within_max_delay(
    root: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    delivered = threading.Event()

    def on_batch(batch: ChangeBatch) -> None:
        batches(batch)
        delivered.set()

    make_watcher(root, on_batch=on_batch, debounce_s=0.3, max_delay_s=0.6)
    busy = root / "busy.py"
    started = time.monotonic()
    writes = 0
    while not delivered.wait(0.02):  # a write every 20 ms: the debounce alone never fires
        assert time.monotonic() - started < TIMEOUT_S, "nothing delivered while writing"
        busy.write_text(f"{writes}\n")
        writes += 1

    batches.until(lambda s: busy in s.changed)
    assert writes > 0.3 / 0.02


def test_deleted_file_is_reported_deleted(
    root: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    doomed = root / "doomed.py"
    doomed.write_text("x = 1\n")
    make_watcher(root)
    doomed.unlink()

    batches.until(lambda s: doomed in s.deleted)
    assert doomed not in batches.seen.changed


def test_renamed_file_is_old_deleted_and_new_changed(
    root: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    old = root / "old.py"
    old.write_text("x = 1\n")
    make_watcher(root)
    new = old.rename(root / "new.py")

    batches.until(lambda s: old in s.deleted and new in s.changed)
    assert old not in batches.seen.changed
    assert new not in batches.seen.deleted


def test_last_event_in_a_window_wins(
    root: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    brief = root / "brief.py"
    back = root / "back.py"
    back.write_text("v1\n")
    make_watcher(root, debounce_s=0.3)
    brief.write_text("here\n")
    brief.unlink()
    back.unlink()
    back.write_text("v2\n")
    sentinel = root / "sentinel.py"
    sentinel.write_text("done\n")

    last = batches.until(lambda s: sentinel in s.changed)[-1]
    assert brief in last.deleted
    assert brief not in last.changed
    assert back in last.changed
    assert back not in last.deleted


def test_directory_moved_in_within_and_out(
    root: Path, outside: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    incoming = outside / "pkg"
    (incoming / "sub").mkdir(parents=True)
    (incoming / "mod.py").write_text("m = 1\n")
    (incoming / "sub" / "deep.py").write_text("d = 1\n")
    make_watcher(root)

    moved_in = incoming.rename(root / "pkg")
    batches.until(lambda s: moved_in in s.changed_dirs)

    renamed = moved_in.rename(root / "lib")
    batches.until(lambda s: moved_in in s.deleted_dirs and renamed in s.changed_dirs)

    renamed.rename(outside / "lib")
    batches.until(lambda s: renamed in s.deleted_dirs)

    assert root / "pkg" / "mod.py" not in batches.seen.deleted


def test_ignored_paths_produce_nothing(
    root: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    (root / ".gitignore").write_text("*.log\n")
    (root / ".git").mkdir()
    make_watcher(root)
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1\n")
    (root / "train.log").write_text("epoch 1\n")
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    sentinel = root / "keep.py"
    sentinel.write_text("keep\n")

    batches.until(lambda s: sentinel in s.changed)

    assert batches.seen.all_paths() == {sentinel}
    assert not batches.seen.rules_changed


def test_editing_ignore_files_reports_rules_changed_and_applies_them(
    root: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    (root / ".git" / "info").mkdir(parents=True)
    make_watcher(root)

    (root / ".gitignore").write_text("*.tmp\n")
    batches.until(lambda s: root in s.rules_changed)
    (root / "scratch.tmp").write_text("x\n")
    sentinel = root / "keep.py"
    sentinel.write_text("keep\n")
    batches.until(lambda s: sentinel in s.changed)
    assert root / "scratch.tmp" not in batches.seen.all_paths()

    batches.seen.rules_changed.clear()
    (root / ".git" / "info" / "exclude").write_text("*.dat\n")
    batches.until(lambda s: root in s.rules_changed)
    (root / "table.dat").write_text("1,2\n")
    other = root / "other.py"
    other.write_text("other\n")
    batches.until(lambda s: other in s.changed)
    assert root / "table.dat" not in batches.seen.all_paths()


def test_deleted_root_is_reported_once_and_other_roots_keep_working(
    tmp_path: Path, make_watcher: MakeWatcher, batches: Batches, fast_root_checks: None
) -> None:
    gone, kept = tmp_path / "gone", tmp_path / "kept"
    (gone / "src").mkdir(parents=True)
    (gone / "src" / "a.py").write_text("a\n")
    kept.mkdir()
    watcher = make_watcher(gone, kept)

    shutil.rmtree(gone)
    batches.until(lambda s: gone in s.root_gone)
    assert watcher.roots() == [kept]

    sentinel = kept / "b.py"
    sentinel.write_text("b\n")
    batches.until(lambda s: sentinel in s.changed)
    (kept / "c.py").write_text("c\n")
    batches.until(lambda s: kept / "c.py" in s.changed)

    assert sum(gone in batch.root_gone for batch in batches.seen.batches) == 1
    assert not batches.seen.rules_changed


def test_root_moved_away_is_reported_gone(
    tmp_path: Path, make_watcher: MakeWatcher, batches: Batches, fast_root_checks: None
) -> None:
    moving, kept = tmp_path / "moving", tmp_path / "kept"
    moving.mkdir()
    kept.mkdir()
    watcher = make_watcher(moving, kept)

    moving.rename(tmp_path / "elsewhere")
    batches.until(lambda s: moving in s.root_gone)
    assert watcher.roots() == [kept]

    (tmp_path / "elsewhere" / "late.py").write_text("late\n")
    sentinel = kept / "b.py"
    sentinel.write_text("b\n")
    batches.until(lambda s: sentinel in s.changed)
    assert batches.seen.all_paths() == {sentinel}


def test_remove_root_stops_its_events(
    tmp_path: Path, make_watcher: MakeWatcher, batches: Batches
) -> None:
    removed, kept = tmp_path / "removed", tmp_path / "kept"
    removed.mkdir()
    kept.mkdir()
    watcher = make_watcher(removed, kept)

    watcher.remove_root(removed)
    assert watcher.roots() == [kept]
    (removed / "x.py").write_text("x\n")
    sentinel = kept / "y.py"
    sentinel.write_text("y\n")

    batches.until(lambda s: sentinel in s.changed)
    assert batches.seen.all_paths() == {sentinel}


def test_stop_is_idempotent_and_joins_its_threads(root: Path, batches: Batches) -> None:
    before = set(threading.enumerate())
    watcher = Watcher(batches)
    watcher.add_root(root, IgnoreRules(root))
    watcher.start()
    assert set(threading.enumerate()) - before

    watcher.stop()
    watcher.stop()

    assert not set(threading.enumerate()) - before
    with pytest.raises(RuntimeError):
        watcher.start()


def test_a_failing_consumer_is_logged_and_delivery_goes_on(
    root: Path, make_watcher: MakeWatcher, caplog: pytest.LogCaptureFixture
) -> None:
    failing = Batches(fail_first=True)
    make_watcher(root, on_batch=failing)

    with caplog.at_level(logging.ERROR, logger="labmind.watcher"):
        (root / "first.py").write_text("1\n")
        failing.until(lambda s: root / "first.py" in s.changed)
        (root / "second.py").write_text("2\n")
        failing.until(lambda s: root / "second.py" in s.changed)

    assert any("on_batch failed" in r.getMessage() for r in caplog.records)


def test_watch_limit_says_what_to_do(
    root: Path, make_watcher: MakeWatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = make_watcher()

    def refuse(*args: object) -> int:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(InotifyFD, "add_callback", refuse)
    with pytest.raises(WatchError) as caught:
        watcher.add_root(root, IgnoreRules(root))

    message = str(caught.value)
    assert "fs.inotify.max_user_watches" in message
    assert "\n" not in message
    assert watcher.roots() == []


def test_a_missing_folder_cannot_be_watched(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    watcher = make_watcher()
    missing = tmp_path / "missing"
    with pytest.raises(WatchError, match="not a folder"):
        watcher.add_root(missing, IgnoreRules(missing))
