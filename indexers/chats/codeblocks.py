"""Fenced code blocks in chat Markdown: finding them, removing them, writing them.

Chats are Markdown written by models and people, so the reading is lenient where
CommonMark is strict: a fence may be indented any amount (code inside nested lists), may
follow a list marker (``- ```py``), and an unclosed fence runs to the end of the message.
As in CommonMark, a fence is three or more backticks or tildes at the start of a line, a
backtick fence's info string holds no backtick (so ```` ```inline``` ```` on one line is
not a fence), and a block closes at a line of at least as many of the same character.
"""

from __future__ import annotations

import re
from pathlib import Path

from labmind.indexers.languages import language_for_path

from .model import CodeBlock

UNKNOWN_LANGUAGE = "text"
"""The language id of a block whose language is not given or not known."""

_OPENING = re.compile(
    r"^(?P<indent>[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?)(?P<fence>`{3,}|~{3,})(?P<info>.*)$"
)
_BACKTICK_RUN = re.compile(r"`{3,}")
_INFO_WORD = re.compile(r"[^\s,:;{}=()\[\]]+")
_PLAIN_WORD = re.compile(r"^[a-z0-9_+#.-]+$")
_BLANK_RUN = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")

_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        ("py", "py3", "python3", "python2", "ipython", "ipython3", "pycon", "sage", "jupyter"),
        "python",
    ),
    **dict.fromkeys(
        ("js", "node", "nodejs", "jsx", "mjs", "cjs", "es6", "ecmascript"), "javascript"
    ),
    **dict.fromkeys(("ts", "mts", "cts"), "typescript"),
    **dict.fromkeys(
        (
            "sh",
            "shell",
            "zsh",
            "ksh",
            "console",
            "shell-session",
            "shellsession",
            "terminal",
            "bash-session",
        ),
        "bash",
    ),
    **dict.fromkeys(("c++", "cxx", "cc", "hpp", "cuda", "cu", "objective-c++"), "cpp"),
    **dict.fromkeys(("h", "objc", "objective-c"), "c"),
    **dict.fromkeys(("cs", "csharp", "c#"), "c_sharp"),
    **dict.fromkeys(("ps", "ps1", "pwsh", "posh"), "powershell"),
    **dict.fromkeys(("bat", "cmd", "dos"), "batch"),
    **dict.fromkeys(("yml",), "yaml"),
    **dict.fromkeys(("jsonc", "json5", "jsonl", "ndjson"), "json"),
    **dict.fromkeys(("md", "gfm"), "markdown"),
    **dict.fromkeys(("tex",), "latex"),
    **dict.fromkeys(("docker", "containerfile"), "dockerfile"),
    **dict.fromkeys(("makefile", "mk", "mak"), "make"),
    **dict.fromkeys(("terraform", "tf"), "hcl"),
    **dict.fromkeys(("proto",), "protobuf"),
    **dict.fromkeys(("golang",), "go"),
    **dict.fromkeys(("rs",), "rust"),
    **dict.fromkeys(("kt",), "kotlin"),
    **dict.fromkeys(("rb",), "ruby"),
    **dict.fromkeys(("pl",), "perl"),
    **dict.fromkeys(("patch",), "diff"),
    **dict.fromkeys(("postgres", "postgresql", "mysql", "sqlite", "plsql", "tsql"), "sql"),
    **dict.fromkeys(("xhtml", "htm"), "html"),
    **dict.fromkeys(("svg", "xsl"), "xml"),
    **dict.fromkeys(("rscript",), "r"),
    **dict.fromkeys(("pyx",), "cython"),
    **dict.fromkeys(
        ("txt", "plain", "plaintext", "output", "stdout", "none", "unknown", "raw", "log"),
        UNKNOWN_LANGUAGE,
    ),
}
"""Fence info words and export language names that differ from the labmind id."""

