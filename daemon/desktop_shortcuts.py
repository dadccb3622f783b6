"""`labmind hotkey install|uninstall`: the desktop's own shortcut for ``labmind popup --toggle``.

Each desktop (GNOME, KDE Plasma, XFCE) turns a chord into a `Plan`: the exact commands
and files it would change, plus notes about bindings it replaces or collides with. The
CLI prints the plan, asks, then `apply` carries it out through the `Commands` seam.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from .hotkey_chord import Chord
from .system_commands import CommandFailed, Commands

DesktopName = Literal["gnome", "kde", "xfce"]
DESKTOPS: tuple[DesktopName, ...] = ("gnome", "kde", "xfce")
TITLE = "labmind search"

_ALIASES: dict[str, DesktopName] = {
    "gnome": "gnome",
    "gnome-classic": "gnome",
    "gnome-flashback": "gnome",
    "ubuntu": "gnome",
    "unity": "gnome",
    "budgie": "gnome",
    "kde": "kde",
    "plasma": "kde",
    "xfce": "xfce",
    "xfce4": "xfce",
}


class ShortcutError(Exception):
    """The desktop cannot take the shortcut; one line that says what to do instead."""


@dataclass(frozen=True)
class Step:
    """One change: a command to run, a file to write, or a file to remove."""

    argv: tuple[str, ...] = ()
    write: Path | None = None
    content: str = ""
    remove: Path | None = None

    def describe(self) -> str:
        if self.write is not None:
            return f"write {self.write}"
        if self.remove is not None:
            return f"remove {self.remove}"
        return f"run {shlex.join(self.argv)}"


@dataclass
class Plan:
    desktop: str
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the user should know first: a binding replaced, a chord taken elsewhere."""
    after: list[str] = field(default_factory=list)
    """What to do once it is applied (log in again, …)."""


class Desktop(Protocol):
    name: str

    def install(self, chord: Chord, command: Sequence[str]) -> Plan: ...

    def uninstall(self, command: Sequence[str]) -> Plan: ...


def detect(env: Mapping[str, str] = os.environ) -> DesktopName | None:
    """The desktop named by ``XDG_CURRENT_DESKTOP`` (``ubuntu:GNOME``, ``KDE``, ``XFCE``)."""
    for part in env.get("XDG_CURRENT_DESKTOP", "").split(":"):
        found = _ALIASES.get(part.strip().lower())
        if found is not None:
            return found
    return None


def apply(plan: Plan, commands: Commands) -> None:
    """Carry the plan out in order; stops at the first command that fails."""
    for step in plan.steps:
        if step.write is not None:
            step.write.parent.mkdir(parents=True, exist_ok=True)
            step.write.write_text(step.content, encoding="utf-8")
        elif step.remove is not None:
            step.remove.unlink(missing_ok=True)
        else:
            result = commands.run(step.argv)
            if not result.ok:
                raise CommandFailed(step.argv, result)


def require(commands: Commands, *names: str) -> str:
    """The first of ``names`` that is installed, or a `ShortcutError` naming them."""
    for name in names:
        if commands.which(name):
            return name
    raise ShortcutError(f"{' or '.join(names)} not found; is this desktop installed here?")
