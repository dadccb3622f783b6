"""Jupyter notebooks chunked by cell, with line numbers that point into the ``.ipynb`` file.

The cell's source is what gets indexed (outputs are not); ``start_line``/``end_line``
are the lines of the ``.ipynb`` JSON that hold that source, so opening the file at
the chunk's line lands on the cell.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..chunk import Chunk
from .lines import Lines, line_windows
from .markdown import headings

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _MalformedError(ValueError):
    """The raw JSON does not have the shape the cell locator expects."""


@dataclass(frozen=True)
class _Located:
    """Where one cell's ``source`` sits: the character span of each of its strings."""

    pieces: list[tuple[int, int]]


class _Scanner:
    """A minimal walk over the raw JSON that records where each cell's ``source`` is."""

    def __init__(self, raw: str) -> None:
        self.raw = raw

    def skip_ws(self, index: int) -> int:
        match = _WS.match(self.raw, index)
        return match.end() if match else index

    def expect(self, index: int, char: str) -> int:
        index = self.skip_ws(index)
        if not self.raw.startswith(char, index):
            raise _MalformedError(f"expected {char!r} at {index}")
        return index + 1

    def value_end(self, index: int) -> int:
        _, end = _DECODER.raw_decode(self.raw, self.skip_ws(index))
        return int(end)

    def members(self, index: int, on_value: dict[str, Callable[[int], int]]) -> int:
        """Walk an object; ``on_value[key](start)`` reads that key's value and returns its end."""
        index = self.expect(index, "{")
        index = self.skip_ws(index)
        if self.raw.startswith("}", index):
            return index + 1
        while True:
            key, index = _DECODER.raw_decode(self.raw, self.skip_ws(index))
            index = self.expect(index, ":")
            handler = on_value.get(key) if isinstance(key, str) else None
            index = handler(index) if handler is not None else self.value_end(index)
            index = self.skip_ws(index)
            if self.raw.startswith(",", index):
                index += 1
                continue
            return self.expect(index, "}")

    def elements(self, index: int, on_element: Callable[[int], int]) -> int:
        """Walk an array; ``on_element(start)`` reads one element and returns its end."""
        index = self.expect(index, "[")
        index = self.skip_ws(index)
        if self.raw.startswith("]", index):
            return index + 1
        while True:
            index = on_element(self.skip_ws(index))
            index = self.skip_ws(index)
            if self.raw.startswith(",", index):
                index += 1
                continue
            return self.expect(index, "]")

    def cells(self) -> list[_Located]:
        located: list[_Located] = []

        def source(start: int) -> int:
            pieces = located[-1].pieces
            pieces.clear()
            start = self.skip_ws(start)
            if self.raw.startswith("[", start):

                def piece(at: int) -> int:
                    end = self.value_end(at)
                    pieces.append((at, end))
                    return end

                return self.elements(start, piece)
            end = self.value_end(start)
            pieces.append((start, end))
            return end

        def cell(start: int) -> int:
            located.append(_Located([]))
            return self.members(start, {"source": source})

        def cell_list(start: int) -> int:
            located.clear()
            return self.elements(start, cell)

        self.members(0, {"cells": cell_list})
        return located


def _kernel_language(notebook: dict[str, Any]) -> str:
    metadata = notebook.get("metadata")
    if isinstance(metadata, dict):
        for key, inner in (("kernelspec", "language"), ("language_info", "name")):
            section = metadata.get(key)
            if isinstance(section, dict) and isinstance(section.get(inner), str):
                return str(section[inner]).lower() or "python"
    return "python"


def _source_pieces(cell: dict[str, Any]) -> list[str] | None:
    source = cell.get("source")
    if isinstance(source, str):
        return [source]
    if isinstance(source, list) and all(isinstance(piece, str) for piece in source):
        return source
    return None


def chunk_notebook(raw: str, language: str = "notebook") -> list[Chunk]:
    """One chunk per non-empty code, markdown or raw cell; line windows if the JSON is broken."""
    try:
        notebook = json.loads(raw)
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
            raise _MalformedError("no cells")
        located = _Scanner(raw).cells()
        if len(located) != len(notebook["cells"]):
            raise _MalformedError("cell count differs")
    except (ValueError, RecursionError):
        return line_windows(raw, language)

    newlines = [match.start() for match in re.finditer("\n", raw)]

    def line_of(offset: int) -> int:
        return bisect.bisect_left(newlines, offset) + 1

    kernel = _kernel_language(notebook)
    chunks: list[Chunk] = []
    heading: str | None = None
    for number, (cell, where) in enumerate(zip(notebook["cells"], located, strict=True), 1):
        if not isinstance(cell, dict):
            continue
        pieces = _source_pieces(cell)
        kind = cell.get("cell_type")
        if pieces is None or not where.pieces or kind not in {"code", "markdown", "raw"}:
            continue
        text = "".join(pieces)
        if not text.strip():
            continue
        cell_language = {"code": kernel, "markdown": "markdown", "raw": "text"}[str(kind)]
        symbol = f"cell {number}"
        first_line = line_of(where.pieces[0][0])
        last_line = line_of(where.pieces[-1][1] - 1)
        cell_lines = Lines(text)
        one_row_per_piece = len(pieces) == len(where.pieces) and len(cell_lines) == len(pieces)
        if cell_lines.fits(0, len(cell_lines) - 1) or not one_row_per_piece:
            chunks.append(
                Chunk(text.strip("\n"), first_line, last_line, cell_language, symbol, heading)
            )
        else:
            piece_lines = [line_of(start) for start, _ in where.pieces]
            for first, last in cell_lines.spans(0, len(cell_lines) - 1):
                chunks.append(
                    Chunk(
                        cell_lines.text(first, last),
                        piece_lines[first],
                        piece_lines[last],
                        cell_language,
                        symbol,
                        heading,
                    )
                )
        if kind == "markdown":
            titles = [found.title for found in headings(cell_lines) if found.title]
            heading = titles[-1] if titles else heading
    return chunks