_KNOWN: frozenset[str] = frozenset(
    {
        "python",
        "javascript",
        "typescript",
        "tsx",
        "bash",
        "c",
        "cpp",
        "go",
        "rust",
        "java",
        "sql",
        "json",
        "yaml",
        "toml",
        "ini",
        "markdown",
        "html",
        "css",
        "scss",
        "xml",
        "csv",
        "diff",
        "latex",
        "r",
        "julia",
        "lua",
        "ruby",
        "php",
        "perl",
        "kotlin",
        "scala",
        "swift",
        "c_sharp",
        "dart",
        "zig",
        "nix",
        "hcl",
        "groovy",
        "haskell",
        "ocaml",
        "elixir",
        "erlang",
        "fortran",
        "matlab",
        "powershell",
        "batch",
        "fish",
        "cython",
        "protobuf",
        "graphql",
        "cmake",
        "make",
        "dockerfile",
        "vue",
        "svelte",
        "rst",
        UNKNOWN_LANGUAGE,
    }
)
"""Language ids that fence info words may name directly."""


def language_id(info: str) -> str:
    """The labmind language id for a fence info string or an export's language name.

    The first word decides (``python title="a.py"`` → ``python``, ``{.py}`` →
    ``python``, ``language-ts`` → ``typescript``); aliases and file suffixes are
    normalised (``py``, ``ipython`` → ``python``; ``sh``, ``zsh``, ``console`` →
    ``bash``; ``c++`` → ``cpp``). Anything unknown or empty is ``text``.
    """
    found = _INFO_WORD.search(info)
    if found is None:
        return UNKNOWN_LANGUAGE
    word = found.group().lower().lstrip(".")
    for prefix in ("language-", "lang-"):
        word = word.removeprefix(prefix)
    if word in _ALIASES:
        return _ALIASES[word]
    if word in _KNOWN:
        return word
    if _PLAIN_WORD.match(word) and "." not in word:
        by_suffix = language_for_path(Path(f"snippet.{word}"))
        if by_suffix is not None and by_suffix != "notebook":
            return _ALIASES.get(by_suffix, by_suffix)
    return UNKNOWN_LANGUAGE


def normalise_newlines(text: str) -> str:
    """``text`` with Windows and old-Mac line ends turned into ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_fenced(text: str) -> tuple[str, tuple[CodeBlock, ...]]:
    """Split Markdown into its prose and its fenced code blocks, in one pass.

    Returns the text with every fenced block (fences included) removed, runs of blank
    lines closed up, and the blocks in order. Block contents lose the indentation of
    their opening fence, as in CommonMark; line ends are normalised to ``\\n``.
    """
    lines = normalise_newlines(text).split("\n")
    prose_lines: list[str] = []
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        opening = _opening_fence(lines[index])
        index += 1
        if opening is None:
            prose_lines.append(lines[index - 1])
            continue
        indent, fence, info = opening
        body: list[str] = []
        while index < len(lines) and not _closes(lines[index], fence):
            body.append(_dedent(lines[index], indent))
            index += 1
        index += 1  # the closing fence, or past the end when the block is unclosed
        blocks.append(CodeBlock(language_id(info), "\n".join(body)))
    return _close_up("\n".join(prose_lines)), tuple(blocks)


def code_blocks(text: str) -> tuple[CodeBlock, ...]:
    """Every fenced code block of a Markdown text, in order."""
    return split_fenced(text)[1]


def prose(text: str) -> str:
    """A Markdown text without its fenced code blocks: what prose search indexes."""
    return split_fenced(text)[0]


def fence(code: str, language: str) -> str:
    """``code`` as a fenced Markdown block tagged ``language``.

    The fence is one backtick longer than any run of three or more backticks inside the
    code, so the block reads back (with ``split_fenced``) as exactly ``code``.
    """
    body = normalise_newlines(code).rstrip("\n")
    longest = max((len(run) for run in _BACKTICK_RUN.findall(body)), default=2)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{language}\n{body}\n{marks}"


def _opening_fence(line: str) -> tuple[int, str, str] | None:
    """(indent width, fence, info string) when ``line`` opens a fenced block."""
    found = _OPENING.match(line)
    if found is None:
        return None
    fence_marks, info = found["fence"], found["info"]
    if fence_marks[0] == "`" and "`" in info:
        return None
    return len(found["indent"]), fence_marks, info.strip()


def _closes(line: str, fence_marks: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence_marks) and stripped == fence_marks[0] * len(stripped)


def _dedent(line: str, width: int) -> str:
    """``line`` without up to ``width`` leading spaces or tabs."""
    cut = 0
    while cut < width and cut < len(line) and line[cut] in " \t":
        cut += 1
    return line[cut:]


def _close_up(text: str) -> str:
    return _BLANK_RUN.sub("\n\n", text).strip()
