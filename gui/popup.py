"""The search popup: frameless and centred, created hidden at start-up so that showing
it is instant; keyboard-only (Up/Down, Enter, Esc, Tab through the kind filters).

The last entry of the filter row, Suggest (Tab to it, or Ctrl+S from anywhere), turns
the query into a task: the popup shows the preamble `labmind suggest` prints, with the
lessons, code and chats it was made from listed as results; Enter or Ctrl+C copies the
whole preamble, Enter on a piece of code or a chat opens it as a search result would."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QCursor, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from labmind.daemon.protocol import Kind, SearchHit, SearchResponse, Suggestion

from .daemon_api import DaemonApi
from .editor import Launcher, editor_command
from .empty_state import EmptyState
from .preview import PreviewPane
from .search_session import SearchSession
from .suggest_parts import SuggestPart, part_counts, suggestion_parts
from .tasks import TaskRunner

FILTERS: tuple[tuple[str, Kind | None], ...] = (
    ("All", None),
    ("Code", "code"),
    ("Chat", "chat"),
    ("Run", "run"),
)
SUGGEST = len(FILTERS)
"""The id of the Suggest entry, after the kind filters."""
MODES = len(FILTERS) + 1
SEARCH_PLACEHOLDER = "Search code, chats and runs…"
SUGGEST_PLACEHOLDER = "Describe a task to brief your assistant on…"
SEARCH_HINT = "↑↓ move · Enter open · Tab filter · Ctrl+S suggest · Ctrl+C copy · Esc close"
SUGGEST_HINT = (
    "↑↓ parts · Enter copy preamble (or open code, chat) · Ctrl+C copy preamble · "
    "Ctrl+S search · Esc close"
)
SUGGEST_INTRO = (
    "Describe the task you are about to give a chat assistant.\n\n"
    "labmind gathers the lessons, code and chats that bear on it into a preamble "
    "to paste above your prompt."
)
HIT_ROLE = Qt.ItemDataRole.UserRole
STYLE = """
#popup { background: #23272e; border: 1px solid #3e4451; border-radius: 10px; }
#popup QLineEdit { font-size: 18px; padding: 8px; color: #e6e6e6; background: #1b1e23;
                   border: 1px solid #3e4451; border-radius: 6px; }
#popup QListWidget, #popup QPlainTextEdit { background: #1b1e23; color: #d7dae0;
                   border: 1px solid #3e4451; border-radius: 6px; }
#popup QListWidget::item { padding: 4px; }
#popup QListWidget::item:selected { background: #3a5f8f; color: white; }
#popup QLabel { color: #abb2bf; }
#popup QLabel#provenance { color: #e5c07b; }
#popup QPushButton { color: #abb2bf; background: transparent; border: 1px solid #3e4451;
                     border-radius: 4px; padding: 2px 10px; }
