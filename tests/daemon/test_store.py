"""The SQLite store: upgrades keep what was indexed; chats and files share chunks and links."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from labmind.daemon.chat_chunks import prose_windows
from labmind.daemon.chat_store import ChatStore, ConversationUpdate, MessageRow
from labmind.daemon.migrations import MIGRATIONS
from labmind.daemon.store import ChunkRow, FileUpdate, Fingerprint, Store, StoreError


def chunk(cid: int, text: str, kind: str = "code", language: str = "python") -> ChunkRow:
    return ChunkRow(cid, kind, language, None, "header", 1, 3, text, cid * 10)


def write_v1(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO roots(id, path, added_at) VALUES (1, '/src', 0)")
    conn.execute(
        "INSERT INTO files(id, root_id, path, size, mtime_ns, sha256, language, indexed_at) "
        "VALUES (1, 1, '/src/a.py', 10, 2000000000, 'abc', 'python', 0)"
    )
    conn.execute(
        "INSERT INTO chunks(id, file_id, kind, language, symbol, header, start_line, end_line, "
        "text, vec_key) VALUES (7, 1, 'code', 'python', 'f', 'a.py', 1, 2, 'def f(): pass', 70)"
    )
    conn.execute("INSERT INTO vectors(key, vector) VALUES (70, x'0000')")
    conn.commit()
    conn.close()


def test_upgrade_from_the_first_schema_keeps_files_chunks_and_vectors(tmp_path: Path) -> None:
    db = tmp_path / "labmind.sqlite3"
    write_v1(db)
    store = Store(db)
    assert store.schema_version() == len(MIGRATIONS)
    (record,) = store.iter_chunks()
    assert (record.id, record.path, record.root, record.text) == (
        7,
        "/src/a.py",
        "/src",
        "def f(): pass",
    )
    assert record.chat_id is None and record.mtime == 2.0
    assert store.vector_count() == 1
    assert store.embedding_progress() == (1, 1)
    store.apply([], ["/src/a.py"])
    assert store.chunk_count() == 0
    store.close()


def test_a_store_from_a_newer_labmind_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "labmind.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer labmind"):
        Store(db)


def conversation(updated: float, text: str) -> ConversationUpdate:
    block = chunk(21, text, kind="chat")
    message = MessageRow(11, "m1", 1, "assistant", 100.0, True, text, [block])
    return ConversationUpdate(
        id="conv",
        source="chatgpt",
        title="Sorting",
        created=90.0,
        updated=updated,
        model=None,
        origin="export.zip",
        messages=[message],
        fingerprints=[Fingerprint(21, 5, 1), Fingerprint(21, 6, 2)],
    )


def test_replacing_a_conversation_replaces_its_chunks_fingerprints_and_links(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "labmind.sqlite3")
    chats = ChatStore(store)
    root, _ = store.add_root("/src")
    store.apply(
        [FileUpdate(root.id, "/src/a.py", 1, 200 * 10**9, "h", "python", [chunk(31, "x")])], []
    )
    assert store.unprinted_chunks(10) == [(31, "x", "python", 1)]

    def link(tx: sqlite3.Connection) -> None:
        tx.execute("INSERT INTO links(code_chunk, chat_chunk, score, shared) VALUES (31, 21, 1, 1)")

    chats.apply([conversation(100.0, "sorted(rows)")], then=link)
    assert chats.versions(["conv", "other"]) == {"conv": 100.0}
    (record,) = [r for r in store.iter_chunks() if r.chat_id]
    assert (record.path, record.chat_title, record.role, record.mtime) == (
        "chat:conv",
        "Sorting",
        "assistant",
        100.0,
    )
    links = store.reader().execute("SELECT count(*) FROM links").fetchone()[0]
    assert links == 1

    chats.apply([conversation(200.0, "sorted(rows, key=len)")])
    assert chats.versions(["conv"]) == {"conv": 200.0}
    assert [m.text for m in chats.messages("conv")] == ["sorted(rows, key=len)"]
    assert store.reader().execute("SELECT count(*) FROM links").fetchone()[0] == 0
    fingerprints = store.reader().execute("SELECT count(*) FROM fingerprints WHERE side='chat'")
    assert fingerprints.fetchone()[0] == 2
    assert store.chunk_count() == 2
    assert store.unprinted_count() == 1, "chat chunks are fingerprinted at import"
    store.close()


def test_conversation_ids_resolve_from_a_unique_prefix(tmp_path: Path) -> None:
    store = Store(tmp_path / "labmind.sqlite3")
    chats = ChatStore(store)
    chats.apply([conversation(1.0, "x")])
    found = chats.find("co")
    assert found is not None and found.id == "conv" and found.messages == 1
    assert chats.find("zz") is None
    store.close()


def test_long_prose_is_cut_at_paragraphs_and_keeps_every_word() -> None:
    paragraphs = [f"paragraph {i} " + "word " * 150 for i in range(12)]
    text = "\n\n".join(paragraphs)
    windows = prose_windows(text, limit=2000)
    assert len(windows) > 1
    assert all(len(w) <= 2000 for w in windows)
    assert " ".join(" ".join(windows).split()) == " ".join(text.split())
    huge = "x" * 4500
    assert [len(w) for w in prose_windows(huge, limit=2000)] == [2000, 2000, 500]
