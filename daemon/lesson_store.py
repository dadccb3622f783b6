"""Lesson tables of the :class:`Store`: mined episodes per source, the user's edits, and
the (file, lesson) pairs already warned about."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from labmind.indexers.lessons import Episode, Resolution, lesson_id

from .store import Store

LIBRARY_FAILURES = ("missing_module", "import_error", "unknown", "cuda_error")


@dataclass(frozen=True, slots=True)
class UserSide:
    """What the user said about a lesson: its status, an edited resolution, a note."""

    id: str
    library: str
    status: str
    resolution: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class PendingChat:
    id: str
    title: str
    updated: float | None


@dataclass(frozen=True, slots=True)
class PendingAttempt:
    run_id: str
    attempt: int
    failure: str | None
    summary: str | None
    command: str
    ended_at: float | None

    @property
    def source(self) -> str:
        return f"run:{self.run_id}#{self.attempt}"


class AmbiguousLessonId(Exception):
    """A lesson id prefix that matches more than one lesson."""


def _resolution_of(kind: str | None, text: str | None, library: str | None) -> Resolution | None:
    if kind is None or text is None:
        return None
    return Resolution(kind, text, library)  # type: ignore[arg-type]


class LessonStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- what is left to mine ----------------------------------------------------------------

    def pending_chats(self, limit: int = 200) -> list[PendingChat]:
        """Conversations not mined yet, or changed since they were."""
        rows = self.store.reader().execute(
            "SELECT c.id, c.title, c.updated FROM conversations c "
            "LEFT JOIN lesson_sources s ON s.source = 'chat:' || c.id "
            "WHERE s.source IS NULL OR s.version IS NOT c.updated LIMIT ?",
            (limit,),
        )
        return [PendingChat(str(i), str(t), None if u is None else float(u)) for i, t, u in rows]

    def pending_attempts(self, limit: int = 200) -> list[PendingAttempt]:
        """Attempts that ended with a failure and are not mined yet."""
        rows = self.store.reader().execute(
            "SELECT a.run_id, a.attempt, a.failure, a.summary, a.command, a.ended_at "
            "FROM attempts a LEFT JOIN lesson_sources s "
            "ON s.source = 'run:' || a.run_id || '#' || a.attempt "
            "WHERE a.ended_at IS NOT NULL AND a.failure IN (?, ?, ?, ?) "
            "AND s.source IS NULL LIMIT ?",
            (*LIBRARY_FAILURES, limit),
        )
        return [PendingAttempt(str(r), int(a), f, s, str(c), e) for r, a, f, s, c, e in rows]

    def record(self, source: str, version: float | None, episodes: Sequence[Episode]) -> None:
        """Replace what ``source`` said with ``episodes`` (one per library)."""
        now = time.time()
        with self.store.transaction() as tx:
            tx.execute("DELETE FROM lesson_episodes WHERE source=?", (source,))
            tx.execute(
                "INSERT OR REPLACE INTO lesson_sources(source, version, mined_at) VALUES (?, ?, ?)",
                (source, version, now),
            )
            for e in {e.library: e for e in episodes}.values():
                r = e.resolution
                tx.execute(
                    "INSERT INTO lesson_episodes(source, library, ref, symptom, resolution, "
                    "resolution_kind, replacement, confidence, seen, context) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        source,
                        e.library,
                        e.ref,
                        e.symptom,
                        None if r is None else r.text,
                        None if r is None else r.kind,
                        None if r is None else r.library,
                        e.confidence,
                        e.seen,
                        e.context,
                    ),
                )
                tx.execute(
                    "INSERT OR IGNORE INTO lessons(id, library, status, updated_at) "
                    "VALUES (?, ?, 'active', ?)",
                    (lesson_id(e.library), e.library, now),
                )

    # -- reading -----------------------------------------------------------------------------

    def episodes(self) -> dict[str, list[Episode]]:
        """Every episode, by library."""
        rows = self.store.reader().execute(
            "SELECT library, ref, symptom, resolution, resolution_kind, replacement, "
            "confidence, seen, context FROM lesson_episodes ORDER BY library, seen"
        )
        out: dict[str, list[Episode]] = {}
        for lib, ref, symptom, res, kind, repl, conf, seen, context in rows:
            out.setdefault(str(lib), []).append(
                Episode(
                    library=str(lib),
                    symptom=str(symptom),
                    ref=str(ref),
                    confidence=float(conf),
                    resolution=_resolution_of(kind, res, repl),
                    seen=None if seen is None else float(seen),
                    context=str(context),
                )
            )
        return out

    def user_sides(self) -> dict[str, UserSide]:
        """The user's side of every lesson, by library."""
        rows = self.store.reader().execute(
            "SELECT id, library, status, resolution, note FROM lessons"
        )
        return {str(lib): UserSide(str(i), str(lib), str(s), r, n) for i, lib, s, r, n in rows}

    def find(self, id_or_prefix: str) -> UserSide | None:
        """The lesson with this id, library or unique id prefix."""
        conn = self.store.reader()
        sql = "SELECT id, library, status, resolution, note FROM lessons"
        row = conn.execute(
            f"{sql} WHERE id=? OR library=?", (id_or_prefix, id_or_prefix)
        ).fetchone()
        if row is None and id_or_prefix:
            rows = conn.execute(
                f"{sql} WHERE substr(id, 1, ?)=? LIMIT 2", (len(id_or_prefix), id_or_prefix)
            ).fetchall()
            if len(rows) > 1:
                raise AmbiguousLessonId(
                    f"'{id_or_prefix}' matches more than one lesson; give more of the id"
                )
            row = rows[0] if rows else None
        return (
            None if row is None else UserSide(str(row[0]), str(row[1]), str(row[2]), row[3], row[4])
        )

    # -- the user's edits --------------------------------------------------------------------

    def update(
        self, lesson: str, *, status: str | None, resolution: str | None, note: str | None
    ) -> None:
        sets: list[str] = ["updated_at=?"]
        values: list[object] = [time.time()]
        for column, value in (("status", status), ("resolution", resolution), ("note", note)):
            if value is not None:
                sets.append(f"{column}=?")
                values.append(value or None)
        with self.store.transaction() as tx:
            tx.execute(f"UPDATE lessons SET {', '.join(sets)} WHERE id=?", (*values, lesson))  # noqa: S608

    # -- pre-flight warnings -----------------------------------------------------------------

    def first_warning(self, path: str, lesson: str) -> bool:
        """Record a warning about ``lesson`` for ``path``; False if one was given before."""
        with self.store.transaction() as tx:
            cur = tx.execute(
                "INSERT OR IGNORE INTO lesson_warnings(path, lesson_id, at) VALUES (?, ?, ?)",
                (path, lesson, time.time()),
            )
            return cur.rowcount > 0

    def warned(self, paths: Iterable[str]) -> set[tuple[str, str]]:
        wanted = list(paths)
        if not wanted:
            return set()
        marks = ",".join("?" * len(wanted))
        rows = self.store.reader().execute(
            f"SELECT path, lesson_id FROM lesson_warnings WHERE path IN ({marks})",  # noqa: S608
            wanted,
        )
        return {(str(p), str(i)) for p, i in rows}
