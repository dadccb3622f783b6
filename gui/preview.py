"""The popup's preview pane: the lines around a hit, highlighted, and where the code came
from ("from chat …") when the daemon knows."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCursor, QTextFormat
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTextEdit, QVBoxLayout, QWidget

from labmind.daemon.protocol import SearchHit, WhyResponse

from .daemon_api import DaemonApi
from .highlighter import CodeHighlighter
from .tasks import TaskRunner

CONTEXT_LINES = 4
MAX_LINES = 120
MAX_FILE_BYTES = 4 * 1024 * 1024
_SUFFIX_LANGUAGE = {".py": "python", ".pyi": "python", ".ipynb": "python"}


@dataclass(frozen=True)
class Excerpt:
    first_line: int
    text: str


def lines_around(path: str, start: int, end: int, context: int = CONTEXT_LINES) -> Excerpt | None:
    """Lines `start - context` … `end + context` of a text file (1-based), at most
    `MAX_LINES`; none when the file cannot be read as text."""
    file = Path(path)
    try:
        if not file.is_file() or file.stat().st_size > MAX_FILE_BYTES:
            return None
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    first = max(1, start - context)
    last = min(len(lines), max(end, start) + context, first + MAX_LINES - 1)
    if first > last:
        return None
    return Excerpt(first, "\n".join(lines[first - 1 : last]))


def provenance_text(hit: SearchHit, why: WhyResponse | None = None) -> str:
    """One line about the conversation behind a hit, or "" when none is known."""
    if hit.kind == "chat":
        return f"chat · {hit.title}" if hit.title else "chat"
    if why is not None and why.links:
        best = max(why.links, key=lambda link: link.score)
        return f"from chat “{best.title}” ({best.role}, message {best.position})"
    if hit.chat_title:
        return f"from chat “{hit.chat_title}”"
    return ""


def hit_language(hit: SearchHit) -> str | None:
    if hit.language:
        return hit.language
    return _SUFFIX_LANGUAGE.get(Path(hit.path).suffix.lower())


class PreviewPane(QWidget):
    def __init__(self, api: DaemonApi, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self._hit: SearchHit | None = None
        self.provenance = QLabel("", self)
        self.provenance.setObjectName("provenance")
        self.provenance.setWordWrap(True)
        self.location = QLabel("", self)
        self.location.setObjectName("location")
        self.code = QPlainTextEdit(self)
        self.code.setReadOnly(True)
        self.code.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.code.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.code.setFont(font)
        self.highlighter = CodeHighlighter(self.code.document())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.location)
        layout.addWidget(self.provenance)
        layout.addWidget(self.code, 1)
        self.show_hit(None)

    @property
    def hit(self) -> SearchHit | None:
        return self._hit

    def snippet(self) -> str:
        """The text a copy takes: the hit's snippet, or the lines shown."""
        if self._hit is None:
            return ""
        return self._hit.snippet or self.code.toPlainText()

    def show_text(self, title: str, text: str, note: str = "") -> None:
        """Plain text that is no search result (a preamble, a lesson), wrapped to the pane."""
        self._hit = None
        self.location.setText(title)
        self.provenance.setText(note)
        self.highlighter.setDocument(None)
        self.code.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.code.setPlainText(text)
        self.code.setExtraSelections([])

    def show_hit(self, hit: SearchHit | None) -> None:
        self._hit = hit
        self.code.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        if self.highlighter.document() is None:
            self.highlighter.setDocument(self.code.document())
        if hit is None:
            self.location.setText("")
            self.provenance.setText("")
            self.code.setPlainText("")
            return
        where = hit.title if hit.kind == "chat" else f"{hit.path}:{hit.start_line}"
        self.location.setText(where)
        self.provenance.setText(provenance_text(hit))
        self.highlighter.set_language(None if hit.kind == "chat" else hit_language(hit))
        self._show_text(hit.snippet, hit.snippet_line or hit.start_line, hit)
        if hit.kind == "chat" or hit.path.startswith("chat:"):
            return
        self._runner.submit(
            partial(lines_around, hit.path, hit.start_line, hit.end_line),
            partial(self._excerpt_loaded, hit),
        )
        self._runner.submit(
            partial(self._api.why, hit.path, hit.start_line),
            partial(self._why_loaded, hit),
            lambda _error: None,
        )

    def _excerpt_loaded(self, hit: SearchHit, excerpt: Excerpt | None) -> None:
        if hit is not self._hit or excerpt is None:
            return
        self._show_text(excerpt.text, excerpt.first_line, hit)

    def _why_loaded(self, hit: SearchHit, why: WhyResponse) -> None:
        if hit is not self._hit:
            return
        text = provenance_text(hit, why)
        if text:
            self.provenance.setText(text)

    def _show_text(self, text: str, first_line: int, hit: SearchHit) -> None:
        self.code.setPlainText(text)
        selections: list[QTextEdit.ExtraSelection] = []
        document = self.code.document()
        for number in range(hit.start_line, hit.end_line + 1):
            block = document.findBlockByNumber(number - first_line)
            if not block.isValid():
                continue
            selection = QTextEdit.ExtraSelection()
            selection.format.setBackground(QColor(255, 230, 120, 60))
            selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            selection.cursor = QTextCursor(block)
            selections.append(selection)
        self.code.setExtraSelections(selections)
        if selections:
            self.code.setTextCursor(selections[0].cursor)
            self.code.centerCursor()
