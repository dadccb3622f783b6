"""`labmind popup [--toggle]` without Qt: ask the running GUI over its control socket
(``gui.sock`` in the runtime folder) and start the GUI when none answers.

Only the standard library and `paths` are imported here, so the command stays fast.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from .paths import Paths

SOCKET_NAME = "gui.sock"
"""The GUI's control socket in the runtime folder (the GUI listens; 0600)."""
ANSWER_TIMEOUT_S = 2.0
LOG_NAME = "gui.log"


def gui_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "labmind.gui", *extra]


def ask_gui(paths: Paths, command: str, timeout: float = ANSWER_TIMEOUT_S) -> bool:
    """Send one command (toggle, show, hide, dashboard); whether a GUI said ok."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(paths.runtime_dir / SOCKET_NAME))
            conn.sendall(command.encode() + b"\n")
            return conn.recv(64).startswith(b"ok")
    except OSError:
        return False


def start_gui(paths: Paths, *extra: str) -> int:
    """Start the GUI process detached (its log: ``gui.log`` in the data folder); its pid."""
    import subprocess

    paths.ensure_dirs()
    with (
        Path(os.devnull).open("rb") as stdin,
        (paths.data_dir / LOG_NAME).open("ab") as log,
    ):
        proc = subprocess.Popen(
            gui_command(*extra),
            stdin=stdin,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def popup(paths: Paths, *, toggle: bool) -> str:
    """Toggle (or show) the popup of the running GUI, or start one that shows it."""
    if ask_gui(paths, "toggle" if toggle else "show"):
        return ""
    pid = start_gui(paths, "--show-popup")
    return f"started the labmind GUI (pid {pid}); see {paths.data_dir / LOG_NAME}"


def main(args: list[str]) -> int:
    """The fast path of `labmind popup [--toggle]` (no typer, no httpx, no Qt)."""
    try:
        message = popup(Paths.resolve(), toggle="--toggle" in args)
    except OSError as exc:
        print(f"labmind: {exc}", file=sys.stderr)
        return 1
    if message:
        print(message, file=sys.stderr)
    return 0
