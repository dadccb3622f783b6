"""Real git servers on 127.0.0.1 for push tests: smart HTTP with Basic auth, and git daemon.

`HttpGitServer` runs ``git http-backend`` as a CGI behind a threaded `http.server` that
asks for Basic auth on every request (like a private GitHub repository), decodes the
chunked request bodies libgit2 sends, counts the credentials it sees, and can be taken
offline and brought back on the same port. `GitDaemon` runs ``git daemon`` with
receive-pack enabled for unauthenticated pushes. `bare_repo` and `reject_pushes` make
the repositories they serve.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ...processes import stop

DEADLINE_S = 10.0


def http_backend() -> Path:
    """Where ``git http-backend`` lives."""
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(exec_path) / "git-http-backend"


def bare_repo(root: Path, name: str, env: dict[str, str]) -> Path:
    """An empty bare repository ``root/name`` (e.g. ``"project.git"``)."""
    path = root / name
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], env=env, check=True)
    return path


def reject_pushes(bare: Path, message: str) -> None:
    """Install a ``pre-receive`` hook that prints ``message`` and refuses every push."""
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{message}' >&2\nexit 1\n")
    hook.chmod(0o755)


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AuthLog:
    """What the HTTP server saw in ``Authorization`` headers."""

    missing: int = 0
    """Requests without credentials (answered with a 401 challenge)."""
    rejected: int = 0
    """Requests with wrong credentials."""
    accepted: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, owner: HttpGitServer) -> None:
        self.owner = owner
        self.open_connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self.lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self.lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that goes away mid-request (libgit2 timing out, `offline`) is expected."""

    def drop_connections(self) -> None:
        with self.lock:
            connections = list(self.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class HttpGitServer:
    """``git http-backend`` behind Basic auth on ``http://127.0.0.1:<port>/<repo>``."""

    def __init__(
        self,
        root: Path,
        env: dict[str, str],
        *,
        user: str = "x-access-token",
        token: str | None = None,
    ) -> None:
        self.root = root
        self.env = env
        self.user = user
        self.token = token or secrets.token_urlsafe(16)
        """The token the server accepts (random unless given)."""
        self.auth = AuthLog()
        self.read_only = False
        """When set, pushes get 403 (a token without write access)."""
        self.requests: list[str] = []
        """``"METHOD /path"`` of every request that passed authentication."""
        self._lock = threading.Lock()
        self.backend = http_backend()
        self.port = free_port()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.online()

    @property
    def host(self) -> str:
        """The host as credentials are looked up for it: ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def url(self, repo: str) -> str:
        return f"http://{self.host}/{repo}"

    def online(self) -> None:
        """Listen (again) on the same port."""
        if self._server is not None:
            return
        self._server = _Server(self.port, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        wait_until(lambda: accepts_connections(self.port), "the HTTP server to listen")

    def offline(self) -> None:
        """Stop listening: connections to the port are refused until `online`."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        thread.join(DEADLINE_S)
        self._server = self._thread = None

    @property
    def pushes(self) -> int:
        """How many pack uploads (``POST .../git-receive-pack``) got through."""
        with self._lock:
            return sum(
                r.startswith("POST ") and r.endswith("/git-receive-pack") for r in self.requests
            )

    def check_auth(self, header: str | None, request: str) -> bool:
        with self._lock:
            if header is None or not header.startswith("Basic "):
                self.auth.missing += 1
                return False
            try:
                decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
            except ValueError:
                decoded = ""
            if decoded != f"{self.user}:{self.token}":
                self.auth.rejected += 1
                return False
            self.auth.accepted += 1
            self.requests.append(request)
            return True

    def cgi_env(
        self, method: str, path: str, query: str, headers: dict[str, str]
    ) -> dict[str, str]:
        env = dict(self.env)
        env.update(
            GIT_PROJECT_ROOT=str(self.root),
            GIT_HTTP_EXPORT_ALL="1",
            REMOTE_USER=self.user,
            REMOTE_ADDR="127.0.0.1",
            REQUEST_METHOD=method,
            PATH_INFO=path,
            QUERY_STRING=query,
            CONTENT_TYPE=headers.get("content-type", ""),
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
        )
        if "content-encoding" in headers:
            env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
        if "git-protocol" in headers:
            env["GIT_PROTOCOL"] = headers["git-protocol"]
        return env

    def __enter__(self) -> HttpGitServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.offline()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = DEADLINE_S

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read the counters, not the access log."""

    def _handle(self) -> None:
        owner = self.server.owner
        body = self._read_body()
        path, _, query = self.path.partition("?")
        if not owner.check_auth(self.headers.get("Authorization"), f"{self.command} {path}"):
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                {"WWW-Authenticate": 'Basic realm="labmind test"', "Content-Type": "text/plain"},
                b"authentication required\n",
            )
            return
        if owner.read_only and "git-receive-pack" in self.path:
            self._reply(HTTPStatus.FORBIDDEN, {"Content-Type": "text/plain"}, b"read only\n")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        env = owner.cgi_env(self.command, path, query, headers)
        env["CONTENT_LENGTH"] = str(len(body))
        proc = subprocess.run(
            [str(owner.backend)], input=body, env=env, capture_output=True, check=False
        )
        status, cgi_headers, payload = _parse_cgi(proc.stdout)
        self._reply(status, cgi_headers, payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.rfile.readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "status"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _parse_cgi(output: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split a CGI response into status, headers and body."""
    head, sep, body = output.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = output.partition(b"\n\n")
    status = 200
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return status, headers, body


class GitDaemon:
    """``git daemon`` serving ``root`` with pushes allowed and no authentication."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        for _attempt in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    "git",
                    "daemon",
                    "--enable=receive-pack",
                    "--export-all",
                    "--reuseaddr",
                    "--informative-errors",
                    f"--base-path={root}",
                    "--listen=127.0.0.1",
                    f"--port={self.port}",
                    str(root),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            end = time.monotonic() + DEADLINE_S
            while self.proc.poll() is None and time.monotonic() < end:
                if accepts_connections(self.port):
                    return
                time.sleep(0.01)
            self.stop()  # lost the port to someone else, or never came up: try another
        raise AssertionError("git daemon did not start")

    def url(self, repo: str) -> str:
        return f"git://127.0.0.1:{self.port}/{repo}"

    def stop(self) -> None:
        stop(self.proc, DEADLINE_S)

    def __enter__(self) -> GitDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
