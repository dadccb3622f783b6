"""Hybrid search: BM25 from Tantivy and cosine from the vector index, fused by score."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from .embedder import Embedder, EmbedderError
from .fusion import FusionWeights, Signals, fuse
from .lexical import LexicalIndex
from .vectors import VectorIndex

Mode = Literal["hybrid", "lexical", "semantic"]


class CatalogChunk(Protocol):
    """What search needs to know about a stored chunk."""

    @property
    def id(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def symbol(self) -> str | None: ...
    @property
    def start_line(self) -> int: ...
    @property
    def end_line(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def vec_key(self) -> int: ...
    @property
    def mtime(self) -> float: ...


class ChunkCatalog(Protocol):
    """Chunk records by id, and chunk ids by vector key."""

    def chunks_by_ids(self, ids: Sequence[int]) -> Mapping[int, CatalogChunk]: ...
    def chunk_ids_by_keys(self, keys: Sequence[int]) -> Mapping[int, list[int]]: ...


@dataclass(frozen=True, slots=True)
class Filters:
    kinds: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    path_glob: str | None = None
    since: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.kinds or self.languages or self.path_glob or self.since is not None)

    def accepts(self, chunk: CatalogChunk) -> bool:
        if self.kinds and chunk.kind not in self.kinds:
            return False
        if self.languages and chunk.language not in self.languages:
            return False
        if self.since is not None and chunk.mtime < self.since:
            return False
        return self.path_glob is None or _glob_match(chunk.path, self.path_glob)


@dataclass(frozen=True, slots=True)
class Ranked:
    chunk: CatalogChunk
    score: float
    bm25: float | None
    cosine: float | None


@dataclass(slots=True)
class SearchOutcome:
    hits: list[Ranked]
    mode: Mode
    notes: list[str] = field(default_factory=list)


class HybridSearcher:
    """Answers queries from a lexical index, a vector index and a chunk catalog."""

    def __init__(
        self,
        lexical: LexicalIndex,
        vectors: VectorIndex | None,
        embedder: Embedder | None,
        catalog: ChunkCatalog,
        *,
        weights: FusionWeights | None = None,
        candidates: int = 100,
    ) -> None:
        self.lexical = lexical
        self.vectors = vectors
        self.embedder = embedder
        self.catalog = catalog
        self.weights = weights or FusionWeights()
        self.candidates = candidates
        self._lock = threading.Lock()

    def set_vectors(self, vectors: VectorIndex | None) -> None:
        with self._lock:
            self.vectors = vectors

    def search(
        self, query: str, *, limit: int = 10, mode: Mode = "hybrid", filters: Filters | None = None
    ) -> SearchOutcome:
        filters = filters or Filters()
        k = max(self.candidates, limit * 5) * (4 if filters.active else 1)
        notes: list[str] = []
        vectors = self.vectors
        qvec: np.ndarray | None = None
        if mode != "lexical" and vectors is not None and len(vectors) and self.embedder:
            try:
                qvec = self.embedder.embed([query])[0]
            except EmbedderError as exc:
                notes.append(f"semantic search unavailable: {exc}")
        if mode != "lexical" and qvec is None:
            if mode == "semantic":
                notes.append("no vectors yet: semantic search has nothing to search")
                return SearchOutcome([], mode, notes)
            mode = "lexical"
        signals: dict[int, Signals] = {}
        if mode != "semantic":
            lex = self.lexical.search(
                query,
                k,
                kinds=filters.kinds,
                languages=filters.languages,
                since=None if filters.since is None else int(filters.since),
            )
            signals = {h.chunk_id: Signals(h.score, None) for h in lex}
        if qvec is not None and vectors is not None:
            signals = self._add_cosines(qvec, vectors, k, signals, mode)
        records = self.catalog.chunks_by_ids(list(signals))
        signals = {cid: s for cid, s in signals.items() if cid in records}
        if mode == "hybrid":
            scores = fuse(query, signals, self.weights)
        elif mode == "lexical":
            scores = {cid: s.bm25 or 0.0 for cid, s in signals.items()}
        else:
            scores = {cid: s.cosine or 0.0 for cid, s in signals.items()}
        ranked: list[Ranked] = []
        for cid in sorted(scores, key=lambda c: (-scores[c], c)):
            chunk = records[cid]
            if not filters.accepts(chunk):
                continue
            sig = signals[cid]
            ranked.append(Ranked(chunk, scores[cid], sig.bm25, sig.cosine))
            if len(ranked) >= limit:
                break
        return SearchOutcome(ranked, mode, notes)

    def _add_cosines(
        self,
        qvec: np.ndarray,
        vectors: VectorIndex,
        k: int,
        signals: dict[int, Signals],
        mode: Mode,
    ) -> dict[int, Signals]:
        """Vector top-k joined to chunk ids, plus exact cosines for the lexical candidates."""
        out = dict(signals)
        nearest = vectors.search(qvec, k)
        by_key = self.catalog.chunk_ids_by_keys([key for key, _ in nearest])
        for key, cos in nearest:
            for cid in by_key.get(key, []):
                prior = out.get(cid)
                out[cid] = Signals(prior.bm25 if prior else None, cos)
        if mode == "hybrid" and signals:
            missing = [cid for cid, s in out.items() if s.cosine is None]
            records = self.catalog.chunks_by_ids(missing)
            keys = {cid: rec.vec_key for cid, rec in records.items()}
            sims = vectors.similarities(qvec, list(set(keys.values())))
            for cid, key in keys.items():
                if key in sims:
                    out[cid] = Signals(out[cid].bm25, sims[key])
        return out


def _glob_match(path: str, pattern: str) -> bool:
    """A glob against the whole path, or against its tail when the glob is relative."""
    if fnmatch.fnmatch(path, pattern):
        return True
    return not pattern.startswith("/") and fnmatch.fnmatch(path, f"*/{pattern}")
