"""Versioned schema of the SQLite store; `PRAGMA user_version` records how far it is."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: watched roots, indexed files, chunks, vectors
    """
    CREATE TABLE roots (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at REAL NOT NULL,
        error TEXT
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        language TEXT NOT NULL,
        indexed_at REAL NOT NULL
    );
    CREATE INDEX files_root ON files(root_id);
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        language TEXT NOT NULL,
        symbol TEXT,
        header TEXT NOT NULL,
        start_line INTEGER NOT NULL,
        end_line INTEGER NOT NULL,
        text TEXT NOT NULL,
        vec_key INTEGER NOT NULL
    );
    CREATE INDEX chunks_file ON chunks(file_id);
    CREATE INDEX chunks_vec_key ON chunks(vec_key);
    CREATE TABLE vectors (
        key INTEGER PRIMARY KEY,
        vector BLOB NOT NULL
    );
    CREATE TABLE skipped (
        path TEXT PRIMARY KEY,
        root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
        reason TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)
