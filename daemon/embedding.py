"""The embedding service: fills in vectors for chunks that have none, behind the lexical index.

SQLite holds every vector (float16 blobs keyed by content); the usearch file is a cache
of them that is checked against SQLite's keys when it is loaded and rebuilt from SQLite
when it differs (a crash before the last save, a foreign file). Changing the model
drops every vector and embeds again.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from labmind.indexers.chunk import EMBED_TEXT_CHARS
from labmind.indexers.embedder import Embedder, EmbedderError
from labmind.indexers.vectors import VectorIndex, VectorIndexError, keys_checksum

from .events import EventBus
from .store import Store

log = logging.getLogger("labmind.embedding")

BATCH = 256
SAVE_EVERY_S = 60.0


class EmbeddingService:
    """One thread that embeds pending chunks in batches and keeps the vector index."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        vectors_file: Path,
        events: EventBus,
        *,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.vectors_file = vectors_file
        self.events = events
        self.batch = batch
        self.vectors: VectorIndex | None = None
        self.last_error: str | None = None
        self.paused = False
        """While paused nothing is embedded (a batch under way is finished)."""
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dirty = False
        self._saved_at = time.monotonic()

    # -- start-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Open the vector index for the configured model, rebuilding the cache if needed."""
        model = self.embedder.model_name
        if self.store.get_meta("embed_model") not in (None, model):
            log.info("embedding model changed to %s: vectors will be recomputed", model)
            self.store.clear_vectors()
            self.store.set_meta("embed_dim", "")
            self.vectors_file.unlink(missing_ok=True)
        self.store.set_meta("embed_model", model)
        dim_text = self.store.get_meta("embed_dim")
        if not dim_text:
            return
        dim = int(dim_text)
        keys = [key for rows in self.store.iter_vectors() for key, _ in rows]
        try:
            index = VectorIndex.load(self.vectors_file, dim)
            if len(index) == len(keys) and index.checksum() == keys_checksum(keys):
                self.vectors = index
                return
            log.info("vector index file is behind the store: rebuilding it")
        except FileNotFoundError:
            pass
        except VectorIndexError as exc:
            log.warning("%s: rebuilding it from the store", exc)
        self.vectors = self._from_store(dim)
        self._dirty = True

    def _from_store(self, dim: int) -> VectorIndex:
        index = VectorIndex(dim)
        for rows in self.store.iter_vectors():
            keys = np.array([k for k, _ in rows], dtype=np.int64)
            mat = np.stack([np.frombuffer(b, dtype=np.float16) for _, b in rows]).astype(np.float32)
            index.add(keys, mat)
        return index

    # -- thread ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="labmind-embedder", daemon=True)
        self._thread.start()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused:
            self.kick()

    def kick(self) -> None:
        """New chunks were committed: look for work."""
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every chunk committed before the last kick has a vector (or it failed)."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.save()
        self.embedder.close()

    def save(self) -> None:
        if self.vectors is not None and self._dirty:
            self.vectors.save(self.vectors_file)
            self._dirty = False
            self._saved_at = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            self._work()
            if not self._wake.is_set():
                self._idle.set()

    def _work(self) -> None:
        while not self._stop.is_set():
            if self.paused:
                self.save()
                return
            try:
                done = self._step()
            except EmbedderError as exc:
                self._fail(str(exc))
                return
            except Exception as exc:
                log.exception("embedding failed")
                self._fail(f"{type(exc).__name__}: {exc}")
                return
            if done:
                self._collect_garbage()
                self.save()
                return
            if time.monotonic() - self._saved_at > SAVE_EVERY_S:
                self.save()

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.events.publish({"type": "alert", "message": f"embedding stopped: {message}"})

    def _step(self) -> bool:
        """Embed one batch; True when nothing is left."""
        rows = self.store.pending_embeddings(self.batch)
        if not rows:
            return True
        texts = [f"{header}\n{text}"[:EMBED_TEXT_CHARS] for _, header, text in rows]
        mat = self.embedder.embed(texts)
        if self.vectors is None:
            self.vectors = VectorIndex(int(mat.shape[1]))
            self.store.set_meta("embed_dim", str(mat.shape[1]))
        keys = np.array([k for k, _, _ in rows], dtype=np.int64)
        half = mat.astype(np.float16)
        self.store.add_vectors([(int(k), half[i].tobytes()) for i, k in enumerate(keys)])
        self.vectors.add(keys, mat)
        self._dirty = True
        self.last_error = None
        done, total = self.store.embedding_progress()
        self.events.publish({"type": "embedded", "embedded": done, "total": total})
        return False

    def _collect_garbage(self) -> None:
        """Drop vectors no chunk refers to any more."""
        orphans = self.store.orphan_vector_keys()
        if orphans:
            self.store.delete_vectors(orphans)
            if self.vectors is not None:
                self.vectors.remove(orphans)
            self._dirty = True
