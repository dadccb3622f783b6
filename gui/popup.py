"""The search popup: frameless and centred, created hidden at start-up so that showing
it is instant; keyboard-only (Up/Down, Enter, Esc, Tab through the kind filters)."""

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

from labmind.daemon.protocol import Kind, SearchHit, SearchResponse

from .daemon_api import DaemonApi
from .editor import Launcher, editor_command
from .preview import PreviewPane
from .search_session import SearchSession
from .tasks import TaskRunner

FILTERS: tuple[tuple[str, Kind | None], ...] = (
    ("All", None),
    ("Code", "code"),
    ("Chat", "chat"),
    ("Run", "run"),
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
        extra = {} if debounce_ms is None else {"debounce_ms": debounce_ms}
        self.session = SearchSession(api, runner, self, **extra)

        self.query = QLineEdit(self)
        self.query.setPlaceholderText("Search code, chats and runs…")
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
        self.preview = PreviewPane(api, runner, self)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.results)
        splitter.addWidget(self.preview)
        splitter.setSizes([360, 540])
        hint = QLabel("↑↓ move · Enter open · Tab filter · Ctrl+C copy · Esc close", self)
        hint.setAlignment(Qt.AlignmentFlag.AlignRight)

        frame = QFrame(self)
        inner = QVBoxLayout(frame)
        inner.addWidget(self.query)
        inner.addLayout(filter_row)
        inner.addWidget(splitter, 1)
        inner.addWidget(hint)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(frame)

        self.query.textChanged.connect(self.session.set_query)
        self.query.installEventFilter(self)
        self.filters.idClicked.connect(self._filter_clicked)
        self.results.currentRowChanged.connect(self._row_changed)
        self.results.itemActivated.connect(lambda _item: self.open_current())
        self.session.answered.connect(self._answered)
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
        elif event.matches(QKeySequence.StandardKey.Copy) and not self.query.hasSelectedText():
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
        current = self.filters.checkedId()
        index = (current + step) % len(FILTERS)
        cast(QPushButton, self.filters.button(index)).setChecked(True)
        self._filter_clicked(index)

    def kind(self) -> Kind | None:
        return FILTERS[max(0, self.filters.checkedId())][1]

    # -- results -------------------------------------------------------------------------

    @property
    def hits(self) -> list[SearchHit]:
        return list(self._hits)

    def current_hit(self) -> SearchHit | None:
        row = self.results.currentRow()
        return self._hits[row] if 0 <= row < len(self._hits) else None

    def open_current(self) -> None:
        hit = self.current_hit()
        if hit is None:
            return
        chat_id = chat_id_of(hit)
        if chat_id is not None:
            if self._open_chat is not None:
                self._open_chat(chat_id, hit.start_line)
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

    def _filter_clicked(self, index: int) -> None:
        self.session.set_kind(FILTERS[index][1])

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

    def _failed(self, message: str) -> None:
        self.status.setText(self._offline or message)

    def _cleared(self) -> None:
        self._hits = []
        self.results.clear()
        self.preview.show_hit(None)
        self.status.setText(self._offline)

    def _row_changed(self, row: int) -> None:
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
