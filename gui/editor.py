"""Opening a search result in the user's editor, behind a small `Launcher` Protocol.

The editor is chosen by ``LABMIND_EDITOR``:

- ``code`` (VS Code, also the default when ``code`` is on PATH): ``code -g PATH:LINE``
- ``terminal``: ``$VISUAL``/``$EDITOR`` in a terminal emulator, at the line
- ``xdg-open``: the desktop's default application for the file (no line)
- a template such as ``subl {path}:{line}`` or ``emacsclient -n +{line} {path}``
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

EDITOR_ENV = "LABMIND_EDITOR"
TERMINALS = ("x-terminal-emulator", "gnome-terminal", "konsole", "xfce4-terminal", "xterm")

Which = Callable[[str], str | None]


class Launcher(Protocol):
    def launch(self, argv: Sequence[str]) -> None: ...


class DetachedLauncher:
    """Starts the command in its own session, detached from the GUI."""

    def launch(self, argv: Sequence[str]) -> None:
        with Path(os.devnull).open("r+b") as null:
            subprocess.Popen(
                list(argv),
                stdin=null,
                stdout=null,
                stderr=null,
                start_new_session=True,
                close_fds=True,
            )


def editor_command(
    path: str,
    line: int,
    *,
    env: Mapping[str, str] = os.environ,
    which: Which = shutil.which,
) -> list[str]:
    """The command that opens `path` at `line` in the configured editor."""
    choice = env.get(EDITOR_ENV, "").strip()
    if not choice:
        choice = "code" if which("code") else "terminal" if _editor(env) else "xdg-open"
    if choice == "code":
        return ["code", "-g", f"{path}:{line}"]
    if choice == "xdg-open":
        return ["open" if which("open") and not which("xdg-open") else "xdg-open", path]
    if choice == "terminal":
        editor = _editor(env) or "vi"
        terminal = next((t for t in TERMINALS if which(t)), "xterm")
        return [terminal, "-e", *shlex.split(editor), f"+{line}", path]
    return [part.format(path=path, line=line) for part in shlex.split(choice)]


def _editor(env: Mapping[str, str]) -> str:
    return env.get("VISUAL", "").strip() or env.get("EDITOR", "").strip()
