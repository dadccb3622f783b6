"""The local API: thin FastAPI routes over the daemon's backend (see protocol.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .events import SSE_KEEPALIVE, EventBus, format_sse
from .protocol import (
    Ack,
    BackupNowRequest,
    BackupOutcome,
    BackupStatus,
    ChatDetail,
    ChatSummary,
    ConfigSetRequest,
    ConfigView,
    ImportRequest,
    ImportStatus,
    IndexJob,
    IndexProgress,
    IndexRequest,
    LessonInfo,
    LessonUpdate,
    LogChunk,
    OutlierReason,
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

KEEPALIVE_S = 15.0
MAX_LOG_TAIL = 65_536
"""The most a ``?tail=`` read returns (one chunk of the log)."""


class ApiError(Exception):
    """An error the client caused or can fix; `detail` is one line that says what to do."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Backend(Protocol):
    """What the routes need from the daemon."""

    @property
    def events(self) -> EventBus: ...
    def status(self) -> StatusInfo: ...
    def shutdown(self) -> None: ...
    def watches(self) -> list[WatchRoot]: ...
    def watch_add(self, path: str) -> WatchRoot: ...
    def watch_remove(self, path: str) -> bool: ...
    def index(self, req: IndexRequest) -> IndexJob: ...
    def progress(self) -> IndexProgress: ...
    def index_pause(self, paused: bool) -> None: ...
    def search(self, req: SearchRequest) -> SearchResponse: ...
    def skipped(self, root: str | None) -> list[SkippedFile]: ...
    def reload_config(self) -> None: ...
    def config_view(self) -> ConfigView: ...
    def config_set(self, key: str, value: str) -> ConfigView: ...
    def import_chats(self, path: str) -> ImportStatus: ...
    def import_status(self, job_id: int) -> ImportStatus: ...
    def chats_list(self, limit: int, offset: int) -> list[ChatSummary]: ...
    def chat(self, chat_id: str) -> ChatDetail: ...
    def why(self, path: str, line: int | None) -> WhyResponse: ...
    def backup_status(self) -> BackupStatus: ...
    def backup_now(self, path: str | None) -> list[BackupOutcome]: ...
    def backup_log(self, path: str, branch: str | None, limit: int) -> list[SnapshotEntry]: ...
    def backup_restore(self, req: RestoreRequest) -> RestoreResult: ...
    def backup_pause(self, paused: bool) -> None: ...
    def exp_submit(self, spec: str) -> SubmitResult: ...
    def exp_runs(self, sweep: str | None) -> list[RunInfo]: ...
    def exp_run(self, run_id: str) -> RunDetail: ...
    def exp_log(self, run_id: str, offset: int, tail: int | None = None) -> LogChunk: ...
    def exp_action(self, run_id: str, action: str) -> RunInfo: ...
    def exp_pause(self, paused: bool) -> None: ...
    def exp_outliers(self, run_id: str, limit: int | None, reason: str | None) -> RunOutliers: ...
    def lessons_list(self, include_dismissed: bool) -> list[LessonInfo]: ...
    def lesson_update(self, lesson_id: str, req: LessonUpdate) -> LessonInfo: ...
    def suggest(self, req: SuggestRequest) -> Suggestion: ...


