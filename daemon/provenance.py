"""Provenance links between code chunks of watched files and code blocks of chats.

Both sides are fingerprinted (winnowing over normalised tokens, :mod:`labmind.indexers.
fingerprint`) and the fingerprints stored with their side (``code`` or ``chat``). When a
file or a conversation is written, its chunks are matched against the other side inside
the same transaction: candidates share at least ``min_shared`` fingerprints, they are
scored by :func:`labmind.indexers.provenance.best_matches`, and a link is kept when the
score reaches the threshold and the chat message is older than the file's version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from labmind.indexers.fingerprint import fingerprints
from labmind.indexers.provenance import DEFAULT_THRESHOLD, MIN_SHARED, Match, best_matches

from .store import Fingerprint

FINGERPRINTED_LANGUAGES = frozenset(
    {
        "python",
        "javascript",
        "typescript",
        "tsx",
        "go",
        "rust",
        "c",
        "cpp",
        "java",
        "bash",
        "sql",
        "r",
        "julia",
        "lua",
        "ruby",
        "php",
        "kotlin",
        "scala",
        "swift",
        "csharp",
    }
)
"""Languages whose chunks and chat code blocks are fingerprinted (prose and data are not)."""


@dataclass(frozen=True, slots=True)
class ChatLink:
    """One conversation that produced a code chunk: where, when, and how alike."""

    chat_id: str
    title: str
    message_id: str
    position: int
    role: str
    created: float | None
    score: float
    shared: int
    code_chunk: int
    start_line: int
    end_line: int
    chat_chunk: int


class Linker:
    """Fingerprints chunks and writes the links of new chunks, inside a store transaction."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, min_shared: int = MIN_SHARED) -> None:
        self.threshold = threshold
        self.min_shared = min_shared

    def chunk_fingerprints(
        self, chunk_id: int, text: str, language: str, first_line: int
    ) -> list[Fingerprint]:
        """Fingerprints of one chunk, lines counted in its file (or message) from ``first_line``."""
        if language not in FINGERPRINTED_LANGUAGES:
            return []
        return [
            Fingerprint(chunk_id, value, first_line + line - 1)
            for value, line in fingerprints(text, language).items()
        ]

    def link_code(self, tx: sqlite3.Connection, chunk_ids: Sequence[int]) -> int:
        """Link these (fingerprinted) code chunks to chat blocks; returns links written."""
        written = 0
        for code_chunk in chunk_ids:
            candidates = self._candidates(tx, code_chunk, "code", "chat")
            if not candidates:
                continue
            code_time = _file_time(tx, code_chunk)
            blocks = {
                block: _hashes(tx, "chat", block)
                for block in candidates
                if _predates(_message_time(tx, block), code_time)
            }
            matches = best_matches(
                _hashes(tx, "code", code_chunk),
                blocks,
                threshold=self.threshold,
                min_shared=self.min_shared,
            )
            written += _write_links(tx, code_chunk, matches)
        return written

    def link_chat(self, tx: sqlite3.Connection, chunk_ids: Sequence[int]) -> int:
        """Link these (fingerprinted) chat blocks to code chunks; returns links written."""
        written = 0
        for block in chunk_ids:
            candidates = self._candidates(tx, block, "chat", "code")
            if not candidates:
                continue
            block_time = _message_time(tx, block)
            block_hashes = _hashes(tx, "chat", block)
            for code_chunk in candidates:
                if not _predates(block_time, _file_time(tx, code_chunk)):
                    continue
                matches = best_matches(
                    _hashes(tx, "code", code_chunk),
                    {block: block_hashes},
                    threshold=self.threshold,
                    min_shared=self.min_shared,
                )
                written += _write_links(tx, code_chunk, matches)
        return written

    def _candidates(
        self, tx: sqlite3.Connection, chunk_id: int, side: str, other: str
    ) -> list[int]:
        rows = tx.execute(
            "SELECT b.chunk_id FROM fingerprints a JOIN fingerprints b "
            "ON b.side=? AND b.hash=a.hash WHERE a.side=? AND a.chunk_id=? "
            "GROUP BY b.chunk_id HAVING count(*) >= ?",
            (other, side, chunk_id, self.min_shared),
        )
        return [int(r[0]) for r in rows]


