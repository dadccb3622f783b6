"""The linking thread fingerprints new code behind indexing and never stalls on a bad batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.daemon.chat_chunks import conversation_update
from labmind.daemon.chat_store import ChatStore
from labmind.daemon.events import EventBus
from labmind.daemon.linking import LinkingService
from labmind.daemon.provenance import Linker, links_for_file
from labmind.daemon.store import ChunkRow, FileUpdate, Fingerprint, Store
from labmind.indexers.chats import ChatMessage, CodeBlock, Conversation

CODE = """def moving_average(values, window):
    out = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
"""


class FailingLinker(Linker):
    def chunk_fingerprints(
        self, chunk_id: int, text: str, language: str, first_line: int
    ) -> list[Fingerprint]:
        raise RuntimeError("tokenizer exploded")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "labmind.sqlite3")
    yield store
    store.close()


def add_file(store: Store, text: str, mtime: float) -> None:
    root, _ = store.add_root("/src")
    chunk = ChunkRow(5, "code", "python", "moving_average", "avg.py", 1, 9, text, 50)
    store.apply(
        [FileUpdate(root.id, "/src/avg.py", len(text), int(mtime * 1e9), "h", "python", [chunk])],
        [],
    )


def add_chat(store: Store, linker: Linker, code: str, created: float) -> None:
    message = ChatMessage(
        id="m1",
        role="assistant",
        created=created,
        text=f"```python\n{code}```",
        on_path=True,
        code_blocks=(CodeBlock("python", code),),
    )
    conversation = Conversation(
        id="chat-1",
        source="chatgpt",
        title="Smoothing a series",
        created=created,
        updated=created,
        model=None,
        messages=(message,),
    )
    ChatStore(store).apply([conversation_update(conversation, "export.zip", linker)])


def test_code_indexed_after_the_chat_is_linked_behind(store: Store) -> None:
    linker = Linker()
    add_chat(store, linker, CODE, created=1_000.0)
    renamed = CODE.replace("values", "xs").replace("total", "acc")
    add_file(store, renamed, mtime=2_000.0)
    service = LinkingService(store, linker, EventBus())
    service.start()
    try:
        assert service.wait_idle(timeout=30)
    finally:
        service.stop()
    assert service.pending() == 0
    (link,) = links_for_file(store.reader(), "/src/avg.py")
    assert link.chat_id == "chat-1" and link.score >= 0.5
    assert links_for_file(store.reader(), "/src/avg.py", line=40) == []


def test_a_failing_batch_is_set_aside_and_reported(store: Store) -> None:
    add_file(store, CODE, mtime=2_000.0)
    service = LinkingService(store, FailingLinker(), EventBus())
    service.start()
    try:
        assert service.wait_idle(timeout=30)
    finally:
        service.stop()
    assert service.pending() == 0
    assert service.last_error is not None and "tokenizer exploded" in service.last_error
