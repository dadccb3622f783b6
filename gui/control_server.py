"""The GUI's control socket: `labmind popup --toggle` asks the running GUI to toggle the
popup over a Unix socket in the runtime folder (mode 0600), and the socket's lock file
keeps one GUI per labmind home.

Commands are one line each: ``toggle``, ``show``, ``hide``, ``dashboard``; the answer is
``ok`` or ``error: …``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from PySide6.QtCore import QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

SOCKET_NAME = "gui.sock"
LOCK_NAME = "gui.lock"
COMMANDS = ("toggle", "show", "hide", "dashboard")


class GuiAlreadyRunning(RuntimeError):
    """Another labmind GUI holds this labmind home."""


def take_lock(runtime_dir: Path) -> IO[bytes]:
    """The single-instance lock, held while the returned file stays open."""
    runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle = (runtime_dir / LOCK_NAME).open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise GuiAlreadyRunning(f"a labmind GUI is already running for {runtime_dir}") from None
    return handle


class ControlServer(QObject):
    """Listens on `runtime_dir/gui.sock` and calls `handler(command)` on the GUI thread."""

    def __init__(
        self, runtime_dir: Path, handler: Callable[[str], None], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.path = runtime_dir / SOCKET_NAME
        self._handler = handler
        self._server = QLocalServer(self)
        self._server.newConnection.connect(self._accept)
        self.received: list[str] = []

    def listen(self) -> None:
        """Take the socket (after `take_lock`, so a leftover socket is stale)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_mask = os.umask(0o177)
        try:
            if not self._server.listen(str(self.path)):
                raise OSError(f"cannot listen on {self.path}: {self._server.errorString()}")
        finally:
            os.umask(old_mask)
        self.path.chmod(0o600)

    def close(self) -> None:
        self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            connection = self._server.nextPendingConnection()
            connection.readyRead.connect(lambda c=connection: self._read(c))
            connection.disconnected.connect(connection.deleteLater)

    def _read(self, connection: QLocalSocket) -> None:
        if not connection.canReadLine():
            return
        command = bytes(connection.readLine().data()).decode(errors="replace").strip()
        if command in COMMANDS:
            self.received.append(command)
            self._handler(command)
            connection.write(b"ok\n")
        else:
            connection.write(f"error: unknown command {command!r}\n".encode())
        connection.flush()
        connection.disconnectFromServer()