def _write_links(tx: sqlite3.Connection, code_chunk: int, matches: Sequence[Match]) -> int:
    tx.executemany(
        "INSERT OR REPLACE INTO links(code_chunk, chat_chunk, score, shared) VALUES (?, ?, ?, ?)",
        [(code_chunk, m.block_id, m.score, m.shared) for m in matches],
    )
    return len(matches)


def _hashes(tx: sqlite3.Connection, side: str, chunk_id: int) -> dict[int, int]:
    rows = tx.execute(
        "SELECT hash, line FROM fingerprints WHERE chunk_id=? AND side=?", (chunk_id, side)
    )
    return {int(h): int(line) for h, line in rows}


def _file_time(tx: sqlite3.Connection, chunk_id: int) -> float | None:
    row = tx.execute(
        "SELECT f.mtime_ns FROM chunks c JOIN files f ON f.id=c.file_id WHERE c.id=?",
        (chunk_id,),
    ).fetchone()
    return None if row is None else int(row[0]) / 1e9


def _message_time(tx: sqlite3.Connection, chunk_id: int) -> float | None:
    row = tx.execute(
        "SELECT m.created FROM chunks c JOIN messages m ON m.id=c.message_id WHERE c.id=?",
        (chunk_id,),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def _predates(chat_time: float | None, code_time: float | None) -> bool:
    """A chat can only have produced code that was saved after it."""
    return chat_time is None or code_time is None or chat_time < code_time


_LINK_SELECT = (
    "SELECT m.conversation_id, cv.title, m.message_id, m.position, m.role, m.created, "
    "l.score, l.shared, l.code_chunk, c.start_line, c.end_line, l.chat_chunk "
    "FROM links l JOIN chunks c ON c.id=l.code_chunk JOIN chunks b ON b.id=l.chat_chunk "
    "JOIN messages m ON m.id=b.message_id JOIN conversations cv ON cv.id=m.conversation_id"
)


def _link(row: tuple[object, ...]) -> ChatLink:
    chat_id, title, mid, pos, role, created, score, shared, code, start, end, block = row
    return ChatLink(
        chat_id=str(chat_id),
        title=str(title),
        message_id=str(mid),
        position=int(str(pos)),
        role=str(role),
        created=None if created is None else float(str(created)),
        score=float(str(score)),
        shared=int(str(shared)),
        code_chunk=int(str(code)),
        start_line=int(str(start)),
        end_line=int(str(end)),
        chat_chunk=int(str(block)),
    )


def links_for_file(conn: sqlite3.Connection, path: str, line: int | None = None) -> list[ChatLink]:
    """The conversations behind a file (or the chunks covering ``line``), best link each."""
    sql = f"{_LINK_SELECT} JOIN files f ON f.id=c.file_id WHERE f.path=?"
    params: list[object] = [path]
    if line is not None:
        sql += " AND c.start_line<=? AND c.end_line>=?"
        params += [line, line]
    rows = conn.execute(sql + " ORDER BY l.score DESC, m.created", params)
    best: dict[str, ChatLink] = {}
    for row in rows:
        link = _link(tuple(row))
        best.setdefault(link.chat_id, link)
    return sorted(best.values(), key=lambda k: (-k.score, k.created or 0.0))


def top_links(conn: sqlite3.Connection, chunk_ids: Sequence[int]) -> dict[int, ChatLink]:
    """The best-scoring link of each of these code chunks that has one."""
    out: dict[int, ChatLink] = {}
    for start in range(0, len(chunk_ids), 500):
        part = list(chunk_ids[start : start + 500])
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"{_LINK_SELECT} WHERE l.code_chunk IN ({marks}) ORDER BY l.score DESC", part
        )
        for row in rows:
            link = _link(tuple(row))
            out.setdefault(link.code_chunk, link)
    return out