#popup QPushButton:checked { background: #3a5f8f; color: white; }
"""

ChatOpener = Callable[[str, int | None], None]
RunOpener = Callable[[str], None]


def chat_id_of(hit: SearchHit) -> str | None:
    if hit.chat_id and hit.kind == "chat":
        return hit.chat_id
    if hit.path.startswith("chat:"):
        return hit.path.removeprefix("chat:")
    return None


class SearchPopup(QWidget):
    """Shown and hidden by `toggle()`; opens results through `launcher` (files),
    `open_chat` (conversations) and `open_run` (experiment runs)."""

    opened = Signal(object)

    def __init__(
        self,
        api: DaemonApi,
        runner: TaskRunner,
        launcher: Launcher,
        *,
        open_chat: ChatOpener | None = None,
        open_run: RunOpener | None = None,
        editor: Callable[[str, int], list[str]] = editor_command,
        debounce_ms: int | None = None,
    ) -> None:
        super().__init__(None, Qt.WindowType.FramelessWindowHint | Qt.WindowType.Tool)
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint)
        self.setObjectName("popup")
        self.setWindowTitle("labmind search")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.setStyleSheet(STYLE)
        self.resize(900, 520)
        self._launcher = launcher
        self._editor = editor
        self._open_chat = open_chat
        self._open_run = open_run
        self._hits: list[SearchHit] = []
        self._suggestion: Suggestion | None = None
        self._parts: list[SuggestPart] = []
        self._search_filter = 0
        extra = {} if debounce_ms is None else {"debounce_ms": debounce_ms}
        self.session = SearchSession(api, runner, self, **extra)

        self.query = QLineEdit(self)
        self.query.setPlaceholderText(SEARCH_PLACEHOLDER)
        self.query.setClearButtonEnabled(True)
        self.filters = QButtonGroup(self)
        self.filters.setExclusive(True)
        filter_row = QHBoxLayout()
        for index, (label, _kind) in enumerate(FILTERS):
            button = QPushButton(label, self)
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.filters.addButton(button, index)
            filter_row.addWidget(button)
        filter_row.addSpacing(12)
        suggest = QPushButton("Suggest", self)
        suggest.setCheckable(True)
        suggest.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        suggest.setToolTip("A preamble for a chat assistant: lessons, your code, related chats")
        self.filters.addButton(suggest, SUGGEST)
        filter_row.addWidget(suggest)
        cast(QPushButton, self.filters.button(0)).setChecked(True)
        filter_row.addStretch(1)
        self.status = QLabel("", self)
        self.status.setObjectName("status")
        filter_row.addWidget(self.status)

        self.results = QListWidget(self)
        self.results.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.results.setUniformItemSizes(True)
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.results_panel = EmptyState(self.results, SUGGEST_INTRO, self)
        self.results_panel.set_empty(False)
        self.preview = PreviewPane(api, runner, self)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.results_panel)
        splitter.addWidget(self.preview)
        splitter.setSizes([360, 540])
        self.hint = QLabel(SEARCH_HINT, self)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignRight)

        frame = QFrame(self)
        inner = QVBoxLayout(frame)
        inner.addWidget(self.query)
        inner.addLayout(filter_row)
        inner.addWidget(splitter, 1)
        inner.addWidget(self.hint)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(frame)

        self.query.textChanged.connect(self.session.set_query)
        self.query.installEventFilter(self)
        self.filters.idClicked.connect(self._filter_clicked)
        self.results.currentRowChanged.connect(self._row_changed)
        self.results.itemActivated.connect(lambda _item: self.open_current())
        self.session.answered.connect(self._answered)
        self.session.suggested.connect(self._suggested)
        self.session.failed.connect(self._failed)
        self.session.cleared.connect(self._cleared)
        self._offline = ""

    # -- showing -------------------------------------------------------------------------

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.present()

    def present(self) -> None:
        """Show centred on the screen under the mouse, the query selected for typing."""
        screen = QGuiApplication.screenAt(QCursor.pos()) or QGuiApplication.primaryScreen()
        if screen is not None:
            area = screen.availableGeometry()
            self.move(area.center() - self.rect().center())
        self.show()
        self.raise_()
        self.activateWindow()
        self.query.setFocus()
        self.query.selectAll()

    def set_offline(self, reason: str) -> None:
        self._offline = reason
        self.status.setText(reason)

    def set_online(self) -> None:
        self._offline = ""
        self.status.setText("")
        if self.session.query.strip():
            self.session.refresh()

    # -- keys ----------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.query and event.type() == QEvent.Type.KeyPress:
            return self._key(cast(QKeyEvent, event))
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if not self._key(event):
            super().keyPressEvent(event)

    def _key(self, event: QKeyEvent) -> bool:
        key = event.key()
        if key == Qt.Key.Key_Escape:
            self.hide()
        elif key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            self.move_selection(1 if key == Qt.Key.Key_Down else -1)
        elif key in (Qt.Key.Key_PageDown, Qt.Key.Key_PageUp):
            self.move_selection(5 if key == Qt.Key.Key_PageDown else -5)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.open_current()
        elif key == Qt.Key.Key_Tab:
            self.cycle_filter(1)
        elif key == Qt.Key.Key_Backtab:
            self.cycle_filter(-1)
        elif key == Qt.Key.Key_S and event.modifiers() == Qt.KeyboardModifier.ControlModifier:
            self.set_suggesting(not self.suggesting())
        elif event.matches(QKeySequence.StandardKey.Copy) and not self.query.hasSelectedText():
            if self.suggesting():
                self.copy_preamble()
            else:
                self.copy_snippet()
        else:
            return False
        return True

    def focusNextPrevChild(self, _next: bool) -> bool:  # noqa: N802 - Qt override
        return False

    def move_selection(self, step: int) -> None:
        count = self.results.count()
        if count == 0:
            return
        row = self.results.currentRow()
        row = 0 if row < 0 else max(0, min(count - 1, row + step))
        self.results.setCurrentRow(row)

    def cycle_filter(self, step: int) -> None:
        """The next kind filter, then Suggest, then round again."""
        self._select((self.filters.checkedId() + step) % MODES)

    def set_suggesting(self, suggesting: bool) -> None:
        """Suggest mode on, or back to the kind filter used before it."""
        self._select(SUGGEST if suggesting else self._search_filter)

    def suggesting(self) -> bool:
        return self.filters.checkedId() == SUGGEST

    def kind(self) -> Kind | None:
        """The kind filter of search (none while suggesting)."""
        checked = self.filters.checkedId()
        return FILTERS[checked][1] if 0 <= checked < len(FILTERS) else None

    def _select(self, index: int) -> None:
        cast(QPushButton, self.filters.button(index)).setChecked(True)
        self._filter_clicked(index)

    # -- results -------------------------------------------------------------------------

    @property
    def hits(self) -> list[SearchHit]:
        return list(self._hits)

    def current_hit(self) -> SearchHit | None:
        row = self.results.currentRow()
        return self._hits[row] if 0 <= row < len(self._hits) else None

    @property
    def suggestion(self) -> Suggestion | None:
        return self._suggestion

    @property
    def parts(self) -> list[SuggestPart]:
        return list(self._parts)

    def current_part(self) -> SuggestPart | None:
        row = self.results.currentRow()
        return self._parts[row] if 0 <= row < len(self._parts) else None

    def open_current(self) -> None:
        if self.suggesting():
            part = self.current_part()
            if part is not None and part.hit is not None:
                self._open_hit(part.hit)
            else:
                self.copy_preamble()
            return
        hit = self.current_hit()
        if hit is None:
            return
        self._open_hit(hit)

    def _open_hit(self, hit: SearchHit) -> None:
        chat_id = chat_id_of(hit)
        if chat_id is not None:
            if self._open_chat is not None:
                self._open_chat(chat_id, hit.start_line or None)
        elif hit.kind == "run" and hit.run_id and self._open_run is not None:
            self._open_run(hit.run_id)
        else:
            self._launcher.launch(self._editor(hit.path, hit.snippet_line or hit.start_line))
        self.opened.emit(hit)
        self.hide()

    def copy_snippet(self) -> None:
        text = self.preview.snippet()
        if text:
            QApplication.clipboard().setText(text)
            self.status.setText("copied")

    def copy_preamble(self) -> None:
        """The whole preamble to the clipboard, and a word that it is there."""
        if self._suggestion is None:
            return
        text = self._suggestion.preamble
        QApplication.clipboard().setText(text)
        lines = len(text.splitlines())
        self.status.setText(
            f"preamble copied ({lines} line{'s' if lines != 1 else ''}) · "
            "paste it above your prompt"
        )

    def _filter_clicked(self, index: int) -> None:
        suggesting = index == SUGGEST
        if suggesting != self.session.suggesting:
            self._clear_results()
            self.query.setPlaceholderText(SUGGEST_PLACEHOLDER if suggesting else SEARCH_PLACEHOLDER)
            self.hint.setText(SUGGEST_HINT if suggesting else SEARCH_HINT)
            self.status.setText(self._offline)
        if not suggesting:
            self._search_filter = index
            self.session.set_kind(FILTERS[index][1])
        self.session.set_suggesting(suggesting)
        self._show_empty_state()

    def _answered(self, query: str, response: SearchResponse) -> None:
        self._hits = list(response.hits)
        self.results.clear()
        root = display_root(self._hits)
        for hit in self._hits:
            item = QListWidgetItem(f"{hit.title}\n{_where(hit, root)}")
            item.setToolTip(hit.path)
            self.results.addItem(item)
        if self._hits:
            self.results.setCurrentRow(0)
        else:
            self.preview.show_hit(None)
        count = len(self._hits)
        status = f"{count} result{'s' if count != 1 else ''} · {response.took_ms:.0f} ms"
        if response.mode != "lexical" and response.embedded < response.embed_total:
            status += f" · vectors {response.embedded}/{response.embed_total}"
        if not self._hits:
            status = f"no results for “{query.strip()}”"
        self.status.setText(status)

    def _suggested(self, task: str, suggestion: Suggestion) -> None:
        self._hits = []
        self._suggestion = suggestion
        self._parts = suggestion_parts(suggestion)
        self.results.clear()
        for part in self._parts:
            self.results.addItem(QListWidgetItem(part.label))
        self.results.setCurrentRow(0)
        counts = part_counts(suggestion)
        if counts:
            self.status.setText(f"{counts} · Enter copies the preamble")
        else:
            self.status.setText(f"nothing relevant to “{task.strip()}” yet")
        self._show_empty_state()

    def _failed(self, message: str) -> None:
        self.status.setText(self._offline or message)

    def _cleared(self) -> None:
        self._clear_results()
        self.status.setText(self._offline)
        self._show_empty_state()

    def _clear_results(self) -> None:
        self._hits = []
        self._suggestion = None
        self._parts = []
        self.results.clear()
        self.preview.show_hit(None)

    def _show_empty_state(self) -> None:
        """Suggest mode without a task, or with nothing relevant: say what it is for."""
        if not self.suggesting():
            self.results_panel.set_empty(False)
        elif self._suggestion is None:
            self.results_panel.set_empty(True, SUGGEST_INTRO)
        elif len(self._parts) <= 1:
            self.results_panel.set_empty(
                True,
                "Nothing in your lessons, code or chats bears on this task yet.\n\n"
                "Lessons are learned from imported chats (labmind import) and failed runs. "
                "Enter still copies the task as a preamble.",
            )
        else:
            self.results_panel.set_empty(False)

    def _row_changed(self, row: int) -> None:
        if self.suggesting():
            part = self._parts[row] if 0 <= row < len(self._parts) else None
            if part is None or part.hit is not None:
                self.preview.show_hit(None if part is None else part.hit)
            else:
                self.preview.show_text(part.title, part.text)
            return
        self.preview.show_hit(self._hits[row] if 0 <= row < len(self._hits) else None)


def short_path(path: str, home: str | None = None, most: int = 48) -> str:
    """``~`` for the home folder, and only the last folders of a long path."""
    home = home if home is not None else str(Path.home())
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        path = "~" + path[len(home.rstrip("/")) :]
    if len(path) <= most:
        return path
    parts = path.split("/")
    return "…/" + "/".join(parts[-3:])


def display_root(hits: list[SearchHit]) -> str | None:
    """The folder that result paths are shown relative to: the parent of the deepest
    folder that holds every file hit (so the project's own folder name stays visible)."""
    folders = [str(Path(h.path).parent) for h in hits if h.path.startswith("/")]
    if not folders:
        return None
    return str(Path(os.path.commonpath(folders)).parent)


def _where(hit: SearchHit, root: str | None) -> str:
    if hit.kind == "chat":
        return "chat"
    if hit.kind == "run":
        return f"run {hit.run_id or hit.path}"
    if root and hit.path.startswith(root.rstrip("/") + "/"):
        return f"{os.path.relpath(hit.path, root)}:{hit.start_line}"
    return f"{short_path(hit.path)}:{hit.start_line}"
