"""The lexical (BM25) index: Tantivy over code-aware terms, one index per folder.

Documents are chunks. Text fields hold the stemmed terms :mod:`.tokens` makes of them,
split on whitespace by the ``code`` analyzer; queries are turned into terms by the same
functions. Updates replace a whole file: delete every chunk with its path, add the new ones.
One thread writes; any number of threads search, each against the last committed state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import tantivy
from tantivy import FieldType, Occur, Query

from .tokens import analyze, code_terms, path_terms, stem

SCHEMA_VERSION = 1
"""Bumped whenever the schema or the analysis changes: an old index must be rebuilt."""

META_FILE = "labmind-lexical.json"
ANALYZER = "code"
REBUILD_HINT = "run `labmind index --rebuild` to rebuild it"

WRITER_HEAP_BYTES = 64_000_000
WRITER_THREADS = 1
MAX_QUERY_TERMS = 64

TEXT_FIELDS = ("body", "symbol", "path_text")
CODE_QUERY_BOOSTS = (1.0, 3.0, 2.0)
"""Weights of the text fields for a query that names code (``read_file``, ``os.path``)."""
PROSE_QUERY_BOOSTS = (1.0, 0.5, 1.0)
"""Weights for a query in words: the symbol and path are in the body already, and an
extra weight on them lets common words (``get``, ``list``) in names drown the rest
(measured on CoSQA and on stdlib docstrings)."""

_CODE_LIKE = re.compile(r"[^\W_]_|_[^\W_]|[a-z][A-Z]|\w\.\w|[()\[\]=]")

_STOPWORDS_TEXT = """
a an and are as at be by can do does for from how i in into is it of on or that the then
there these this to was what when where which while why with
"""
QUERY_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
"""English words dropped from a query when it has other terms: they say nothing about code."""


class LexicalIndexError(Exception):
    """The lexical index cannot be used as it is on disk (wrong version, foreign, damaged)."""


@dataclass(frozen=True, slots=True)
class LexicalDoc:
    """One chunk as the lexical index sees it; text fields are raw (the index analyses them)."""

    chunk_id: int
    path: str
    kind: str
    language: str
    mtime: int
    body: str
    symbol: str
    path_text: str


@dataclass(frozen=True, slots=True)
class AnalyzedDoc:
    """A :class:`LexicalDoc` whose text fields are analysed already (e.g. in a worker
    process): ``body`` and ``symbol`` by :func:`.tokens.analyze`, ``path_text`` by
    :func:`.tokens.path_terms`."""

    chunk_id: int
    path: str
    kind: str
    language: str
    mtime: int
    body: str
    symbol: str
    path_text: str


def analyzed(doc: LexicalDoc) -> AnalyzedDoc:
    """``doc`` with its text fields analysed, as the index stores them."""
    return AnalyzedDoc(
        chunk_id=doc.chunk_id,
        path=doc.path,
        kind=doc.kind,
        language=doc.language,
        mtime=doc.mtime,
        body=analyze(doc.body),
        symbol=analyze(doc.symbol),
        path_text=path_terms(doc.path_text),
    )


@dataclass(frozen=True, slots=True)
class LexicalHit:
    chunk_id: int
    score: float


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("chunk_id", stored=True, indexed=True, fast=True)
    builder.add_text_field("path", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("kind", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("language", tokenizer_name="raw", index_option="basic")
    builder.add_integer_field("mtime", indexed=True, fast=True)
    for field in TEXT_FIELDS:
        builder.add_text_field(field, tokenizer_name=ANALYZER, index_option="freq")
    return builder.build()


def _analyzer() -> tantivy.TextAnalyzer:
    """Fields hold analysed terms already (lowercase, stemmed): splitting is all that is left."""
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


def _regex_literal(text: str) -> str:
    return "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


class LexicalIndex:
    """A Tantivy index of chunks in one folder. Build it with a class method, not directly."""

    def __init__(self, index: tantivy.Index, path: Path) -> None:
        self._index = index
        self._path = path
        self._schema = index.schema
        self._write_lock = threading.Lock()
        self._writer: tantivy.IndexWriter | None = None
        self._closed = False
        index.register_tokenizer(ANALYZER, _analyzer())
        index.config_reader(reload_policy="manual")
        index.reload()
        self._searcher = index.searcher()

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Self:
        """A new, empty index in ``path``, which must be missing or an empty folder."""
        folder = Path(path)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise LexicalIndexError(f"cannot create a lexical index in {folder}: not empty")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            index = tantivy.Index(_schema(), path=str(folder), reuse=False)
        except ValueError as exc:
            raise LexicalIndexError(f"cannot create a lexical index in {folder}: {exc}") from exc
        _write_version(folder)
        return cls(index, folder)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Self:
        """The existing index in ``path``; :class:`LexicalIndexError` if it is not usable."""
        folder = Path(path)
        if not folder.is_dir():
            raise LexicalIndexError(f"no lexical index in {folder}; {REBUILD_HINT}")
        version = _read_version(folder)
        if version != SCHEMA_VERSION:
            found = "no version" if version is None else f"version {version}"
            raise LexicalIndexError(
                f"lexical index in {folder} has {found}, this labmind needs version "
                f"{SCHEMA_VERSION}; {REBUILD_HINT}"
            )
        try:
            index = tantivy.Index.open(str(folder))
            _check_schema(index.schema, folder)
            return cls(index, folder)
        except (ValueError, OSError) as exc:
            raise LexicalIndexError(
                f"lexical index in {folder} is damaged ({exc}); {REBUILD_HINT}"
            ) from exc

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str]) -> Self:
        """Open the index in ``path``, creating it only where the folder is missing or empty."""
        folder = Path(path)
        if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
            return cls.create(folder)
        return cls.open(folder)

    @classmethod
    def destroy_and_create(cls, path: str | os.PathLike[str]) -> Self:
        """Delete whatever is in ``path`` and start a new, empty index there (a rebuild)."""
        folder = Path(path)
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
        elif folder.exists() or folder.is_symlink():
            folder.unlink()
        return cls.create(folder)

    @property
    def path(self) -> Path:
        return self._path

    # -- writing -----------------------------------------------------------------------

    def replace_file(self, path: str, docs: Sequence[LexicalDoc | AnalyzedDoc]) -> None:
        """Delete every chunk of ``path`` and add ``docs``; visible after :meth:`commit`."""
        prepared = [self._document(doc) for doc in docs]
        with self._write_lock:
            writer = self._open_writer()
            writer.delete_documents_by_term("path", path)
            for document in prepared:
                writer.add_document(document)

    def delete_file(self, path: str) -> None:
        """Delete every chunk of ``path``; visible after :meth:`commit`."""
        with self._write_lock:
            self._open_writer().delete_documents_by_term("path", path)

    def delete_prefix(self, folder: str) -> None:
        """Delete every chunk of every file under ``folder``; visible after :meth:`commit`."""
        prefix = folder.rstrip("/") + "/"
        query = Query.regex_query(self._schema, "path", _regex_literal(prefix) + ".*")
        with self._write_lock:
            self._open_writer().delete_documents_by_query(query)

    def commit(self) -> None:
        """Make the writes so far durable and visible to searches started from now on."""
        with self._write_lock:
            if self._writer is None:
                return
            try:
                self._writer.commit()
            except ValueError as exc:
                raise LexicalIndexError(f"cannot commit the lexical index: {exc}") from exc
            self._index.reload()
            self._searcher = self._index.searcher()

    def close(self) -> None:
        """Commit pending writes and release the writer; the index cannot be used after."""
        with self._write_lock:
            if self._closed:
                return
            writer, self._writer = self._writer, None
            self._closed = True
            if writer is not None:
                writer.commit()
                writer.wait_merging_threads()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open_writer(self) -> tantivy.IndexWriter:
        if self._closed:
            raise LexicalIndexError(f"lexical index in {self._path} is closed")
        if self._writer is None:
            try:
                self._writer = self._index.writer(
                    heap_size=WRITER_HEAP_BYTES, num_threads=WRITER_THREADS
                )
            except ValueError as exc:
                raise LexicalIndexError(
                    f"cannot write the lexical index in {self._path}: {exc}"
                ) from exc
        return self._writer

    def _document(self, raw: LexicalDoc | AnalyzedDoc) -> tantivy.Document:
        doc = raw if isinstance(raw, AnalyzedDoc) else analyzed(raw)
        return tantivy.Document(
            chunk_id=doc.chunk_id,
            path=doc.path,
            kind=doc.kind,
            language=doc.language,
            mtime=doc.mtime,
            body=doc.body,
            symbol=doc.symbol,
            path_text=doc.path_text,
        )

    # -- searching ---------------------------------------------------------------------

    def doc_count(self) -> int:
        """Chunks visible to searches (committed, not deleted)."""
        return int(self._searcher.num_docs)

    def search(
        self,
        query: str,
        limit: int,
        *,
        kinds: Sequence[str] = (),
        languages: Sequence[str] = (),
        since: int | None = None,
    ) -> list[LexicalHit]:
        """Best chunks for free text ``query`` by BM25, at most ``limit`` of them.

        Any text is accepted; text without terms finds nothing. ``kinds`` and ``languages``
        keep chunks with one of the values, ``since`` those with ``mtime >= since``.
        """
        terms = self._query_terms(query)
        if not terms or limit <= 0:
            return []
        boosts = CODE_QUERY_BOOSTS if _names_code(query) else PROSE_QUERY_BOOSTS
        should = [
            (Occur.Should, self._field_term(field, term, boost))
            for term in terms
            for field, boost in zip(TEXT_FIELDS, boosts, strict=True)
        ]
        clauses = [(Occur.Must, Query.boolean_query(should))]
        clauses += [
            (Occur.Must, Query.const_score_query(f, 0.0))
            for f in self._filters(kinds, languages, since)
        ]
        searcher = self._searcher
        hits = searcher.search(Query.boolean_query(clauses), limit, count=False).hits
        if not hits:
            return []
        ids = searcher.fast_field_values("chunk_id", [address for _, address in hits])
        return [
            LexicalHit(chunk_id=int(chunk_id), score=float(score))
            for (score, _), chunk_id in zip(hits, ids, strict=True)
            if chunk_id is not None
        ]

    def _query_terms(self, query: str) -> list[str]:
        terms = list(dict.fromkeys(code_terms(query)))
        content = [t for t in terms if t not in QUERY_STOPWORDS]
        stems: dict[str, None] = {}
        for term in content or terms:
            stems.setdefault(stem(term), None)
        return list(stems)[:MAX_QUERY_TERMS]

    def _field_term(self, field: str, term: str, boost: float) -> Query:
        query = Query.term_query(self._schema, field, term, index_option="freq")
        return query if boost == 1.0 else Query.boost_query(query, boost)

    def _filters(
        self, kinds: Sequence[str], languages: Sequence[str], since: int | None
    ) -> list[Query]:
        filters = [
            Query.term_set_query(
                self._schema, field, [values] if isinstance(values, str) else list(values)
            )
            for field, values in (("kind", kinds), ("language", languages))
            if values
        ]
        if since is not None:
            filters.append(
                Query.range_query(self._schema, "mtime", FieldType.Integer, lower_bound=since)
            )
        return filters


def _names_code(query: str) -> bool:
    """Whether ``query`` looks like an identifier rather than words: one word, or code syntax."""
    return len(query.split()) == 1 or _CODE_LIKE.search(query) is not None


def _write_version(folder: Path) -> None:
    target = folder / META_FILE
    scratch = folder / f".{META_FILE}.tmp"
    scratch.write_text(json.dumps({"schema_version": SCHEMA_VERSION}) + "\n", encoding="utf-8")
    scratch.replace(target)


def _read_version(folder: Path) -> int | None:
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _check_schema(schema: tantivy.Schema, folder: Path) -> None:
    probes: tuple[tuple[str, object], ...] = (
        ("chunk_id", 0),
        ("mtime", 0),
        ("path", ""),
        ("kind", ""),
        ("language", ""),
        *((field, "") for field in TEXT_FIELDS),
    )
    for field, value in probes:
        try:
            Query.term_query(schema, field, value)
        except ValueError as exc:
            raise LexicalIndexError(
                f"lexical index in {folder} has another schema ({exc}); {REBUILD_HINT}"
            ) from exc
