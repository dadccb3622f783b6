from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from fastapi import FastAPI

from labmind.daemon.paths import Paths
from labmind.daemon.transport import (
    PeerCheckedH11Protocol,
    ServerStartupError,
    bind_unix_socket,
    peer_credentials,
    serve,
)

T = TypeVar("T")
NOBODY = 65534
TIMEOUT_S = 20

# Runs as root, drops to nobody, then tries the daemon's socket.
CONNECT_AS_NOBODY = """
import os, socket, sys
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(10)
try:
    sock.connect(sys.argv[1])
except PermissionError:
    print("refused-by-filesystem")
    sys.exit(0)
try:
    sock.sendall(b"GET /ping HTTP/1.1\\r\\nHost: labmind\\r\\n\\r\\n")
    data = sock.recv(65536)
except (BrokenPipeError, ConnectionResetError):
    data = b""
print("closed-without-answer" if data == b"" else "answered: " + data.decode(errors="replace"))
"""


@pytest.fixture
def paths() -> Iterator[Paths]:
    home = Path(tempfile.mkdtemp(dir="/tmp", prefix="lm-"))
    resolved = Paths.resolve({"LABMIND_HOME": str(home)})
    resolved.ensure_dirs()
    yield resolved
    shutil.rmtree(home)


def make_app(events: list[str]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"pong": True}

    return app


def run_with_server(app: FastAPI, sock: socket.socket, work: Callable[[], T]) -> T:
    """Serve on the main thread's event loop while `work` runs in a worker thread."""

    async def main() -> T:
        started = asyncio.Event()
        stop = asyncio.Event()
        server = asyncio.create_task(
            serve(app, sock, log_level="warning", on_started=started.set, should_exit=stop)
        )
        await asyncio.wait_for(started.wait(), TIMEOUT_S)
        try:
            return await asyncio.to_thread(work)
        finally:
            stop.set()
            await asyncio.wait_for(server, TIMEOUT_S)

    return asyncio.run(main())


def get_ping(socket_path: Path) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, base_url="http://labmind", timeout=TIMEOUT_S) as client:
        return client.get("/ping")


def test_bind_creates_a_user_only_socket(paths: Paths) -> None:
    with bind_unix_socket(paths.socket_path) as sock:
        assert stat.S_ISSOCK(paths.socket_path.lstat().st_mode)
        assert stat.S_IMODE(paths.socket_path.lstat().st_mode) == 0o600
        assert stat.S_IMODE(paths.runtime_dir.stat().st_mode) == 0o700
        assert sock.getsockname() == str(paths.socket_path)


def test_serves_http_over_the_socket_and_stops_cleanly(paths: Paths) -> None:
    events: list[str] = []
    sock = bind_unix_socket(paths.socket_path)
    response = run_with_server(make_app(events), sock, lambda: get_ping(paths.socket_path))
    assert response.status_code == 200
    assert response.json() == {"pong": True}
    assert "server" not in response.headers
    assert events == ["startup", "shutdown"]
    assert sock.fileno() == -1
    with pytest.raises(httpx.ConnectError):
        get_ping(paths.socket_path)


def test_own_user_passes_the_peer_check(paths: Paths) -> None:
    def credentials() -> tuple[int, int]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(paths.socket_path))
            peer = peer_credentials(client)
            assert peer is not None
            return peer.pid, peer.uid

    sock = bind_unix_socket(paths.socket_path)
    # The client side sees the server: this process, as this user.
    assert run_with_server(make_app([]), sock, credentials) == (os.getpid(), os.getuid())


def test_daemon_keeps_its_own_signal_handlers(paths: Paths) -> None:
    received: list[int] = []
    sock = bind_unix_socket(paths.socket_path)
    sigint_before = signal.getsignal(signal.SIGINT)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_sigterm() -> None:
            received.append(signal.SIGTERM)
            stop.set()

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        try:
            await asyncio.wait_for(
                serve(
                    make_app([]),
                    sock,
                    log_level="warning",
                    on_started=lambda: os.kill(os.getpid(), signal.SIGTERM),
                    should_exit=stop,
                ),
                TIMEOUT_S,
            )
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    asyncio.run(main())
    assert received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is sigint_before


def test_failed_app_startup_is_an_error(paths: Paths) -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("store is corrupt")
        yield

    sock = bind_unix_socket(paths.socket_path)
    with pytest.raises(ServerStartupError):
        asyncio.run(serve(FastAPI(lifespan=lifespan), sock, log_level="critical"))
    assert sock.fileno() == -1


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
@pytest.mark.parametrize(
    ("dir_mode", "socket_mode", "outcome"),
    [
        (0o700, 0o600, "refused-by-filesystem"),
        (0o711, 0o600, "refused-by-filesystem"),
        (0o711, 0o666, "closed-without-answer"),
    ],
)
def test_other_users_are_kept_out(
    paths: Paths,
    caplog: pytest.LogCaptureFixture,
    dir_mode: int,
    socket_mode: int,
    outcome: str,
) -> None:
    sock = bind_unix_socket(paths.socket_path)
    paths.runtime_dir.parent.chmod(0o711)
    paths.runtime_dir.chmod(dir_mode)
    paths.socket_path.chmod(socket_mode)

    def connect_as_nobody() -> str:
        result = subprocess.run(
            [sys.executable, "-I", "-c", CONNECT_AS_NOBODY, str(paths.socket_path)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd="/",
            check=True,
        )
        return result.stdout.strip()

    with caplog.at_level(logging.WARNING, logger="labmind.daemon.transport"):
        assert run_with_server(make_app([]), sock, connect_as_nobody) == outcome
    refusals = [r.getMessage() for r in caplog.records if r.name == "labmind.daemon.transport"]
    if outcome == "closed-without-answer":
        assert len(refusals) == 1
        assert f"(uid {NOBODY})" in refusals[0]
    else:
        assert refusals == []


def test_protocol_is_uvicorns_h11() -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    assert issubclass(PeerCheckedH11Protocol, H11Protocol)
