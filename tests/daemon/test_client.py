from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from labmind.daemon.client import (
    DaemonClient,
    DaemonError,
    DaemonUnavailable,
    connect,
    parse_sse,
)
from labmind.daemon.events import SSE_KEEPALIVE, format_sse
from labmind.daemon.instance import is_answering
from labmind.daemon.launcher import DaemonStartError, stop
from labmind.daemon.paths import Paths
from labmind.daemon.protocol import (
    Ack,
    Event,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SkippedFile,
    StatusInfo,
    WatchRequest,
    WatchRoot,
)
from labmind.daemon.transport import bind_unix_socket, serve

TIMEOUT_S = 20

STATUS = StatusInfo(
    pid=4242,
    version="0.1.0",
    uptime_s=12.5,
    home="/tmp/home",
    socket="/tmp/home/run/daemon.sock",
    roots=1,
    files=10,
    chunks=40,
    embedded=30,
    embed_total=40,
    pending_files=0,
    skipped=2,
    indexing=False,
    embedder_loaded=True,
    rss_bytes=123_456_789,
    model="sentence-transformers/all-MiniLM-L6-v2",
)


@pytest.fixture
def paths() -> Iterator[Paths]:
    home = Path(tempfile.mkdtemp(dir="/tmp", prefix="lm-"))
    resolved = Paths.resolve({"LABMIND_HOME": str(home)})
    resolved.ensure_dirs()
    yield resolved
    shutil.rmtree(home)


@contextlib.contextmanager
def serving(app: FastAPI, socket_path: Path) -> Iterator[Callable[[], None]]:
    """Serve `app` on `socket_path` from a thread; yields a function that stops the server."""
    sock = bind_unix_socket(socket_path)
    loop = asyncio.new_event_loop()
    stop_event = asyncio.Event()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(
            serve(app, sock, log_level="warning", on_started=started.set, should_exit=stop_event)
        )

    def request_stop() -> None:
        loop.call_soon_threadsafe(stop_event.set)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(TIMEOUT_S)
    try:
        yield request_stop
    finally:
        if thread.is_alive():
            request_stop()
        thread.join(TIMEOUT_S)
        loop.close()


def make_app(seen: list[Any], on_shutdown: Callable[[], None] = lambda: None) -> FastAPI:
    app = FastAPI()

    @app.get("/status")
    def status() -> StatusInfo:
        return STATUS

    @app.post("/shutdown")
    def shutdown() -> Ack:
        on_shutdown()
        return Ack(message="bye")

    @app.get("/watch")
    def watches() -> list[WatchRoot]:
        return [WatchRoot(path="/data/proj", added_at=1.0, files=3, skipped=1)]

    @app.post("/watch")
    def watch_add(request: WatchRequest) -> WatchRoot:
        if not request.path.startswith("/"):
            raise HTTPException(400, f"{request.path}: use an absolute path")
        return WatchRoot(path=request.path, added_at=2.0, files=0, skipped=0)

    @app.delete("/watch")
    def watch_remove(path: str) -> Ack:
        seen.append(("DELETE /watch", path))
        return Ack()

    @app.get("/index/progress")
    def progress() -> JSONResponse:
        return JSONResponse({"jobs_done": "many"})

    @app.post("/search")
    def search(request: SearchRequest) -> SearchResponse:
        seen.append(request)
        hit = SearchHit(
            path="/data/proj/train.py",
            start_line=3,
            end_line=5,
            kind="code",
            score=0.5,
            title="train",
            snippet="def train():\n    pass\n",
            language="python",
        )
        return SearchResponse(hits=[hit], mode="hybrid", embedded=3, embed_total=4, took_ms=1.0)

    @app.get("/skipped")
    def skipped(root: str | None = None) -> list[SkippedFile]:
        seen.append(("GET /skipped", root))
        return [SkippedFile(path="/data/proj/big.bin", reason="binary", at=3.0)]

    @app.get("/events")
    def events() -> StreamingResponse:
        async def stream() -> AsyncIterator[bytes]:
            yield SSE_KEEPALIVE
            yield format_sse({"type": "progress", "seq": 1, "time": 1.5, "files": 3})
            whole = format_sse(
                Event(type="indexed", seq=2, time=2.5, data={"path": "/x.py"}).model_dump()
            )
            # One event split across writes, in the middle of a line.
            yield whole[:10]
            await asyncio.sleep(0.01)
            yield whole[10:]
            yield b'id: 7\nevent: alert\ndata: {"message": "disk almost full"}\n\n'

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def test_routes_return_typed_models(paths: Paths) -> None:
    seen: list[Any] = []
    with serving(make_app(seen), paths.socket_path), DaemonClient(paths) as client:
        assert client.status() == STATUS
        assert client.watches() == [WatchRoot(path="/data/proj", added_at=1.0, files=3, skipped=1)]
        assert client.watch_add("/data/new").path == "/data/new"
        assert client.watch_remove("/data/a b&c").ok
        assert client.skipped("/data/proj")[0].reason == "binary"
        assert client.skipped() == [SkippedFile(path="/data/proj/big.bin", reason="binary", at=3.0)]
        request = SearchRequest(query="train loop", kind="code", limit=3, since=10.0)
        response = client.search(request)
        assert client.shutdown().message == "bye"
    assert isinstance(response, SearchResponse)
    assert response.hits[0].language == "python"
    assert (response.embedded, response.embed_total) == (3, 4)
    assert seen == [
        ("DELETE /watch", "/data/a b&c"),
        ("GET /skipped", "/data/proj"),
        ("GET /skipped", None),
        request,
    ]


