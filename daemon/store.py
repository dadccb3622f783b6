"""The daemon's SQLite store (WAL): watched roots, indexed files, chunks and vectors."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .migrations import MIGRATIONS


class StoreError(Exception):
    """The store cannot be opened or is from an incompatible version."""


@dataclass(frozen=True, slots=True)
class Root:
    id: int
    path: str
    added_at: float
    error: str | None


@dataclass(frozen=True, slots=True)
class FileState:
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk as it is written: the file's id is given by the surrounding call."""

    id: int
    kind: str
    language: str
    symbol: str | None
    header: str
    start_line: int
    end_line: int
    text: str
    vec_key: int

    def values(self) -> tuple[object, ...]:
        """Columns kind … vec_key, in the order of the ``chunks`` table."""
        return (
            self.kind,
            self.language,
            self.symbol,
            self.header,
            self.start_line,
            self.end_line,
            self.text,
            self.vec_key,
        )


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A chunk as search reads it back: a file's (path, root, mtime) or a chat message's.

    Chat chunks have ``path`` ``chat:<conversation id>``, an empty ``root``, the message's
    time as ``mtime``, and the conversation in ``chat_id`` and ``chat_title``.
    """

    id: int
    path: str
    root: str
    kind: str
    language: str
    symbol: str | None
    header: str
    start_line: int
    end_line: int
    text: str
    vec_key: int
    mtime: float
    chat_id: str | None = None
    chat_title: str | None = None
    role: str | None = None
    on_path: bool = True


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One winnowed fingerprint of a chunk, and the line of the chunk's file it starts on."""

    chunk_id: int
    hash: int
    line: int


@dataclass(frozen=True, slots=True)
class FileUpdate:
    """One file's new indexed state and chunks."""

    root_id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    language: str
    chunks: Sequence[ChunkRow]


@dataclass(frozen=True, slots=True)
class Skip:
    path: str
    reason: str
    at: float


CHUNK_SELECT = (
    "SELECT c.id, coalesce(f.path, 'chat:' || m.conversation_id), coalesce(r.path, ''), c.kind, "
    "c.language, c.symbol, c.header, c.start_line, c.end_line, c.text, c.vec_key, f.mtime_ns, "
    "coalesce(m.created, cv.updated, 0), m.conversation_id, cv.title, m.role, m.on_path "
    "FROM chunks c LEFT JOIN files f ON f.id=c.file_id LEFT JOIN roots r ON r.id=f.root_id "
    "LEFT JOIN messages m ON m.id=c.message_id "
    "LEFT JOIN conversations cv ON cv.id=m.conversation_id"
)
"""Every column of :class:`ChunkRecord`, for a file's chunk or a chat message's."""


def chunk_record(row: sqlite3.Row | tuple[object, ...]) -> ChunkRecord:
    """A :class:`ChunkRecord` from a row of :data:`CHUNK_SELECT`."""
    (cid, path, root, kind, language, symbol, header, start, end, text, key) = row[:11]
    (mtime_ns, created, chat_id, chat_title, role, on_path) = row[11:]
    return ChunkRecord(
        id=int(str(cid)),
        path=str(path),
        root=str(root),
        kind=str(kind),
        language=str(language),
        symbol=None if symbol is None else str(symbol),
        header=str(header),
        start_line=int(str(start)),
        end_line=int(str(end)),
        text=str(text),
        vec_key=int(str(key)),
        mtime=int(str(mtime_ns)) / 1e9 if mtime_ns is not None else float(str(created)),
        chat_id=None if chat_id is None else str(chat_id),
        chat_title=None if chat_title is None else str(chat_title),
        role=None if role is None else str(role),
        on_path=on_path is None or bool(on_path),
    )


PAGE_CACHE_KIB = 16_000
"""Page cache per connection (allocated as used). Chunk ids are hashes, so a scan's
inserts land all over the chunks table; with SQLite's default 2 MB they kept evicting
the pages the next insert needed (a standard library scan wrote 30% slower)."""


