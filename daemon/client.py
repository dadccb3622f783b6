"""A typed client for the daemon's local API, for the CLI and the GUI.

Kept light on purpose (httpx and pydantic only): the GUI imports it.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from .instance import is_answering
from .paths import Paths as Paths
from .protocol import (
    Ack,
    BackupNowRequest,
    BackupOutcome,
    BackupStatus,
    ChatDetail,
    ChatSummary,
    ConfigSetRequest,
    ConfigView,
    Event,
    ImportRequest,
    ImportStatus,
    IndexJob,
    IndexProgress,
    IndexRequest,
    LessonInfo,
    LessonUpdate,
    LogChunk,
    RestoreRequest,
    RestoreResult,
    RunDetail,
    RunInfo,
    RunOutliers,
    SearchRequest,
    SearchResponse,
    SkippedFile,
    SnapshotEntry,
    StatusInfo,
    SubmitRequest,
    SubmitResult,
    Suggestion,
    SuggestRequest,
    WatchRequest,
    WatchRoot,
    WhyResponse,
)

DEFAULT_TIMEOUT_S = 30.0
BACKUP_TIMEOUT_S = 3600.0
"""A first snapshot or push of a large folder takes a while; `backup now` waits for it."""
BASE_URL = "http://labmind"

M = TypeVar("M", bound=BaseModel)

_WATCH_ROOTS = TypeAdapter(list[WatchRoot])
_SKIPPED_FILES = TypeAdapter(list[SkippedFile])
_CHAT_SUMMARIES = TypeAdapter(list[ChatSummary])
_BACKUP_OUTCOMES = TypeAdapter(list[BackupOutcome])
_SNAPSHOT_ENTRIES = TypeAdapter(list[SnapshotEntry])
_RUN_INFOS = TypeAdapter(list[RunInfo])
_LESSON_INFOS = TypeAdapter(list[LessonInfo])
_EVENT_FIELDS = frozenset(Event.model_fields)


class DaemonUnavailable(RuntimeError):
    """No daemon answers on the socket, or it went away during a request."""


class DaemonError(RuntimeError):
    """The daemon answered with an error; `message` is its one-line `detail`."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def home_label(paths: Paths) -> str:
    """How to name this labmind home in a message: `LABMIND_HOME`, else the runtime folder."""
    parents = {paths.config_dir.parent, paths.data_dir.parent, paths.runtime_dir.parent}
    return str(parents.pop()) if len(parents) == 1 else str(paths.runtime_dir)


def not_running_message(paths: Paths) -> str:
    return f"no labmind daemon is running for {home_label(paths)}; start it with `labmind start`"


