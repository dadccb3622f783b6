"""An in-process labmind index over one folder, built with the daemon's own services."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from labmind.daemon.config import IndexConfig
from labmind.daemon.embedding import EmbeddingService
from labmind.daemon.events import EventBus
from labmind.daemon.indexing import IndexService
from labmind.daemon.store import Store
from labmind.indexers.embedder import Embedder
from labmind.indexers.fusion import FusionWeights
from labmind.indexers.lexical import LexicalIndex
from labmind.indexers.search import HybridSearcher, Mode, Ranked


@dataclass(frozen=True, slots=True)
class BuildTimes:
    lexical_s: float
    embed_s: float
    files: int
    chunks: int
    embedded: int


class Workspace:
    def __init__(
        self, home: Path, embedder: Embedder | None, config: IndexConfig | None = None
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.store = Store(home / "labmind.sqlite3")
        self.events = EventBus()
        lexical = LexicalIndex.open_or_create(home / "lexical")
        self.indexer = IndexService(
            self.store,
            lexical,
            home / "lexical",
            self.events,
            config or IndexConfig(max_file_size_mb=4.0),
        )
        self.embedding = (
            EmbeddingService(self.store, embedder, home / "vectors.usearch", self.events)
            if embedder is not None
            else None
        )
        self.embedder = embedder
        self.indexer.start()
        if self.embedding is not None:
            self.embedding.load()
            self.embedding.start()

    def build(self, folder: Path) -> BuildTimes:
        root, _ = self.store.add_root(str(folder.resolve()))
        started = time.perf_counter()
        job = self.indexer.scan([root.path])
        self.indexer.wait(job)
        lexical_s = time.perf_counter() - started
        embed_s = 0.0
        if self.embedding is not None:
            started = time.perf_counter()
            self.embedding.kick()
            self.embedding.wait_idle()
            embed_s = time.perf_counter() - started
        done, _ = self.store.embedding_progress()
        return BuildTimes(
            lexical_s, embed_s, self.store.file_count(), self.store.chunk_count(), done
        )

    def searcher(self, weights: FusionWeights | None = None) -> HybridSearcher:
        assert self.indexer.lexical is not None
        vectors = self.embedding.vectors if self.embedding else None
        return HybridSearcher(
            self.indexer.lexical, vectors, self.embedder, self.store, weights=weights
        )

    def search(
        self, query: str, mode: Mode, limit: int = 10, weights: FusionWeights | None = None
    ) -> list[Ranked]:
        return self.searcher(weights).search(query, limit=limit, mode=mode).hits

    def close(self) -> None:
        self.indexer.stop()
        if self.embedding is not None:
            self.embedding.stop()
        if self.indexer.lexical is not None:
            self.indexer.lexical.close()
        self.store.close()
