"""Search as the API answers it: hybrid search plus snippets, titles and progress."""

from __future__ import annotations

import time
from collections.abc import Callable

from labmind.indexers.embedder import Embedder
from labmind.indexers.lexical import LexicalIndex, LexicalIndexError
from labmind.indexers.search import Filters, HybridSearcher, Ranked
from labmind.indexers.snippets import best_window
from labmind.indexers.vectors import VectorIndex

from .protocol import SearchHit, SearchRequest, SearchResponse
from .provenance import ChatLink, top_links
from .store import ChunkRecord, Store


class SearchUnavailable(Exception):
    """The index cannot answer (e.g. it is corrupt); the message says what to do."""


class SearchService:
    def __init__(
        self,
        store: Store,
        lexical: Callable[[], LexicalIndex | None],
        vectors: Callable[[], VectorIndex | None],
        embedder: Embedder | None,
        *,
        default_mode: str,
        lexical_error: Callable[[], str | None],
    ) -> None:
        self.store = store
        self._lexical = lexical
        self._vectors = vectors
        self._lexical_error = lexical_error
        self.embedder = embedder
        self.default_mode = default_mode

    def search(self, req: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        lexical = self._lexical()
        if lexical is None:
            raise SearchUnavailable(
                self._lexical_error() or "the index is not open; run `labmind index --rebuild`"
            )
        searcher = HybridSearcher(lexical, self._vectors(), self.embedder, self.store)
        filters = Filters(
            kinds=(req.kind,) if req.kind else (),
            languages=(req.language,) if req.language else (),
            path_glob=req.path_glob,
            since=req.since,
        )
        mode = req.mode or self.default_mode
        try:
            outcome = searcher.search(req.query, limit=req.limit, mode=mode, filters=filters)  # type: ignore[arg-type]
        except LexicalIndexError as exc:
            raise SearchUnavailable(str(exc)) from exc
        done, total = self.store.embedding_progress()
        code_ids = [r.chunk.id for r in outcome.hits if r.chunk.kind == "code"]
        links = top_links(self.store.reader(), code_ids) if code_ids else {}
        return SearchResponse(
            hits=[_hit(r, req.query, links.get(r.chunk.id)) for r in outcome.hits],
            mode=outcome.mode,
            embedded=done,
            embed_total=total,
            took_ms=(time.perf_counter() - started) * 1000,
        )


def _hit(ranked: Ranked, query: str, link: ChatLink | None) -> SearchHit:
    chunk = ranked.chunk
    offset, snippet = best_window(chunk.text, query)
    kind = chunk.kind if chunk.kind in ("code", "chat", "run", "lesson") else "code"
    chat_id = chat_title = None
    chat_score = None
    if isinstance(chunk, ChunkRecord) and chunk.chat_id is not None:
        chat_id, chat_title = chunk.chat_id, chunk.chat_title
        branch = "" if chunk.on_path else ", other branch"
        title = f"{chat_title} — {chunk.role}{branch}"
        offset = 0
    else:
        name = chunk.path.rsplit("/", 1)[-1]
        title = f"{chunk.symbol} — {name}" if chunk.symbol else f"{name}:{chunk.start_line}"
        if link is not None:
            chat_id, chat_title, chat_score = link.chat_id, link.title, round(link.score, 4)
    return SearchHit(
        path=chunk.path,
        start_line=chunk.start_line,
        end_line=chunk.end_line,
        kind=kind,  # type: ignore[arg-type]
        score=round(ranked.score, 6),
        title=title,
        snippet=snippet,
        snippet_line=chunk.start_line + offset,
        language=chunk.language,
        symbol=chunk.symbol,
        chat_id=chat_id,
        chat_title=chat_title,
        chat_score=chat_score,
    )
