"""Code-aware tokenisation: identifiers kept whole and split into their parts.

``HTTPServer`` gives ``httpserver``, ``http`` and ``server``; ``read_file`` gives
``read_file``, ``read`` and ``file``; ``os.path.join`` gives ``os``, ``path`` and
``join``. Punctuation is dropped, numbers are kept, and tokens longer than
:data:`MAX_TOKEN_CHARS` (base64, hashes) are dropped unless they are plain snake_case,
whose parts are still useful. The same function turns documents and queries into
terms, so both sides of a search agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from itertools import chain

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
        terms = self[token] = _expand(token)
        return terms


_expansions = _Expansions()


def code_terms(text: str) -> list[str]:
    """Lowercase search terms of ``text``, in order, each identifier followed by its parts."""
    if len(_expansions) > _CACHE_LIMIT:
        _expansions.clear()
    return list(chain.from_iterable(map(_expansions.__getitem__, _WORD.findall(text))))


def analyze(text: str) -> str:
    """The terms of ``text`` joined by spaces: what the lexical index is given."""
    return " ".join(code_terms(text))


@lru_cache(maxsize=4096)
def path_terms(path: str) -> str:
    """Terms of a file path: each folder and file name split like an identifier.

    ``src/io_utils/readFile.py`` gives ``src io_utils io utils readfile read file py``;
    the extension stays a term of its own.
    """
    return analyze(" ".join(_PATH_SEPARATORS.split(path)))


def _expand(token: str) -> tuple[str, ...]:
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
