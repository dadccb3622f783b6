"""The seam to the desktop's and the service manager's own tools (gsettings, systemctl, …).

`SystemCommands` runs them; `RecordingCommands` records what would have run and answers
from a table, for tests and for ``--dry-run``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def reason(self) -> str:
        """The last line the tool wrote to stderr (or stdout), for a one-line error."""
        lines = (self.stderr or self.stdout).strip().splitlines()
        return lines[-1].strip() if lines else f"exit status {self.returncode}"


class CommandFailed(Exception):
    """A tool exited non-zero; the message names the command and the tool's own words."""

    def __init__(self, argv: Sequence[str], result: CommandResult) -> None:
        super().__init__(f"`{' '.join(argv)}` failed: {result.reason()}")
        self.result = result


class Commands(Protocol):
    def which(self, name: str) -> str | None:
        """The tool's path, or None when it is not installed."""
        ...

    def run(self, argv: Sequence[str]) -> CommandResult: ...


class SystemCommands:
    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def run(self, argv: Sequence[str]) -> CommandResult:
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
            )
        except FileNotFoundError:
            return CommandResult(127, stderr=f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return CommandResult(124, stderr=f"{argv[0]}: no answer in {TIMEOUT_S:.0f} s")
        return CommandResult(done.returncode, done.stdout, done.stderr)


Responder = Callable[[tuple[str, ...]], CommandResult | None]


@dataclass
class RecordingCommands:
    """Records every command; `installed` tools exist, `answers` (or `respond`) reply."""

    installed: set[str] = field(default_factory=set)
    answers: dict[tuple[str, ...], CommandResult] = field(default_factory=dict)
    respond: Responder | None = None
    ran: list[tuple[str, ...]] = field(default_factory=list)

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.installed else None

    def run(self, argv: Sequence[str]) -> CommandResult:
        command = tuple(argv)
        self.ran.append(command)
        if self.respond is not None:
            answer = self.respond(command)
            if answer is not None:
                return answer
        return self.answers.get(command, CommandResult(0))