def create_api(backend: Backend) -> FastAPI:
    api = FastAPI(title="labmind", docs_url=None, redoc_url=None, openapi_url="/openapi.json")

    @api.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @api.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return JSONResponse({"detail": f"internal error: {line}"}, status_code=500)

    @api.get("/status")
    def status() -> StatusInfo:
        return backend.status()

    @api.post("/shutdown")
    def shutdown() -> Ack:
        backend.shutdown()
        return Ack(message="shutting down")

    @api.get("/watch")
    def watches() -> list[WatchRoot]:
        return backend.watches()

    @api.post("/watch")
    def watch_add(req: WatchRequest) -> WatchRoot:
        return backend.watch_add(req.path)

    @api.delete("/watch")
    def watch_remove(path: str) -> Ack:
        if not backend.watch_remove(path):
            raise ApiError(404, f"{path} is not watched; see `labmind watch ls`")
        return Ack(message=f"stopped watching {path}")

    @api.post("/index")
    def index(req: IndexRequest) -> IndexJob:
        return backend.index(req)

    @api.get("/index/progress")
    def progress() -> IndexProgress:
        return backend.progress()

    @api.post("/index/pause")
    def index_pause() -> Ack:
        backend.index_pause(True)
        return Ack(
            message="indexing paused: changes are noted and indexed after "
            "`labmind resume --indexing`"
        )

    @api.post("/index/resume")
    def index_resume() -> Ack:
        backend.index_pause(False)
        return Ack(message="indexing resumed: what changed meanwhile is being indexed")

    @api.post("/search")
    def search(req: SearchRequest) -> SearchResponse:
        return backend.search(req)

    @api.get("/skipped")
    def skipped(root: str | None = None) -> list[SkippedFile]:
        return backend.skipped(root)

    @api.post("/config/reload")
    def reload_config() -> Ack:
        backend.reload_config()
        return Ack(message="configuration reloaded")

    @api.get("/config")
    def config_view() -> ConfigView:
        return backend.config_view()

    @api.post("/config")
    def config_set(req: ConfigSetRequest) -> ConfigView:
        return backend.config_set(req.key, req.value)

    @api.post("/chats/import")
    def import_chats(req: ImportRequest) -> ImportStatus:
        return backend.import_chats(req.path)

    @api.get("/chats/import/{job_id}")
    def import_status(job_id: int) -> ImportStatus:
        return backend.import_status(job_id)

    @api.get("/chats")
    def chats(limit: int = 50, offset: int = 0) -> list[ChatSummary]:
        if limit < 1 or limit > 10_000 or offset < 0:
            raise ApiError(400, "limit must be 1…10000 and offset ≥ 0")
        return backend.chats_list(limit, offset)

    @api.get("/chats/{chat_id}")
    def chat(chat_id: str) -> ChatDetail:
        return backend.chat(chat_id)

    @api.get("/why")
    def why(path: str, line: int | None = None) -> WhyResponse:
        return backend.why(path, line)

    @api.get("/backup")
    def backup_status() -> BackupStatus:
        return backend.backup_status()

    @api.post("/backup/now")
    def backup_now(req: BackupNowRequest) -> list[BackupOutcome]:
        return backend.backup_now(req.path)

    @api.get("/backup/log")
    def backup_log(path: str, branch: str | None = None, limit: int = 50) -> list[SnapshotEntry]:
        if limit < 1 or limit > 100_000:
            raise ApiError(400, "limit must be 1…100000")
        return backend.backup_log(path, branch, limit)

    @api.post("/backup/restore")
    def backup_restore(req: RestoreRequest) -> RestoreResult:
        return backend.backup_restore(req)

    @api.post("/backup/pause")
    def backup_pause() -> Ack:
        backend.backup_pause(True)
        return Ack(message="backups paused; `labmind backup resume` starts them again")

    @api.post("/backup/resume")
    def backup_resume() -> Ack:
        backend.backup_pause(False)
        return Ack(message="backups resumed")

    @api.post("/exp/submit")
    def exp_submit(req: SubmitRequest) -> SubmitResult:
        return backend.exp_submit(req.spec)

    @api.get("/exp/runs")
    def exp_runs(sweep: str | None = None) -> list[RunInfo]:
        return backend.exp_runs(sweep)

    @api.get("/exp/runs/{run_id}")
    def exp_run(run_id: str) -> RunDetail:
        return backend.exp_run(run_id)

    @api.get("/exp/runs/{run_id}/log")
    def exp_log(run_id: str, offset: int = 0, tail: int | None = None) -> LogChunk:
        if offset < 0:
            raise ApiError(400, "offset must be ≥ 0")
        if tail is not None and not 1 <= tail <= MAX_LOG_TAIL:
            raise ApiError(400, f"tail must be 1…{MAX_LOG_TAIL} bytes")
        return backend.exp_log(run_id, offset, tail)

    @api.get("/exp/runs/{run_id}/outliers")
    def exp_outliers(
        run_id: str, limit: int | None = None, reason: OutlierReason | None = None
    ) -> RunOutliers:
        if limit is not None and not 1 <= limit <= 1_000_000:
            raise ApiError(400, "limit must be 1…1000000")
        return backend.exp_outliers(run_id, limit, reason)

    @api.post("/exp/runs/{run_id}/{action}")
    def exp_action(run_id: str, action: str) -> RunInfo:
        if action not in ("cancel", "retry", "approve"):
            raise ApiError(404, f"no action '{action}'; use cancel, retry or approve")
        return backend.exp_action(run_id, action)

    @api.post("/exp/pause")
    def exp_pause() -> Ack:
        backend.exp_pause(True)
        return Ack(message="the experiment queue is paused; running runs go on")

    @api.post("/exp/resume")
    def exp_resume() -> Ack:
        backend.exp_pause(False)
        return Ack(message="the experiment queue is running")

    @api.get("/lessons")
    def lessons(all: bool = False) -> list[LessonInfo]:
        return backend.lessons_list(all)

    @api.patch("/lessons/{lesson_id}")
    def lesson_update(lesson_id: str, req: LessonUpdate) -> LessonInfo:
        return backend.lesson_update(lesson_id, req)

    @api.post("/suggest")
    def suggest(req: SuggestRequest) -> Suggestion:
        if not req.task.strip():
            raise ApiError(400, 'describe the task, e.g. `labmind suggest "resize images"`')
        return backend.suggest(req)

    @api.get("/events")
    async def events() -> StreamingResponse:
        return StreamingResponse(
            _stream(backend.events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return api


async def _stream(bus: EventBus) -> AsyncIterator[bytes]:
    subscription = bus.subscribe()
    yield SSE_KEEPALIVE
    try:
        while True:
            try:
                event = await asyncio.wait_for(anext(subscription), KEEPALIVE_S)
            except TimeoutError:
                yield SSE_KEEPALIVE
                continue
            except StopAsyncIteration:
                return
            yield format_sse(event)
    finally:
        await subscription.aclose()
