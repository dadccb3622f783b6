"""Opening a file in the user's own application (a run's log from a notification)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class OpenError(OSError):
    """The file could not be handed to an application; the message says why."""


class Opener(Protocol):
    def open(self, path: Path) -> None:
        """Hand ``path`` to the user's application; returns at once."""
        ...


class SystemOpener:
    """The configured ``command()`` (the path is appended), else the platform's opener:
    ``xdg-open`` on Linux, ``open`` on macOS, the file's association on Windows."""

    def __init__(self, command: Callable[[], str] = lambda: "") -> None:
        self.command = command

    def open(self, path: Path) -> None:
        if not self.command() and sys.platform == "win32":
            try:
                os.startfile(path)  # type: ignore[attr-defined,unused-ignore]  # noqa: S606
            except OSError as exc:
                raise OpenError(f"cannot open {path}: {exc.strerror or exc}") from exc
            return
        argv = [*self._argv(), str(path)]
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise OpenError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        threading.Thread(target=process.wait, name="labmind-opener", daemon=True).start()

    def _argv(self) -> list[str]:
        command = self.command()
        if command:
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise OpenError(f"notifications.open_command: {exc}") from exc
            if argv:
                return argv
        return ["open"] if sys.platform == "darwin" else ["xdg-open"]


@dataclass
class RecordingOpener:
    """An `Opener` that remembers what it was asked to open."""

    opened: list[Path] = field(default_factory=list)

    def open(self, path: Path) -> None:
        self.opened.append(path)
