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
    # 2: chats (conversations, messages; chunks may belong to a message instead of a
    # file), fingerprints of code and chat code blocks (`chunks.fingerprinted` marks the
    # chunks done), provenance links, imported exports
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        created REAL,
        updated REAL,
        model TEXT,
        origin TEXT NOT NULL,
        imported_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        message_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        role TEXT NOT NULL,
        created REAL,
        on_path INTEGER NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX messages_conversation ON messages(conversation_id, position);
    CREATE TABLE chunks_v2 (
        id INTEGER PRIMARY KEY,
        file_id INTEGER REFERENCES files(id) ON DELETE CASCADE,
        message_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        language TEXT NOT NULL,
        symbol TEXT,
        header TEXT NOT NULL,
        start_line INTEGER NOT NULL,
        end_line INTEGER NOT NULL,
        text TEXT NOT NULL,
        vec_key INTEGER NOT NULL,
        fingerprinted INTEGER NOT NULL DEFAULT 0,
        CHECK ((file_id IS NULL) <> (message_id IS NULL))
    );
    INSERT INTO chunks_v2(id, file_id, message_id, kind, language, symbol, header, start_line,
                          end_line, text, vec_key)
        SELECT id, file_id, NULL, kind, language, symbol, header, start_line, end_line, text,
               vec_key FROM chunks;
    DROP TABLE chunks;
    ALTER TABLE chunks_v2 RENAME TO chunks;
    CREATE INDEX chunks_file ON chunks(file_id);
    CREATE INDEX chunks_message ON chunks(message_id);
    CREATE INDEX chunks_vec_key ON chunks(vec_key);
    CREATE INDEX chunks_unprinted ON chunks(id) WHERE fingerprinted = 0;
    CREATE TABLE fingerprints (
        side TEXT NOT NULL,
        hash INTEGER NOT NULL,
        chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
        line INTEGER NOT NULL,
        PRIMARY KEY (side, hash, chunk_id)
    ) WITHOUT ROWID;
    CREATE INDEX fingerprints_chunk ON fingerprints(chunk_id);
    CREATE TABLE links (
        code_chunk INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
        chat_chunk INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
        score REAL NOT NULL,
        shared INTEGER NOT NULL,
        PRIMARY KEY (code_chunk, chat_chunk)
    ) WITHOUT ROWID;
    CREATE INDEX links_chat ON links(chat_chunk);
    CREATE TABLE imports (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        kind TEXT NOT NULL,
        conversations INTEGER NOT NULL,
        problems INTEGER NOT NULL,
        error TEXT,
        at REAL NOT NULL
    );
    """,
    # 3: backups: the repositories and shadow folders backed up, what their last
    # snapshot held back, and the last push of each snapshot branch
    """
    CREATE TABLE backup_repos (
        path TEXT PRIMARY KEY,
        root TEXT NOT NULL,
        shadow INTEGER NOT NULL,
        added_at REAL NOT NULL,
        snapshot_at REAL,
        snapshot_branch TEXT,
        snapshot_commit TEXT,
        files_changed INTEGER NOT NULL DEFAULT 0,
        checked_at REAL,
        error TEXT
    );
    CREATE TABLE backup_held (
        repo TEXT NOT NULL REFERENCES backup_repos(path) ON DELETE CASCADE,
        path TEXT NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (repo, path)
    ) WITHOUT ROWID;
    CREATE TABLE backup_pushes (
        repo TEXT NOT NULL REFERENCES backup_repos(path) ON DELETE CASCADE,
        branch TEXT NOT NULL,
        remote_ref TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        pushed_commit TEXT,
        at REAL NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        retry_at REAL,
        PRIMARY KEY (repo, branch, remote_ref)
    ) WITHOUT ROWID;
    """,
    # 4: experiments: submitted sweeps, their runs (the queue), and every attempt of a
    # run with what was changed to make it (the lineage)
    """
    CREATE TABLE sweeps (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        spec_path TEXT NOT NULL,
        spec TEXT NOT NULL,
        submitted_at REAL NOT NULL,
        code_commit TEXT
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        sweep_id TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL,
        params TEXT NOT NULL,
        command TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        submitted_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        exit_code INTEGER,
        signal INTEGER,
        failure TEXT,
        summary TEXT,
        run_dir TEXT,
        pid INTEGER,
        pgid INTEGER,
        start_time REAL,
        gpus TEXT,
        proposal TEXT
    );
    CREATE INDEX runs_queue ON runs(status, priority, submitted_at, idx);
    CREATE INDEX runs_sweep ON runs(sweep_id, idx);
    CREATE TABLE attempts (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        params TEXT NOT NULL,
        command TEXT NOT NULL,
        change TEXT,
        gpus TEXT,
        started_at REAL,
        ended_at REAL,
        exit_code INTEGER,
        signal INTEGER,
        failure TEXT,
        summary TEXT,
        PRIMARY KEY (run_id, attempt)
    ) WITHOUT ROWID;
    """,
    # 5: outliers: how far each attempt's outliers.jsonl and spikes.jsonl have been read
    # (so nothing is announced twice), its flagged samples (latest score, every reason
    # given) and its loss spikes
    """
    CREATE TABLE outlier_files (
        run_dir TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        outliers_offset INTEGER NOT NULL DEFAULT 0,
        spikes_offset INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE outlier_samples (
        run_dir TEXT NOT NULL REFERENCES outlier_files(run_dir) ON DELETE CASCADE,
        sample INTEGER NOT NULL,
        score REAL,
        reasons TEXT NOT NULL,
        label INTEGER,
        predicted INTEGER,
        step INTEGER NOT NULL,
        epoch INTEGER,
        time REAL NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (run_dir, sample)
    ) WITHOUT ROWID;
    CREATE INDEX outlier_samples_score ON outlier_samples(run_dir, score);
    CREATE TABLE outlier_spikes (
        run_dir TEXT NOT NULL REFERENCES outlier_files(run_dir) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        time REAL NOT NULL,
        loss REAL,
        baseline REAL,
        z REAL,
        samples TEXT NOT NULL,
        PRIMARY KEY (run_dir, step)
    ) WITHOUT ROWID;
    """,
    # 6: lessons: libraries that caused trouble and what replaced them. `lesson_episodes`
    # holds what mining found in each source (a conversation, a failed run), `lesson_sources`
    # the version of each source mined (so a re-import mines only what changed), `lessons`
    # the user's side (status, edited resolution, note), and `lesson_warnings` the
    # (file, lesson) pairs already warned about
    """
    CREATE TABLE lessons (
        id TEXT PRIMARY KEY,
        library TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL DEFAULT 'active',
        resolution TEXT,
        note TEXT,
        updated_at REAL NOT NULL
    );
    CREATE TABLE lesson_sources (
        source TEXT PRIMARY KEY,
        version REAL,
        mined_at REAL NOT NULL
    );
    CREATE TABLE lesson_episodes (
        source TEXT NOT NULL REFERENCES lesson_sources(source) ON DELETE CASCADE,
        library TEXT NOT NULL,
        ref TEXT NOT NULL,
        symptom TEXT NOT NULL,
        resolution TEXT,
        resolution_kind TEXT,
        replacement TEXT,
        confidence REAL NOT NULL,
        seen REAL,
        context TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (source, library)
    ) WITHOUT ROWID;
    CREATE INDEX lesson_episodes_library ON lesson_episodes(library);
    CREATE TABLE lesson_warnings (
        path TEXT NOT NULL,
        lesson_id TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (path, lesson_id)
    ) WITHOUT ROWID;
    """,
    # 7: the queue's order as an index, so the next queued run is read without a sort.
    """
    DROP INDEX runs_queue;
    CREATE INDEX runs_queue ON runs(status, priority DESC, submitted_at, idx);
    """,
)
