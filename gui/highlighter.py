"""Syntax highlighting for the preview pane: Python properly, other code generically."""

from __future__ import annotations

import keyword
import re

from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument


def _format(color: str, *, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(color))
    if bold:
        fmt.setFontWeight(QFont.Weight.Bold)
    fmt.setFontItalic(italic)
    return fmt


KEYWORD = _format("#c678dd", bold=True)
BUILTIN = _format("#56b6c2")
STRING = _format("#98c379")
NUMBER = _format("#d19a66")
COMMENT = _format("#7f848e", italic=True)
DEFINITION = _format("#61afef", bold=True)
DECORATOR = _format("#e5c07b")

_PY_BUILTINS = ("print", "len", "range", "open", "super", "self", "cls", "isinstance", "dict")
_GENERIC_KEYWORDS = (
    r"\b(?:if|else|elif|for|while|return|function|func|fn|def|class|struct|enum|import|from|"
    r"const|let|var|public|private|static|void|int|float|bool|true|false|null|nil|new|try|"
    r"catch|finally|throw|async|await|package|use|mod|impl|trait|match|case|switch|break|"
    r"continue|in|of|module|export|interface|type)\b"
)

Rule = tuple[re.Pattern[str], QTextCharFormat, int]


def python_rules() -> list[Rule]:
    words = "|".join([*keyword.kwlist, *keyword.softkwlist])
    return [
        (re.compile(rf"\b(?:{words})\b"), KEYWORD, 0),
        (re.compile(rf"\b(?:{'|'.join(_PY_BUILTINS)})\b"), BUILTIN, 0),
        (re.compile(r"\b(?:def|class)\s+(\w+)"), DEFINITION, 1),
        (re.compile(r"^\s*@[\w.]+", re.MULTILINE), DECORATOR, 0),
        (re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.IGNORECASE), NUMBER, 0),
        (re.compile(r"[rbfu]*(\"[^\"\\]*(?:\\.[^\"\\]*)*\"|'[^'\\]*(?:\\.[^'\\]*)*')"), STRING, 0),
        (re.compile(r"#.*$"), COMMENT, 0),
    ]


def generic_rules() -> list[Rule]:
    return [
        (re.compile(_GENERIC_KEYWORDS), KEYWORD, 0),
        (re.compile(r"\b\d+(?:\.\d+)?\b"), NUMBER, 0),
        (re.compile(r"\"[^\"\\]*(?:\\.[^\"\\]*)*\"|'[^'\\]*(?:\\.[^'\\]*)*'"), STRING, 0),
        (re.compile(r"(?://|#|--|;;).*$"), COMMENT, 0),
    ]


class CodeHighlighter(QSyntaxHighlighter):
    """Highlights a document as `language` (Python rules for python, generic otherwise)."""

    def __init__(self, document: QTextDocument, language: str | None = None) -> None:
        super().__init__(document)
        self.language = ""
        self._rules: list[Rule] = []
        self.set_language(language)

    def set_language(self, language: str | None) -> None:
        name = (language or "").lower()
        if name == self.language and self._rules:
            return
        self.language = name
        self._rules = python_rules() if name in ("python", "py", "ipynb") else generic_rules()
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt override
        for pattern, fmt, group in self._rules:
            for match in pattern.finditer(text):
                start, end = match.span(group)
                self.setFormat(start, end - start, fmt)
