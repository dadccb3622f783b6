"""Results as you type: debounced queries (searches, or in Suggest mode a task to brief an
assistant on), each superseding the one before it."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance

from labmind.daemon.protocol import Kind, SearchRequest, SuggestRequest

from .daemon_api import DaemonApi
from .tasks import TaskRunner

DEBOUNCE_MS = 120
RESULT_LIMIT = 20
SUGGEST_LIMIT = 5


class SearchSession(QObject):
    """Feed it the query and the kind filter; it emits `answered(query, SearchResponse)`
    for the latest query only, or `failed(message)`. Older answers are dropped. While
    `suggesting`, the query is a task and the answer `suggested(task, Suggestion)`."""

    answered = Signal(str, object)
    suggested = Signal(str, object)
    failed = Signal(str)
    cleared = Signal()

    def __init__(
        self,
        api: DaemonApi,
        runner: TaskRunner,
        parent: QObject | None = None,
        *,
        debounce_ms: int = DEBOUNCE_MS,
        limit: int = RESULT_LIMIT,
    ) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self._limit = limit
        self._query = ""
        self._kind: Kind | None = None
        self._suggesting = False
        self._generation = 0
        self._in_flight: int | None = None
        self.sent: list[SearchRequest | SuggestRequest] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.run_now)

    @property
    def query(self) -> str:
        return self._query

    @property
    def kind(self) -> Kind | None:
        return self._kind

    def set_query(self, text: str) -> None:
        if text == self._query:
            return
        self._query = text
        self._schedule()

    @property
    def suggesting(self) -> bool:
        return self._suggesting

    def set_kind(self, kind: Kind | None) -> None:
        if kind == self._kind:
            return
        self._kind = kind
        self._schedule()

    def set_suggesting(self, suggesting: bool) -> None:
        """Treat the query as a task to suggest for (or as a search again)."""
        if suggesting == self._suggesting:
            return
        self._suggesting = suggesting
        self._schedule()

    def refresh(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        self._generation += 1
        if self._in_flight is not None:
            self._runner.forget(self._in_flight)
            self._in_flight = None
        if not self._query.strip():
            self._timer.stop()
            self.cleared.emit()
            return
        self._timer.start()

    def run_now(self) -> None:
        """Send the current query at once (the debounce timer calls this)."""
        self._timer.stop()
        query = self._query.strip()
        if not query:
            return
        generation = self._generation
        if self._suggesting:
            asked = SuggestRequest(task=query, limit=SUGGEST_LIMIT)
            self.sent.append(asked)
            self._in_flight = self._runner.submit(
                partial(self._api.suggest, asked.task, asked.limit),
                partial(self._answered, generation, self.suggested, self._query),
                partial(self._failed, generation),
                owner=self,
            )
            return
        request = SearchRequest(query=query, kind=self._kind, limit=self._limit)
        self.sent.append(request)
        self._in_flight = self._runner.submit(
            partial(self._api.search, request),
            partial(self._answered, generation, self.answered, self._query),
            partial(self._failed, generation),
            owner=self,
        )

    def _answered(
        self, generation: int, signal: SignalInstance, query: str, answer: object
    ) -> None:
        if generation != self._generation:
            return
        self._in_flight = None
        signal.emit(query, answer)

    def _failed(self, generation: int, error: Exception) -> None:
        if generation != self._generation:
            return
        self._in_flight = None
        self.failed.emit(str(error))
