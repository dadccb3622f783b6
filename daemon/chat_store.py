"""Conversations and messages in the store, and the record of imported export files."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .store import ChunkRow, Fingerprint, Store


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One message as it is written, with its chunks (prose windows and code blocks)."""

    id: int
    message_id: str
    position: int
    role: str
    created: float | None
    on_path: bool
    text: str
    chunks: Sequence[ChunkRow]


@dataclass(frozen=True, slots=True)
class ConversationUpdate:
    """A conversation to insert or replace, whole: messages, chunks, code fingerprints."""

    id: str
    source: str
    title: str
    created: float | None
    updated: float | None
    model: str | None
    origin: str
    messages: Sequence[MessageRow]
    fingerprints: Sequence[Fingerprint] = ()

    @property
    def chunk_ids(self) -> list[int]:
        return [c.id for m in self.messages for c in m.chunks]


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: str
    source: str
    title: str
    created: float | None
    updated: float | None
    model: str | None
    origin: str
    messages: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    message_id: str
    position: int
    role: str
    created: float | None
    on_path: bool
    text: str


@dataclass(frozen=True, slots=True)
class ImportRecord:
    """The last import of an export file: what it was when read, and what came of it."""

    path: str
    size: int
    mtime_ns: int
    kind: str
    conversations: int
    problems: int
    error: str | None
    at: float


class AmbiguousChatId(Exception):
    """A conversation id prefix that matches more than one conversation."""


_SUMMARY = (
    "SELECT c.id, c.source, c.title, c.created, c.updated, c.model, c.origin, "
    "(SELECT count(*) FROM messages m WHERE m.conversation_id=c.id) FROM conversations c"
)


def _summary(row: tuple[object, ...]) -> ConversationSummary:
    cid, source, title, created, updated, model, origin, count = row
    return ConversationSummary(
        id=str(cid),
        source=str(source),
        title=str(title),
        created=None if created is None else float(str(created)),
        updated=None if updated is None else float(str(updated)),
        model=None if model is None else str(model),
        origin=str(origin),
        messages=int(str(count)),
    )


def _message_values(conversation_id: str, m: MessageRow) -> tuple[object, ...]:
    return (m.id, conversation_id, m.message_id, m.position, m.role, m.created, m.on_path, m.text)


class ChatStore:
    """Chat tables of the :class:`Store`; writes happen on the indexing thread."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def versions(self, ids: Iterable[str]) -> dict[str, float | None]:
        """The stored ``updated`` time of those of ``ids`` that are stored."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, float | None] = {}
        conn = self.store.reader()
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                f"SELECT id, updated FROM conversations WHERE id IN ({marks})",  # noqa: S608
                part,
            )
            out.update({str(i): None if u is None else float(u) for i, u in rows})
        return out

    def apply(
        self,
        updates: Sequence[ConversationUpdate],
        then: Callable[[sqlite3.Connection], object] | None = None,
    ) -> None:
        """Replace these conversations whole (messages, chunks, links go with the old rows)."""
        now = time.time()
        with self.store.transaction() as tx:
            for up in updates:
                tx.execute("DELETE FROM conversations WHERE id=?", (up.id,))
                tx.execute(
                    "INSERT INTO conversations(id, source, title, created, updated, model, "
                    "origin, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (up.id, up.source, up.title, up.created, up.updated, up.model, up.origin, now),
                )
                tx.executemany(
                    "INSERT OR REPLACE INTO messages(id, conversation_id, message_id, position, "
                    "role, created, on_path, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [_message_values(up.id, m) for m in up.messages],
                )
                tx.executemany(
                    "INSERT OR REPLACE INTO chunks(id, message_id, kind, language, symbol, "
                    "header, start_line, end_line, text, vec_key, fingerprinted) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    [(c.id, m.id, *c.values()) for m in up.messages for c in m.chunks],
                )
                tx.executemany(
                    "INSERT OR IGNORE INTO fingerprints(side, hash, chunk_id, line) "
                    "VALUES ('chat', ?, ?, ?)",
                    [(fp.hash, fp.chunk_id, fp.line) for fp in up.fingerprints],
                )
            if then is not None:
                then(tx)

    def count(self) -> int:
        row = self.store.reader().execute("SELECT count(*) FROM conversations").fetchone()
        return int(row[0])

    def summaries(self, limit: int, offset: int = 0) -> list[ConversationSummary]:
        """Conversations, most recently updated first."""
        rows = self.store.reader().execute(
            f"{_SUMMARY} ORDER BY coalesce(c.updated, c.created, 0) DESC, c.id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_summary(tuple(r)) for r in rows]

    def find(self, id_or_prefix: str) -> ConversationSummary | None:
        """The conversation with this id, or the only one whose id starts with it."""
        conn = self.store.reader()
        row = conn.execute(f"{_SUMMARY} WHERE c.id=?", (id_or_prefix,)).fetchone()
        if row is not None:
            return _summary(tuple(row))
        if not id_or_prefix:
            return None
        rows = conn.execute(
            f"{_SUMMARY} WHERE substr(c.id, 1, ?)=? LIMIT 2", (len(id_or_prefix), id_or_prefix)
        ).fetchall()
        if len(rows) > 1:
            raise AmbiguousChatId(
                f"'{id_or_prefix}' matches more than one conversation; give more of the id"
            )
        return _summary(tuple(rows[0])) if rows else None

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        rows = self.store.reader().execute(
            "SELECT message_id, position, role, created, on_path, text FROM messages "
            "WHERE conversation_id=? ORDER BY position",
            (conversation_id,),
        )
        return [
            StoredMessage(
                message_id=str(mid),
                position=int(pos),
                role=str(role),
                created=None if created is None else float(created),
                on_path=bool(on_path),
                text=str(text),
            )
            for mid, pos, role, created, on_path, text in rows
        ]

    # -- imported export files ---------------------------------------------------------------

    def import_record(self, path: str) -> ImportRecord | None:
        row = (
            self.store.reader()
            .execute(
                "SELECT path, size, mtime_ns, kind, conversations, problems, error, at "
                "FROM imports WHERE path=?",
                (path,),
            )
            .fetchone()
        )
        return None if row is None else ImportRecord(*row)

    def record_import(self, record: ImportRecord) -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO imports(path, size, mtime_ns, kind, conversations, "
                "problems, error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.path,
                    record.size,
                    record.mtime_ns,
                    record.kind,
                    record.conversations,
                    record.problems,
                    record.error,
                    record.at,
                ),
            )
