"""Import jobs: a shutdown stops an import between batches, and importing again resumes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labmind.daemon.chat_import import ChatImporter
from labmind.daemon.config import IndexConfig
from labmind.daemon.events import EventBus
from labmind.daemon.indexing import IndexService
from labmind.daemon.store import Store
from labmind.indexers.lexical import LexicalIndex

from ..indexers.chats.builders import write_large_chatgpt_export


@dataclass
class Daemonish:
    store: Store
    indexer: IndexService
    events: EventBus


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Daemonish]:
    store = Store(tmp_path / "labmind.sqlite3")
    events = EventBus()
    lexical = LexicalIndex.open_or_create(tmp_path / "lexical")
    indexer = IndexService(store, lexical, tmp_path / "lexical", events, IndexConfig())
    indexer.start()
    yield Daemonish(store, indexer, events)
    indexer.stop()
    lexical.close()
    store.close()


def test_a_stopped_import_is_reported_and_resumes_when_run_again(
    parts: Daemonish, tmp_path: Path
) -> None:
    export = tmp_path / "conversations.json"
    total = write_large_chatgpt_export(export, target_bytes=3_000_000)
    first = ChatImporter(parts.indexer, parts.events)
    first.start()
    job = first.submit(export)
    first.stop()
    stopped = first.job(job.id)
    assert stopped is not None and stopped.state == "failed"
    assert stopped.error is not None and "daemon" in stopped.error
    assert parts.indexer.chats.count() < total

    second = ChatImporter(parts.indexer, parts.events)
    second.start()
    try:
        done = second.wait(second.submit(export).id, timeout=120)
    finally:
        second.stop()
    assert done is not None and done.state == "done"
    assert parts.indexer.chats.count() == total
    assert done.added + done.unchanged == total
    assert parts.indexer.lexical is not None
    assert parts.indexer.lexical.doc_count() == parts.store.chunk_count()
