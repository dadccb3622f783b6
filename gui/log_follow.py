"""A run's log in a text view, followed live: its tail first, then only the bytes added
since (the log route's ``offset``), polled off the GUI thread until the daemon says the
run is over. The view stays where the user scrolled to, unless that was the bottom."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

from labmind.daemon.protocol import LogChunk, RunInfo

from .daemon_api import DaemonApi
from .tasks import TaskRunner

FOLLOW_MS = 500
TAIL_BYTES = 65_536
"""How much of the log is shown when a run is picked (one read of the log route)."""
MAX_LINES = 20_000
"""Older lines are dropped from the view past this many."""
LIVE = frozenset({"queued", "running"})
NO_OUTPUT = "(no output yet)"


class LogFollower(QObject):
    def __init__(
        self, api: DaemonApi, runner: TaskRunner, view: QPlainTextEdit, parent: QObject | None
    ) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self.view = view
        view.setMaximumBlockCount(MAX_LINES)
        self.run_id: str | None = None
        self.attempt = 0
        self.offset = 0
        self._generation = 0
        self._in_flight = False
        self._placeholder = False
        self.at_bottom = True
        """Whether the view sticks to the end (the user has not scrolled up)."""
        bar = view.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._grew)
        self._timer = QTimer(self)
        self._timer.setInterval(FOLLOW_MS)
        self._timer.timeout.connect(self.poll)

    @property
    def following(self) -> bool:
        return self._timer.isActive()

    def show(self, run: RunInfo) -> None:
        """Show ``run``'s log; a different run or attempt starts over from its tail."""
        if (run.id, run.attempt) != (self.run_id, self.attempt):
            self._start(run)
        elif run.status in LIVE and not self.following:
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._generation += 1
        self._in_flight = False

    def poll(self) -> None:
        """Fetch what was added since the last read (skipped while one is under way or the
        view is hidden)."""
        if self.run_id is None or self._in_flight or not self.view.isVisible():
            return
        self._in_flight = True
        self._runner.submit(
            partial(self._api.exp_log, self.run_id, self.offset),
            partial(self._appended, self._generation),
            partial(self._failed, self._generation),
            owner=self,
        )

    def _start(self, run: RunInfo) -> None:
        self.stop()
        self.run_id = run.id
        self.attempt = run.attempt
        self.offset = 0
        self._in_flight = True
        self.view.setPlainText("")
        self._runner.submit(
            partial(self._api.exp_log, run.id, 0, TAIL_BYTES),
            partial(self._tail_loaded, self._generation),
            partial(self._failed, self._generation),
            owner=self,
        )

    def _tail_loaded(self, generation: int, chunk: LogChunk) -> None:
        if generation != self._generation:
            return
        self._in_flight = False
        self.offset = chunk.offset
        self._placeholder = not chunk.text
        self.at_bottom = True
        self.view.setPlainText(chunk.text or NO_OUTPUT)
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())
        if not chunk.finished:
            self._timer.start()

    def _appended(self, generation: int, chunk: LogChunk) -> None:
        if generation != self._generation:
            return
        self._in_flight = False
        read = chunk.offset - self.offset
        self.offset = max(self.offset, chunk.offset)
        if chunk.text:
            self._append(chunk.text)
        if chunk.finished:
            self._timer.stop()
        elif read >= TAIL_BYTES:
            self.poll()

    def _append(self, text: str) -> None:
        if self._placeholder:
            self._placeholder = False
            self.view.setPlainText("")
        cursor = QTextCursor(self.view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)

    def _scrolled(self, value: int) -> None:
        self.at_bottom = value >= self.view.verticalScrollBar().maximum()

    def _grew(self, _low: int, high: int) -> None:
        """More text (or a smaller view): stay at the end if that is where the user was."""
        if self.at_bottom:
            self.view.verticalScrollBar().setValue(high)

    def _failed(self, generation: int, error: Exception) -> None:
        if generation != self._generation:
            return
        self._in_flight = False
        if self.view.toPlainText() in ("", NO_OUTPUT):
            self.view.setPlainText(f"(log not available: {error})")