class Store:
    """SQLite in WAL mode; one connection per thread, migrations applied on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # -- connections -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
            except sqlite3.DatabaseError as exc:
                raise StoreError(
                    f"cannot open the store {self.path}: {exc}; move it away or delete it"
                ) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def reader(self) -> sqlite3.Connection:
        """This thread's connection, for queries kept outside this class (chats, links)."""
        return self._conn()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """An immediate write transaction on this thread's connection."""
        return self._tx()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        conn = self._conn()
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a labmind store ({exc})") from exc
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} was written by a newer labmind (schema {version}, "
                f"this one knows {len(MIGRATIONS)}); upgrade labmind"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._tx() as tx:
                for statement in script.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute(f"PRAGMA user_version={number}")

    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    # -- meta --------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as tx:
            tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- roots -------------------------------------------------------------------------------

    def add_root(self, path: str) -> tuple[Root, bool]:
        """Add a watched root; returns it and whether it is new."""
        with self._tx() as tx:
            row = tx.execute("SELECT id, path, added_at, error FROM roots WHERE path=?", (path,))
            found = row.fetchone()
            if found is not None:
                return Root(*found), False
            now = time.time()
            cur = tx.execute("INSERT INTO roots(path, added_at) VALUES (?, ?)", (path, now))
            return Root(int(cur.lastrowid or 0), path, now, None), True

    def remove_root(self, path: str) -> bool:
        with self._tx() as tx:
            return tx.execute("DELETE FROM roots WHERE path=?", (path,)).rowcount > 0

    def roots(self) -> list[Root]:
        rows = self._conn().execute("SELECT id, path, added_at, error FROM roots ORDER BY path")
        return [Root(*r) for r in rows]

    def root(self, path: str) -> Root | None:
        row = (
            self._conn()
            .execute("SELECT id, path, added_at, error FROM roots WHERE path=?", (path,))
            .fetchone()
        )
        return None if row is None else Root(*row)

    def set_root_error(self, root_id: int, error: str | None) -> None:
        with self._tx() as tx:
            tx.execute("UPDATE roots SET error=? WHERE id=?", (error, root_id))

    # -- files and chunks --------------------------------------------------------------------

    def file_states(self, root_id: int) -> dict[str, FileState]:
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns, sha256 FROM files WHERE root_id=?", (root_id,)
        )
        return {p: FileState(s, m, h) for p, s, m, h in rows}

    def file_states_under(self, root_id: int, prefix: str) -> dict[str, FileState]:
        """States of the root's files whose path starts with ``prefix`` (a folder + '/')."""
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns, sha256 FROM files "
            "WHERE root_id=? AND substr(path, 1, ?) = ?",
            (root_id, len(prefix), prefix),
        )
        return {p: FileState(s, m, h) for p, s, m, h in rows}

    def file_state(self, path: str) -> FileState | None:
        row = (
            self._conn()
            .execute("SELECT size, mtime_ns, sha256 FROM files WHERE path=?", (path,))
            .fetchone()
        )
        return None if row is None else FileState(*row)

    def indexed_paths(self, paths: Iterable[str]) -> list[str]:
        """Those of `paths` that are indexed."""
        return [p for p in paths if self.file_state(p) is not None]

    def paths_under(self, prefix: str) -> list[str]:
        """Indexed files whose path starts with `prefix` (a folder with its trailing slash)."""
        rows = self._conn().execute(
            "SELECT path FROM files WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
        )
        return [str(r[0]) for r in rows]

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        """Record a new mtime for a file whose content did not change."""
        with self._tx() as tx:
            tx.execute("UPDATE files SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))

    def apply(self, updates: Iterable[FileUpdate], deletions: Iterable[str]) -> None:
        """Write new file states and chunks and drop deleted files, in one transaction."""
        now = time.time()
        with self._tx() as tx:
            for path in deletions:
                tx.execute("DELETE FROM files WHERE path=?", (path,))
                tx.execute("DELETE FROM skipped WHERE path=?", (path,))
            for up in updates:
                tx.execute("DELETE FROM files WHERE path=?", (up.path,))
                tx.execute("DELETE FROM skipped WHERE path=?", (up.path,))
                cur = tx.execute(
                    "INSERT INTO files(root_id, path, size, mtime_ns, sha256, language, "
                    "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (up.root_id, up.path, up.size, up.mtime_ns, up.sha256, up.language, now),
                )
                file_id = cur.lastrowid
                tx.executemany(
                    "INSERT OR IGNORE INTO chunks(id, file_id, kind, language, symbol, header, "
                    "start_line, end_line, text, vec_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(c.id, file_id, *c.values()) for c in up.chunks],
                )

    def forget_all_files(self) -> None:
        """Drop every indexed file and its chunks (a rebuild); roots, chats and vectors stay."""
        with self._tx() as tx:
            tx.execute("DELETE FROM files")
            tx.execute("DELETE FROM skipped")

    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        out: dict[int, ChunkRecord] = {}
        for part in _batches(list(ids), 500):
            marks = ",".join("?" * len(part))
            rows = self._conn().execute(f"{CHUNK_SELECT} WHERE c.id IN ({marks})", part)
            for row in rows:
                record = chunk_record(row)
                out[record.id] = record
        return out

    def chunk_ids_by_keys(self, keys: Sequence[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for part in _batches(list(keys), 500):
            marks = ",".join("?" * len(part))
            rows = self._conn().execute(
                f"SELECT vec_key, id FROM chunks WHERE vec_key IN ({marks})",  # noqa: S608
                part,
            )
            for key, cid in rows:
                out.setdefault(int(key), []).append(int(cid))
        return out

    def unprinted_chunks(self, limit: int) -> list[tuple[int, str, str, int]]:
        """File chunks not fingerprinted yet: (id, text, language, start line)."""
        rows = self._conn().execute(
            "SELECT id, text, language, start_line FROM chunks "
            "WHERE fingerprinted = 0 AND file_id IS NOT NULL LIMIT ?",
            (limit,),
        )
        return [(int(i), str(t), str(lang), int(line)) for i, t, lang, line in rows]

    def unprinted_count(self) -> int:
        row = self._conn().execute("SELECT count(*) FROM chunks WHERE fingerprinted = 0")
        return int(row.fetchone()[0])

    def chunk_count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM chunks").fetchone()[0])

    def file_count(self, root_id: int | None = None) -> int:
        if root_id is None:
            return int(self._conn().execute("SELECT count(*) FROM files").fetchone()[0])
        row = self._conn().execute("SELECT count(*) FROM files WHERE root_id=?", (root_id,))
        return int(row.fetchone()[0])

    def iter_chunks(self) -> Iterator[ChunkRecord]:
        """Every chunk, grouped by file or conversation: rebuilds the lexical index."""
        cur = self._conn().execute(
            f"{CHUNK_SELECT} ORDER BY coalesce(f.path, m.conversation_id), c.start_line, c.id"
        )
        for row in cur:
            yield chunk_record(row)

    # -- vectors -----------------------------------------------------------------------------

    def pending_embeddings(self, limit: int) -> list[tuple[int, str, str]]:
        """Chunk keys with no vector yet: (key, header, text), one row per key."""
        rows = self._conn().execute(
            "SELECT c.vec_key, min(c.header), min(c.text) FROM chunks c "
            "LEFT JOIN vectors v ON v.key=c.vec_key WHERE v.key IS NULL "
            "GROUP BY c.vec_key LIMIT ?",
            (limit,),
        )
        return [(int(k), str(h), str(t)) for k, h, t in rows]

    def embedding_progress(self) -> tuple[int, int]:
        """(distinct chunk keys with a vector, distinct chunk keys)."""
        total = self._conn().execute("SELECT count(DISTINCT vec_key) FROM chunks").fetchone()[0]
        done = (
            self._conn()
            .execute(
                "SELECT count(DISTINCT c.vec_key) FROM chunks c JOIN vectors v ON v.key=c.vec_key"
            )
            .fetchone()[0]
        )
        return int(done), int(total)

    def add_vectors(self, rows: Sequence[tuple[int, bytes]]) -> None:
        with self._tx() as tx:
            tx.executemany("INSERT OR REPLACE INTO vectors(key, vector) VALUES (?, ?)", rows)

    def iter_vectors(self, batch: int = 4096) -> Iterator[list[tuple[int, bytes]]]:
        cur = self._conn().execute("SELECT key, vector FROM vectors")
        while rows := cur.fetchmany(batch):
            yield [(int(k), bytes(v)) for k, v in rows]

    def vector_count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM vectors").fetchone()[0])

    def orphan_vector_keys(self) -> list[int]:
        rows = self._conn().execute(
            "SELECT v.key FROM vectors v LEFT JOIN chunks c ON c.vec_key=v.key WHERE c.id IS NULL"
        )
        return [int(r[0]) for r in rows]

    def delete_vectors(self, keys: Sequence[int]) -> None:
        with self._tx() as tx:
            tx.executemany("DELETE FROM vectors WHERE key=?", [(k,) for k in keys])

    def clear_vectors(self) -> None:
        with self._tx() as tx:
            tx.execute("DELETE FROM vectors")

    # -- skipped files -----------------------------------------------------------------------

    def record_skip(self, root_id: int, path: str, reason: str) -> None:
        with self._tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO skipped(path, root_id, reason, at) VALUES (?, ?, ?, ?)",
                (path, root_id, reason, time.time()),
            )

    def skipped(self, root_id: int | None = None) -> list[Skip]:
        if root_id is None:
            rows = self._conn().execute("SELECT path, reason, at FROM skipped ORDER BY path")
        else:
            rows = self._conn().execute(
                "SELECT path, reason, at FROM skipped WHERE root_id=? ORDER BY path", (root_id,)
            )
        return [Skip(*r) for r in rows]

    def skipped_count(self, root_id: int | None = None) -> int:
        if root_id is None:
            return int(self._conn().execute("SELECT count(*) FROM skipped").fetchone()[0])
        row = self._conn().execute("SELECT count(*) FROM skipped WHERE root_id=?", (root_id,))
        return int(row.fetchone()[0])


def _batches(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
