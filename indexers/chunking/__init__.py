"""Files cut into chunks: code by definitions, notebooks by cell, Markdown by heading.

:func:`chunk_text` is the one entry point; it picks the chunker from the language id
that :func:`labmind.indexers.languages.language_for_path` gives.
"""

from __future__ import annotations

from ..chunk import Chunk
from .code import CODE_LANGUAGES, chunk_code
from .lines import MAX_LINES, line_windows
from .markdown import chunk_markdown
from .notebook import chunk_notebook

__all__ = ["CODE_LANGUAGES", "MAX_LINES", "chunk_text"]


def chunk_text(text: str, language: str) -> list[Chunk]:
    """Chunks of one file's text; every non-blank line of code and text files is in one."""
    if language == "notebook":
        return chunk_notebook(text)
    if language == "markdown":
        return chunk_markdown(text)
    if language in CODE_LANGUAGES:
        return chunk_code(text, language)
    return line_windows(text, language)
