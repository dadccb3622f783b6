"""Code-aware tokenisation: identifiers kept whole and split into their parts.

``HTTPServer`` gives ``httpserver``, ``http`` and ``server``; ``read_file`` gives
``read_file``, ``read`` and ``file``; ``os.path.join`` gives ``os``, ``path`` and
``join``. Punctuation is dropped, numbers are kept, and tokens longer than
:data:`MAX_TOKEN_CHARS` (base64, hashes) are dropped unless they are plain snake_case,
whose parts are still useful. The lexical index stores terms English-stemmed
(:func:`stem`); documents and queries go through the same functions, so both sides of
a search agree. Each distinct token is expanded and stemmed once: a code base reuses
few distinct tokens, and stemming every occurrence would cost more than the rest of
the analysis.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from itertools import chain

import tantivy

MAX_TOKEN_CHARS = 40
"""Longer tokens are dropped: they are blobs (base64, hashes), not words."""

_WORD = re.compile(r"\w+")
_ASCII_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_LONG_SNAKE = re.compile(r"_*(?:[a-z]+(?:_+[a-z0-9]+)+|[A-Z]+(?:_+[A-Z0-9]+)+)_*")
_PATH_SEPARATORS = re.compile(r"[/\\]+")

_CACHE_LIMIT = 200_000


class _Expansions(dict[str, tuple[str, ...]]):
    """Token -> its terms, computed on first sight (a code base reuses few distinct tokens)."""

    def __missing__(self, token: str) -> tuple[str, ...]:
        _bound(self)
        terms = self[token] = _expand(token)
        return terms


_ASCII_NON_WORD = bytes(c for c in range(128) if not re.fullmatch(rb"\w", bytes([c])))
_SPACES = bytes.maketrans(_ASCII_NON_WORD, b" " * len(_ASCII_NON_WORD))
"""Turns every ASCII character outside ``\\w`` into a space, leaving UTF-8's multi-byte
sequences whole: splitting the result on spaces cuts text where :data:`_WORD` would."""


class _IndexForms(dict[bytes, str]):
    """A piece of UTF-8 text between ASCII non-word characters -> its stemmed terms
    joined by spaces, computed on first sight. A piece is one ASCII token, or text with
    non-ASCII characters that :data:`_WORD` splits further."""

    def __missing__(self, piece: bytes) -> str:
        _bound(self)
        if piece.isascii():
            terms: Iterable[str] = _expand(piece.decode("ascii"))
        else:
            tokens = _WORD.findall(piece.decode("utf-8", "surrogatepass"))
            terms = chain.from_iterable(map(_expand, tokens))
        form = self[piece] = " ".join(map(_stems.__getitem__, terms))
        return form


class _Stems(dict[str, str]):
    """Lowercase term -> its English stem, computed on first sight."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._stemmer = (
            tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
            .filter(tantivy.Filter.stemmer("english"))
            .build()
        )

    def __missing__(self, term: str) -> str:
        _bound(self)
        with self._lock:
            found = self._stemmer.analyze(term)
        result = self[term] = found[0] if found else term
        return result


_expansions = _Expansions()
_index_forms = _IndexForms()
_stems = _Stems()


def code_terms(text: str) -> list[str]:
    """Lowercase search terms of ``text``, in order, each identifier followed by its parts."""
    return list(chain.from_iterable(map(_expansions.__getitem__, _WORD.findall(text))))


def stem(term: str) -> str:
    """The English stem of a lowercase term, as the lexical index stores it."""
    return _stems[term]


def analyze(text: str) -> str:
    """The stemmed terms of ``text`` joined by spaces: what the lexical index is given.

    The same terms as :func:`code_terms`, stemmed, found three times faster: the text is
    cut in C (bytes ``translate`` and ``split``) rather than by a regular expression.
    """
    pieces = text.encode("utf-8", "surrogatepass").translate(_SPACES).split()
    return " ".join(map(_index_forms.__getitem__, pieces))


@lru_cache(maxsize=4096)
def path_terms(path: str) -> str:
    """Stemmed terms of a file path: each folder and file name split like an identifier.

    ``src/io_utils/readFile.py`` gives ``src io_util io util readfil read file py``;
    the extension stays a term of its own.
    """
    return analyze(" ".join(_PATH_SEPARATORS.split(path)))


def _bound(cache: dict[str, str] | dict[bytes, str] | dict[str, tuple[str, ...]]) -> None:
    """Empty a cache that has grown past :data:`_CACHE_LIMIT` before it takes another."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()


def _expand(token: str) -> tuple[str, ...]:
    if token.isalpha() and len(token) <= MAX_TOKEN_CHARS:
        lower = token.lower()
        if lower == token or token.isupper() or token[1:].islower():
            return (lower,)
    if len(token) > MAX_TOKEN_CHARS:
        if _LONG_SNAKE.fullmatch(token) is None:
            return ()
        return tuple(_unique(p for p in _parts(token) if len(p) <= MAX_TOKEN_CHARS))
    whole = token.strip("_").lower()
    if not whole:
        return ()
    if _is_single_word(token):
        return (whole,)
    return tuple(_unique([whole, *_parts(token)]))


def _is_single_word(token: str) -> bool:
    if token[0].isdigit():
        return True
    if not token.isalpha():
        return False
    rest = token[1:]
    return token.islower() or token.isupper() or rest.islower()


def _parts(token: str) -> list[str]:
    parts: list[str] = []
    for piece in token.split("_"):
        if not piece:
            continue
        if piece.isascii():
            parts.extend(p.lower() for p in _ASCII_PART.findall(piece))
        else:
            parts.append(piece.lower())
    return parts


def _unique(terms: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(terms))
