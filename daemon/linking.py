"""The provenance service: fingerprints code chunks and links them to chats, behind indexing.

Indexing makes a file searchable first; this thread then takes the file chunks not yet
fingerprinted (``chunks.fingerprinted = 0``) in batches, fingerprints them outside any
transaction, and writes fingerprints, links and the done-mark in one transaction, for
the chunks that still exist by then. Chat code blocks are fingerprinted at import.
"""

from __future__ import annotations

import logging
import threading

from .events import EventBus
from .provenance import Linker
from .store import Fingerprint, Store

log = logging.getLogger("labmind.provenance")

BATCH_CHUNKS = 200


class LinkingService:
    """One thread; :meth:`kick` after new chunks are committed."""

    def __init__(self, store: Store, linker: Linker, events: EventBus) -> None:
        self.store = store
        self.linker = linker
        self.events = events
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._idle = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="labmind-links", daemon=True)
        self._thread.start()
        self.kick()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def kick(self) -> None:
        with self._idle:
            self._busy = True
        self._wake.set()

    def pending(self) -> int:
        """File chunks waiting to be fingerprinted and linked."""
        return self.store.unprinted_count()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            while not self._stopping and self._run_guarded():
                pass
            with self._idle:
                if not self._wake.is_set():
                    self._busy = False
                    self._idle.notify_all()

    def _run_guarded(self) -> int:
        """One batch; a batch that fails is marked done without links, so it cannot
        stall the rest (its files get links again when they change). 0 stops the round."""
        batch: list[tuple[int, str, str, int]] = []
        try:
            batch = self.store.unprinted_chunks(BATCH_CHUNKS)
            return self.run_once(batch)
        except Exception as exc:  # the thread must outlive any one bad batch
            log.exception("linking failed")
            self.last_error = f"provenance: {type(exc).__name__}: {exc}"
        if not batch:
            return 0
        try:
            with self.store.transaction() as tx:
                tx.executemany(
                    "UPDATE chunks SET fingerprinted = 1 WHERE id = ?", [(c[0],) for c in batch]
                )
        except Exception:  # the store itself is failing: wait for the next kick
            log.exception("cannot set a failed batch aside")
            return 0
        return len(batch)

    def run_once(self, batch: list[tuple[int, str, str, int]]) -> int:
        """Fingerprint and link one batch of unprinted chunks; returns its size."""
        if not batch:
            return 0
        prints: dict[int, list[Fingerprint]] = {
            cid: self.linker.chunk_fingerprints(cid, text, language, line)
            for cid, text, language, line in batch
        }
        with self.store.transaction() as tx:
            marks = ",".join("?" * len(prints))
            alive = [
                int(r[0])
                for r in tx.execute(
                    f"SELECT id FROM chunks WHERE id IN ({marks}) AND fingerprinted = 0",  # noqa: S608
                    list(prints),
                )
            ]
            tx.executemany(
                "INSERT OR IGNORE INTO fingerprints(side, hash, chunk_id, line) "
                "VALUES ('code', ?, ?, ?)",
                [(fp.hash, fp.chunk_id, fp.line) for cid in alive for fp in prints[cid]],
            )
            tx.executemany(
                "UPDATE chunks SET fingerprinted = 1 WHERE id = ?", [(c,) for c in alive]
            )
            linked = self.linker.link_code(tx, [c for c in alive if prints[c]])
        if linked:
            self.events.publish({"type": "linked", "links": linked})
        return len(batch)