def test_error_answers_carry_the_daemons_detail(paths: Paths) -> None:
    with serving(make_app([]), paths.socket_path), DaemonClient(paths) as client:
        with pytest.raises(DaemonError) as refused:
            client.watch_add("relative/path")
        assert refused.value.status_code == 400
        assert str(refused.value) == "relative/path: use an absolute path"

        with pytest.raises(DaemonError) as unknown_route:
            client.reload_config()
        assert unknown_route.value.status_code == 404

        with pytest.raises(DaemonError, match="does not match this labmind"):
            client.progress()


def test_nothing_listening_is_daemon_unavailable(paths: Paths) -> None:
    home = paths.config_dir.parent
    expected = f"no labmind daemon is running for {home}; start it with `labmind start`"
    with DaemonClient(paths) as client, pytest.raises(DaemonUnavailable) as missing:
        client.status()
    assert str(missing.value) == expected

    # A socket file left behind by a daemon that died: connection refused.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(paths.socket_path))
    stale.close()
    with DaemonClient(paths) as client, pytest.raises(DaemonUnavailable) as refused:
        list(client.events())
    assert str(refused.value) == expected

    with pytest.raises(DaemonUnavailable):
        connect(paths, autostart=False)


def test_connect_returns_a_client_when_the_daemon_answers(paths: Paths) -> None:
    with serving(make_app([]), paths.socket_path), connect(paths, autostart=False) as client:
        assert client.status().pid == STATUS.pid


def test_event_stream_is_parsed_into_events(paths: Paths) -> None:
    with serving(make_app([]), paths.socket_path), DaemonClient(paths) as client:
        events = list(client.events())
    assert events == [
        Event(type="progress", seq=1, time=1.5, data={"files": 3}),
        Event(type="indexed", seq=2, time=2.5, data={"path": "/x.py"}),
        Event(type="alert", seq=7, time=0.0, data={"message": "disk almost full"}),
    ]


def test_closing_the_event_iterator_ends_the_stream(paths: Paths) -> None:
    with serving(make_app([]), paths.socket_path), DaemonClient(paths) as client:
        stream = client.events()
        assert next(stream).type == "progress"
        stream.close()
        assert client.status().pid == STATUS.pid


def test_parse_sse_handles_comments_multiline_data_and_a_missing_final_blank_line() -> None:
    lines = [
        ": hello",
        "event: note",
        'data: {"type": "note",',
        'data:  "text": "two lines"}',
        "",
        "",
        "data: not json",
    ]
    assert list(parse_sse(lines)) == [
        Event(type="note", data={"text": "two lines"}),
        Event(type="message", data={"text": "not json"}),
    ]


def test_stop_asks_the_daemon_to_shut_down(paths: Paths) -> None:
    stoppers: list[Callable[[], None]] = []
    app = make_app([], on_shutdown=lambda: stoppers[0]())
    with serving(app, paths.socket_path) as request_stop:
        stoppers.append(request_stop)
        assert is_answering(paths.socket_path)
        assert stop(paths, timeout_s=TIMEOUT_S)
        assert not is_answering(paths.socket_path)
    assert not stop(paths, timeout_s=1)


def test_a_daemon_that_cannot_start_is_reported_in_one_line(paths: Paths) -> None:
    paths.config_file.write_text("[index]\ndebounce_ms = 'soon'\n", encoding="utf-8")
    with pytest.raises(DaemonStartError) as failed:
        connect(paths, autostart=True)
    message = str(failed.value)
    assert "\n" not in message
    assert "exited with status" in message
    assert "index.debounce_ms" in message
    assert any("index.debounce_ms" in line for line in failed.value.log_tail)
    assert not is_answering(paths.socket_path)
