"""Markdown chunked by heading: one chunk per section, long sections in windows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..chunk import Chunk
from .lines import Lines

_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_NOT_PARAGRAPH = re.compile(r" {0,3}(?:[-*+>|#]|\d+[.)]|`{3}|~{3})")


@dataclass(frozen=True)
class Heading:
    """A heading: its row (0-based), level (1-6) and text."""

    row: int
    level: int
    title: str


def headings(lines: Lines) -> list[Heading]:
    """ATX (``## Title``) and one-line setext headings, outside code fences and front matter."""
    rows = lines.rows
    found: list[Heading] = []
    fence: str | None = None
    start = _front_matter_end(rows)
    for row in range(start, len(rows)):
        line = rows[row]
        opening = _FENCE.match(line)
        if fence is not None:
            if (
                opening
                and opening.group(1)[0] == fence[0]
                and len(opening.group(1)) >= len(fence)
                and not line[opening.end() :].strip()
            ):
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        atx = _ATX.fullmatch(line)
        if atx:
            found.append(Heading(row, len(atx.group(1)), (atx.group(2) or "").strip()))
            continue
        setext = _SETEXT.fullmatch(line)
        if (
            setext
            and row > start
            and not lines.blank[row - 1]
            and (row - 1 == start or lines.blank[row - 2])
            and not _NOT_PARAGRAPH.match(rows[row - 1])
            and not (found and found[-1].row == row - 1)
        ):
            level = 1 if setext.group(1)[0] == "=" else 2
            found.append(Heading(row - 1, level, rows[row - 1].strip()))
    return found


def _front_matter_end(rows: list[str]) -> int:
    """The first row after YAML front matter (``---`` … ``---``), or 0 when there is none."""
    if not rows or rows[0].strip() != "---":
        return 0
    for row in range(1, len(rows)):
        if rows[row].strip() in {"---", "..."}:
            return row + 1
    return 0


def chunk_markdown(text: str, language: str = "markdown") -> list[Chunk]:
    """One chunk per section; ``symbol`` is the heading, ``signature`` its path (``A > B``)."""
    lines = Lines(text)
    if not lines:
        return []
    chunks = []
    found = headings(lines)
    first_heading = found[0].row if found else len(lines)
    if first_heading > 0:
        chunks.extend(lines.chunks(0, first_heading - 1, language))
    path: list[Heading] = []
    for index, heading in enumerate(found):
        last = found[index + 1].row - 1 if index + 1 < len(found) else len(lines) - 1
        while path and path[-1].level >= heading.level:
            path.pop()
        path.append(heading)
        titled = [item.title for item in path if item.title]
        chunks.extend(
            lines.chunks(
                heading.row,
                last,
                language,
                symbol=heading.title or None,
                signature=" > ".join(titled) or None,
            )
        )
    return chunks
