"""Serving an ASGI app on a user-only Unix socket with uvicorn.

The socket file is created 0600 in a 0700 folder, and every accepted connection is
checked with `SO_PEERCRED`: a peer running as another user is disconnected before a
byte is read. uvicorn's own signal handling is switched off; the daemon owns SIGTERM
and SIGINT and stops the server through `should_exit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 128

# struct ucred { pid_t pid; uid_t uid; gid_t gid; }
_UCRED = struct.Struct("iII")


class ServerStartupError(RuntimeError):
    """The application's lifespan start-up failed, so the server never listened."""


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def bind_unix_socket(path: Path, *, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A listening Unix socket at `path` that only its owner may connect to (mode 0600)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o177)
        try:
            sock.bind(os.fspath(path))
        finally:
            os.umask(previous)
        path.chmod(0o600)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_credentials(sock: Any) -> PeerCredentials | None:
    """pid, uid and gid of the process at the other end of a Unix socket (Linux)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


class PeerCheckedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that drops connections from other users."""

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        if not hasattr(socket, "SO_PEERCRED"):
            # No credentials to read here; the 0700 folder and 0600 socket keep others out.
            return
        peer = peer_credentials(transport.get_extra_info("socket"))
        if peer is not None and peer.uid == os.getuid():
            return
        if peer is None:
            logger.warning("refused a connection whose peer credentials could not be read")
        else:
            logger.warning(
                "refused a connection from pid %d (uid %d); only uid %d may connect",
                peer.pid,
                peer.uid,
                os.getuid(),
            )
        transport.close()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The daemon installs its own SIGTERM/SIGINT handlers and sets `should_exit`.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()


async def serve(
    app: Any,
    sock: socket.socket,
    *,
    log_level: str,
    on_started: Callable[[], None] | None = None,
    should_exit: asyncio.Event | None = None,
    graceful_timeout_s: int = 5,
) -> None:
    """Serve `app` on the listening `sock` until `should_exit` is set.

    `on_started` runs once the app's lifespan start-up is done and the socket accepts
    requests. Open connections (event streams) get `graceful_timeout_s` to finish on
    shutdown. The socket is closed on return.
    """
    config = uvicorn.Config(
        app,
        http=PeerCheckedH11Protocol,
        ws="none",
        lifespan="on",
        log_config=None,
        log_level=log_level,
        access_log=log_level == "debug",
        proxy_headers=False,
        server_header=False,
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=graceful_timeout_s,
    )
    server = _Server(config, on_started)

    async def stop_when_asked(event: asyncio.Event) -> None:
        await event.wait()
        server.should_exit = True

    watcher = None if should_exit is None else asyncio.create_task(stop_when_asked(should_exit))
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        raise ServerStartupError("the daemon's application failed to start") from exc
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        sock.close()
