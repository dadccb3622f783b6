"""Snippets: the few lines of a chunk that best match the query."""

from __future__ import annotations

from .tokens import code_terms

SNIPPET_LINES = 8


def best_window(text: str, query: str, lines: int = SNIPPET_LINES) -> tuple[int, str]:
    """(offset of the first line within the chunk, the window's text).

    The window with the most distinct query terms wins; ties go to the earliest, so a
    chunk with no match shows its beginning (usually the signature).
    """
    rows = text.splitlines()
    if len(rows) <= lines:
        return 0, text.rstrip("\n")
    wanted = set(code_terms(query))
    hits = [len(wanted & set(code_terms(row))) for row in rows]
    best, best_score = 0, -1
    score = sum(hits[:lines])
    for start in range(len(rows) - lines + 1):
        if start:
            score += hits[start + lines - 1] - hits[start - 1]
        if score > best_score:
            best, best_score = start, score
    return best, "\n".join(rows[best : best + lines])
