"""Line windows: the fallback chunker, and the splitter the other chunkers use for long spans."""

from __future__ import annotations

from itertools import accumulate

from ..chunk import Chunk

MAX_LINES = 60
"""Longest chunk, in lines; longer definitions and sections are split."""

OVERLAP_LINES = 5
"""Lines repeated between consecutive windows of plain text."""

MAX_CHUNK_CHARS = 8000
"""Longest chunk, in characters: keeps minified or generated lines from making huge chunks."""


class Lines:
    """A text split into lines as editors number them (``\\n``, with ``\\r\\n`` handled).

    Rows are 0-based here; chunks get 1-based line numbers.
    """

    __slots__ = ("_starts", "blank", "rows")

    def __init__(self, text: str) -> None:
        rows = text.split("\n")
        if rows and rows[-1] == "":
            rows.pop()
        if "\r" in text:
            rows = [row[:-1] if row.endswith("\r") else row for row in rows]
        self.rows = rows
        self.blank = [not row or row.isspace() for row in rows]
        self._starts = list(accumulate(map(len, rows), initial=0))

    def __len__(self) -> int:
        return len(self.rows)

    def chars(self, first: int, last: int) -> int:
        """Characters in rows ``first..last`` (inclusive), newlines counted."""
        return self._starts[last + 1] - self._starts[first] + last - first + 1

    def text(self, first: int, last: int) -> str:
        return "\n".join(self.rows[first : last + 1])

    def fits(self, first: int, last: int) -> bool:
        """Whether rows ``first..last`` make one chunk without splitting."""
        return last - first < MAX_LINES and self.chars(first, last) <= MAX_CHUNK_CHARS

    def trim(self, first: int, last: int) -> tuple[int, int] | None:
        """The span without blank rows at either end, or None when it is all blank."""
        while first <= last and self.blank[first]:
            first += 1
        while last >= first and self.blank[last]:
            last -= 1
        return (first, last) if first <= last else None

    def spans(self, first: int, last: int, overlap: int = 0) -> list[tuple[int, int]]:
        """Windows over every non-blank row of ``first..last``, cut at blank rows if possible."""
        spans: list[tuple[int, int]] = []
        start = first
        while True:
            trimmed = self.trim(start, last)
            if trimmed is None:
                return spans
            start = trimmed[0]
            end = start
            limit = min(last, start + MAX_LINES - 1)
            while end < limit and self.chars(start, end + 1) <= MAX_CHUNK_CHARS:
                end += 1
            if end < last:
                for row in range(end, start + (end - start) // 2, -1):
                    if self.blank[row]:
                        end = row - 1
                        break
            window = self.trim(start, end)
            if window is not None:
                spans.append(window)
            if end >= last:
                return spans
            start = max(start + 1, end + 1 - overlap)

    def chunks(
        self,
        first: int,
        last: int,
        language: str,
        symbol: str | None = None,
        signature: str | None = None,
        overlap: int = 0,
    ) -> list[Chunk]:
        """Chunks for rows ``first..last``: one when they fit, windows otherwise."""
        trimmed = self.trim(first, last)
        if trimmed is None:
            return []
        first, last = trimmed
        spans = [(first, last)] if self.fits(first, last) else self.spans(first, last, overlap)
        chunks: list[Chunk] = []
        for start, end in spans:
            if start == end and len(self.rows[start]) > MAX_CHUNK_CHARS:
                row = self.rows[start]
                for offset in range(0, len(row), MAX_CHUNK_CHARS):
                    piece = row[offset : offset + MAX_CHUNK_CHARS]
                    if piece.strip():
                        chunks.append(
                            Chunk(piece, start + 1, start + 1, language, symbol, signature)
                        )
                continue
            chunks.append(
                Chunk(self.text(start, end), start + 1, end + 1, language, symbol, signature)
            )
        return chunks


def line_windows(text: str, language: str) -> list[Chunk]:
    """Windows of about :data:`MAX_LINES` lines with a small overlap."""
    lines = Lines(text)
    if not lines:
        return []
    return lines.chunks(0, len(lines) - 1, language, overlap=OVERLAP_LINES)