class DaemonClient:
    """One method per route of `labmind.daemon.protocol`; errors are `DaemonUnavailable`
    (nothing answers) or `DaemonError` (the daemon refused, with its reason)."""

    def __init__(self, paths: Paths, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.paths = paths
        self.timeout = timeout
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(paths.socket_path)),
            base_url=BASE_URL,
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def status(self) -> StatusInfo:
        return self._model(StatusInfo, "GET", "/status")

    def shutdown(self) -> Ack:
        return self._model(Ack, "POST", "/shutdown")

    def watches(self) -> list[WatchRoot]:
        return self._list(_WATCH_ROOTS, "GET", "/watch")

    def watch_add(self, path: str) -> WatchRoot:
        return self._model(WatchRoot, "POST", "/watch", body=WatchRequest(path=path))

    def watch_remove(self, path: str) -> Ack:
        return self._model(Ack, "DELETE", "/watch", params={"path": path})

    def index(self, paths: Sequence[str] = (), rebuild: bool = False) -> IndexJob:
        body = IndexRequest(paths=list(paths), rebuild=rebuild)
        return self._model(IndexJob, "POST", "/index", body=body)

    def progress(self) -> IndexProgress:
        return self._model(IndexProgress, "GET", "/index/progress")

    def index_pause(self, paused: bool) -> Ack:
        return self._model(Ack, "POST", "/index/pause" if paused else "/index/resume")

    def search(self, request: SearchRequest) -> SearchResponse:
        return self._model(SearchResponse, "POST", "/search", body=request)

    def skipped(self, root: str | None = None) -> list[SkippedFile]:
        params = {} if root is None else {"root": root}
        return self._list(_SKIPPED_FILES, "GET", "/skipped", params=params)

    def reload_config(self) -> Ack:
        return self._model(Ack, "POST", "/config/reload")

    def config(self) -> ConfigView:
        return self._model(ConfigView, "GET", "/config")

    def config_set(self, key: str, value: str) -> ConfigView:
        body = ConfigSetRequest(key=key, value=value)
        return self._model(ConfigView, "POST", "/config", body=body)

    def import_chats(self, path: str) -> ImportStatus:
        return self._model(ImportStatus, "POST", "/chats/import", body=ImportRequest(path=path))

    def import_status(self, job_id: int) -> ImportStatus:
        return self._model(ImportStatus, "GET", f"/chats/import/{job_id}")

    def chats(self, limit: int = 50, offset: int = 0) -> list[ChatSummary]:
        params = {"limit": str(limit), "offset": str(offset)}
        return self._list(_CHAT_SUMMARIES, "GET", "/chats", params=params)

    def chat(self, chat_id: str) -> ChatDetail:
        return self._model(ChatDetail, "GET", f"/chats/{quote(chat_id, safe='')}")

    def why(self, path: str, line: int | None = None) -> WhyResponse:
        params = {"path": path} if line is None else {"path": path, "line": str(line)}
        return self._model(WhyResponse, "GET", "/why", params=params)

    def backup_status(self) -> BackupStatus:
        return self._model(BackupStatus, "GET", "/backup")

    def backup_now(self, path: str | None = None) -> list[BackupOutcome]:
        body = BackupNowRequest(path=path)
        return self._list(
            _BACKUP_OUTCOMES, "POST", "/backup/now", body=body, timeout=BACKUP_TIMEOUT_S
        )

    def backup_log(
        self, path: str, branch: str | None = None, limit: int = 50
    ) -> list[SnapshotEntry]:
        params = {"path": path, "limit": str(limit)}
        if branch is not None:
            params["branch"] = branch
        return self._list(_SNAPSHOT_ENTRIES, "GET", "/backup/log", params=params)

    def backup_restore(self, request: RestoreRequest) -> RestoreResult:
        return self._model(
            RestoreResult, "POST", "/backup/restore", body=request, timeout=BACKUP_TIMEOUT_S
        )

    def backup_pause(self, paused: bool) -> Ack:
        return self._model(Ack, "POST", "/backup/pause" if paused else "/backup/resume")

    def exp_submit(self, spec: str) -> SubmitResult:
        return self._model(SubmitResult, "POST", "/exp/submit", body=SubmitRequest(spec=spec))

    def exp_runs(self, sweep: str | None = None) -> list[RunInfo]:
        params = {} if sweep is None else {"sweep": sweep}
        return self._list(_RUN_INFOS, "GET", "/exp/runs", params=params)

    def exp_run(self, run_id: str) -> RunDetail:
        return self._model(RunDetail, "GET", f"/exp/runs/{quote(run_id, safe='')}")

    def exp_log(self, run_id: str, offset: int = 0, tail: int | None = None) -> LogChunk:
        """The log from byte ``offset`` on, or (``tail``) its last bytes from a line start;
        either way ``offset`` in the answer is where to read on from."""
        url = f"/exp/runs/{quote(run_id, safe='')}/log"
        params = {"offset": str(offset)} if tail is None else {"tail": str(tail)}
        return self._model(LogChunk, "GET", url, params=params)

    def exp_action(self, run_id: str, action: str) -> RunInfo:
        return self._model(RunInfo, "POST", f"/exp/runs/{quote(run_id, safe='')}/{action}")

    def exp_pause(self, paused: bool) -> Ack:
        return self._model(Ack, "POST", "/exp/pause" if paused else "/exp/resume")

    def exp_outliers(
        self, run_id: str, limit: int | None = None, reason: str | None = None
    ) -> RunOutliers:
        params = {"limit": str(limit)} if limit is not None else {}
        if reason is not None:
            params["reason"] = reason
        url = f"/exp/runs/{quote(run_id, safe='')}/outliers"
        return self._model(RunOutliers, "GET", url, params=params)

    def lessons(self, include_dismissed: bool = False) -> list[LessonInfo]:
        params = {"all": "true"} if include_dismissed else {}
        return self._list(_LESSON_INFOS, "GET", "/lessons", params=params)

    def lesson_update(
        self,
        lesson_id: str,
        *,
        status: str | None = None,
        resolution: str | None = None,
        note: str | None = None,
    ) -> LessonInfo:
        try:
            body = LessonUpdate.model_validate(
                {"status": status, "resolution": resolution, "note": note}
            )
        except ValidationError:
            raise DaemonError(
                f"unknown lesson status {status!r}; use active, dismissed or edited"
            ) from None
        url = f"/lessons/{quote(lesson_id, safe='')}"
        return self._model(LessonInfo, "PATCH", url, body=body)

    def suggest(self, task: str, limit: int = 5) -> Suggestion:
        body = SuggestRequest(task=task, limit=limit)
        return self._model(Suggestion, "POST", "/suggest", body=body)

    def events(self) -> Generator[Event, None, None]:
        """The daemon's event stream, until it ends or the generator is closed."""
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            with self._http.stream("GET", "/events", timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise _error_from(response)
                yield from parse_sse(response.iter_lines())
        except httpx.TransportError as exc:
            raise self._transport_error(exc, "GET /events") from exc

    def _model(
        self,
        model: type[M],
        method: str,
        url: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> M:
        data = self._request(method, url, body=body, params=params, timeout=timeout)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise _mismatch(method, url, exc) from None

    def _list(
        self,
        adapter: TypeAdapter[list[M]],
        method: str,
        url: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[M]:
        data = self._request(method, url, body=body, params=params, timeout=timeout)
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            raise _mismatch(method, url, exc) from None

    def _request(
        self,
        method: str,
        url: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        payload = None if body is None else body.model_dump(mode="json")
        try:
            response = self._http.request(
                method,
                url,
                json=payload,
                params=params,
                timeout=self.timeout if timeout is None else timeout,
            )
        except httpx.TransportError as exc:
            raise self._transport_error(exc, f"{method} {url}") from exc
        if response.is_error:
            raise _error_from(response)
        try:
            return response.json()
        except ValueError:
            raise DaemonError(
                f"the daemon's answer to {method} {url} is not JSON; "
                "restart it with `labmind stop` and `labmind start`",
                status_code=response.status_code,
            ) from None

    def _transport_error(self, exc: httpx.TransportError, what: str) -> Exception:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return DaemonUnavailable(not_running_message(self.paths))
        if isinstance(exc, httpx.TimeoutException):
            return DaemonError(
                f"the labmind daemon did not answer {what} within {self.timeout:g} s; "
                f"see {self.paths.log_file}"
            )
        return DaemonUnavailable(
            f"the labmind daemon for {home_label(self.paths)} stopped answering ({exc}); "
            f"see {self.paths.log_file} and start it again with `labmind start`"
        )


def connect(paths: Paths, *, autostart: bool, timeout: float = DEFAULT_TIMEOUT_S) -> DaemonClient:
    """A client for the daemon of `paths`, starting it in the background if `autostart`."""
    if not is_answering(paths.socket_path):
        if not autostart:
            raise DaemonUnavailable(not_running_message(paths))
        from .launcher import start_background

        start_background(paths)
    return DaemonClient(paths, timeout=timeout)


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a server-sent event stream (`id:`, `event:`, `data:`)."""
    event_id: str | None = None
    event_type: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield _event(event_id, event_type, "\n".join(data))
            event_id, event_type, data = None, None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event_type = value
        elif field == "id":
            event_id = value
    if data:
        yield _event(event_id, event_type, "\n".join(data))


def _event(event_id: str | None, event_type: str | None, data: str) -> Event:
    try:
        payload = json.loads(data)
    except ValueError:
        payload = {"text": data}
    if not isinstance(payload, dict):
        payload = {"value": payload}
    if isinstance(payload.get("data"), dict) and set(payload) <= _EVENT_FIELDS:
        fields = dict(payload)
    else:
        rest = {k: v for k, v in payload.items() if k not in _EVENT_FIELDS}
        fields = {k: payload[k] for k in ("type", "seq", "time") if k in payload}
        fields["data"] = rest
    fields.setdefault("type", event_type or "message")
    if "seq" not in fields and event_id is not None and event_id.isdigit():
        fields["seq"] = int(event_id)
    try:
        return Event.model_validate(fields)
    except ValidationError as exc:
        raise DaemonError(f"the daemon sent an event this labmind cannot read: {exc}") from None


def _error_from(response: httpx.Response) -> DaemonError:
    detail: Any = None
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        detail = f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg")
    if not isinstance(detail, str) or not detail.strip():
        text = response.text.strip()
        detail = text or f"the daemon answered HTTP {response.status_code}"
    return DaemonError(" ".join(detail.split()), status_code=response.status_code)


def _mismatch(method: str, url: str, exc: ValidationError) -> DaemonError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return DaemonError(
        f"the daemon's answer to {method} {url} does not match this labmind "
        f"({where}: {first['msg']}); restart it with `labmind stop` and `labmind start`"
    )
