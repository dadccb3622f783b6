"""Pausing indexing: the indexer's real thread, store and Tantivy index. While paused, the
watcher's changes are held and nothing is read or written; resuming indexes them; a scan
under way stops; the pause outlives the service; embedding waits too."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labmind.daemon import indexing
from labmind.daemon.config import IndexConfig
from labmind.daemon.embedding import EmbeddingService
from labmind.daemon.events import EventBus
from labmind.daemon.held_changes import HeldChanges
from labmind.daemon.indexing import IndexService
from labmind.daemon.store import Store
from labmind.indexers.embedder import HashEmbedder
from labmind.indexers.lexical import LexicalIndex


@dataclass
class Parts:
    store: Store
    lexical: LexicalIndex
    events: EventBus
    root: Path
    make: Callable[..., IndexService]
    """Starts an indexer over the store (stopped at the end of the test)."""


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    store = Store(tmp_path / "labmind.sqlite3")
    events = EventBus()
    lexical = LexicalIndex.open_or_create(tmp_path / "lexical")
    root = tmp_path / "project"
    root.mkdir()
    store.add_root(str(root))
    started: list[IndexService] = []

    def make(on_committed: Callable[[], None] = lambda: None) -> IndexService:
        service = IndexService(
            store, lexical, tmp_path / "lexical", events, IndexConfig(), on_committed=on_committed
        )
        service.start()
        started.append(service)
        return service

    yield Parts(store, lexical, events, root, make)
    for service in started:
        service.stop()
    lexical.close()
    store.close()


def settle(indexer: IndexService) -> None:
    """Wait until everything queued so far was handled (the queue is first in, first out)."""
    assert indexer.wait(indexer.scan([]), timeout=30)


def indexed(parts: Parts, path: Path) -> bool:
    return parts.store.file_state(str(path)) is not None


def test_changes_while_paused_are_held_and_indexed_on_resume(parts: Parts) -> None:
    kept, edited, removed = (parts.root / n for n in ("kept.py", "edited.py", "removed.py"))
    for path in (kept, edited, removed):
        path.write_text(f"def {path.stem}_v1():\n    return 1\n")
    indexer = parts.make()
    assert indexer.wait(indexer.scan([str(parts.root)]), timeout=30)
    assert all(indexed(parts, p) for p in (kept, edited, removed))
    before = parts.store.file_state(str(edited))

    indexer.set_paused(True)
    added = parts.root / "added.py"
    added.write_text("def added_while_paused():\n    return 2\n")
    edited.write_text("def edited_v2():\n    return 2\n")
    removed.unlink()
    indexer.files_changed([added, edited], [removed])
    indexer.folders_changed([parts.root / "later"])
    settle(indexer)

    assert not indexed(parts, added)
    assert parts.store.file_state(str(edited)) == before
    assert indexed(parts, removed)
    assert indexer.held_changes() == 4

    indexer.set_paused(False)
    settle(indexer)
    assert indexed(parts, added)
    assert parts.store.file_state(str(edited)) != before
    assert not indexed(parts, removed)
    assert indexer.held_changes() == 0


def test_the_pause_outlives_the_service_and_startup_reconciliation_waits(
    parts: Parts,
) -> None:
    first = parts.make()
    first.set_paused(True)
    first.stop()
    offline = parts.root / "written_while_down.py"
    offline.write_text("def offline():\n    return 3\n")

    again = parts.make()
    assert again.paused
    again.scan([str(parts.root)])
    settle(again)
    assert not indexed(parts, offline)
    assert again.held_changes() == 1

    again.set_paused(False)
    settle(again)
    assert indexed(parts, offline)
    assert parts.make().paused is False


def test_forgetting_a_root_drops_what_was_held_under_it(parts: Parts) -> None:
    inside = parts.root / "a.py"
    inside.write_text("x = 1\n")
    indexer = parts.make()
    indexer.set_paused(True)
    indexer.files_changed([inside], [])
    settle(indexer)
    assert indexer.held_changes() == 1
    indexer.forget_root(str(parts.root))
    settle(indexer)
    assert indexer.held_changes() == 0


def test_a_scan_under_way_stops_at_the_pause_and_goes_on_after(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "BATCH_FILES", 5)
    files = [parts.root / f"mod_{i:02d}.py" for i in range(40)]
    for i, path in enumerate(files):
        path.write_text(f"def function_{i}():\n    return {i}\n")
    holder: list[IndexService] = []

    def pause_after_first_batch() -> None:
        if len(holder) == 1:
            holder.append(holder[0])
            holder[0].set_paused(True)

    indexer = parts.make(on_committed=pause_after_first_batch)
    holder.append(indexer)
    assert indexer.wait(indexer.scan([str(parts.root)]), timeout=30)
    assert parts.store.file_count() == 5
    assert indexer.held_changes() == len(files) - 5
    assert indexer.progress.pending_files == 0

    indexer.set_paused(False)
    settle(indexer)
    assert parts.store.file_count() == len(files)


def test_pause_and_resume_are_events(parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    indexer = parts.make()
    seen: list[Mapping[str, Any]] = []
    monkeypatch.setattr(parts.events, "publish", seen.append)
    indexer.set_paused(True)
    indexer.set_paused(False)
    paused = [e["paused"] for e in seen if e["type"] == "index_paused"]
    assert paused == [True, False]


def test_embedding_waits_while_paused(parts: Parts, tmp_path: Path) -> None:
    (parts.root / "m.py").write_text("def embedded_later():\n    return 4\n")
    indexer = parts.make()
    assert indexer.wait(indexer.scan([str(parts.root)]), timeout=30)
    service = EmbeddingService(
        parts.store, HashEmbedder(), tmp_path / "vectors.usearch", EventBus()
    )
    service.set_paused(True)
    service.start()
    try:
        service.kick()
        assert service.wait_idle(30)
        done, total = parts.store.embedding_progress()
        assert total > 0 and done == 0
        service.set_paused(False)
        assert service.wait_idle(30)
        assert parts.store.embedding_progress() == (total, total)
    finally:
        service.stop()


def test_held_changes_collapse_to_a_rescan_past_the_limit() -> None:
    held = HeldChanges(limit=3)
    held.add(files=[Path("/r/a.py"), Path("/r/b.py")], folders=[Path("/s/x")])
    replay = held.take(["/r", "/s"])
    assert replay.roots == ()
    assert replay.files == {Path("/r/a.py"), Path("/r/b.py")}
    held.add(files=[Path(f"/r/{i}.py") for i in range(4)])
    assert len(held) > 3
    replay = held.take(["/r", "/s"])
    assert replay.roots == ("/r", "/s") and not replay.files and not replay.folders
    assert not held.take(["/r"])


def test_held_changes_under_a_rescanned_or_forgotten_root_are_dropped() -> None:
    held = HeldChanges()
    held.add(files=[Path("/r/a.py"), Path("/rr/b.py"), Path("/s/c.py")], roots=["/r"])
    held.forget_root("/s")
    replay = held.take(["/r", "/rr"])
    assert replay.roots == ("/r",)
    assert replay.files == {Path("/rr/b.py")}
