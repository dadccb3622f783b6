"""The unit of indexing: a contiguous piece of one file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

EMBED_TEXT_CHARS = 1200
"""Characters of a chunk that go to the embedder (MiniLM reads about 256 tokens)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a source file as the chunkers produce it.

    Line numbers are 1-based and inclusive, in the file as it is on disk.
    ``symbol`` names the definition the chunk holds (``Class.method``, ``cell 3``,
    ``## Heading``); ``signature`` is the first line of the enclosing definition(s),
    which goes into the header so a method chunk still says which class it is in.
    """

    text: str
    start_line: int
    end_line: int
    language: str
    symbol: str | None = None
    signature: str | None = None

    def header(self, path: str) -> str:
        """Path plus enclosing signature: prepended to both the BM25 and embedding text."""
        return f"{path} {self.signature}" if self.signature else path

    def embed_text(self, path: str) -> str:
        """What the embedder sees: header and the start of the chunk, kept under the window."""
        return f"{self.header(path)}\n{self.text}"[:EMBED_TEXT_CHARS]


def content_key(text: str) -> int:
    """A 63-bit key for chunk content: identical chunks share one vector."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF
