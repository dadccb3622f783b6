"""XFCE: a command shortcut in the ``xfce4-keyboard-shortcuts`` xfconf channel."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from .desktop_shortcuts import Plan, ShortcutError, Step, require
from .hotkey_chord import Chord
from .system_commands import Commands

CHANNEL = "xfce4-keyboard-shortcuts"
COMMANDS = "/commands/custom/"
WINDOW_MANAGER = "/xfwm4/custom/"


def properties(listing: str) -> dict[str, str]:
    """``xfconf-query -l -v`` output: one ``property  value`` a line."""
    found: dict[str, str] = {}
    for line in listing.splitlines():
        prop, _, value = line.strip().partition(" ")
        if prop.startswith("/"):
            found[prop] = value.strip()
    return found


class Xfce:
    name = "XFCE"

    def __init__(self, commands: Commands) -> None:
        self.commands = commands

    def install(self, chord: Chord, command: Sequence[str]) -> Plan:
        tool = require(self.commands, "xfconf-query")
        plan = Plan(self.name)
        wanted = shlex.join(command)
        props = self._list(tool)
        target = COMMANDS + chord.xfce()
        exists = False
        for prop, value in props.items():
            same_chord = Chord.parse_accelerator(prop.rpartition("/")[2]) == chord
            if prop.startswith(COMMANDS) and same_chord:
                target, exists = prop, True
                if value == wanted:
                    return plan
                plan.notes.append(f"replaces {prop.removeprefix(COMMANDS)} → {value!r}")
            elif prop.startswith(COMMANDS) and value == wanted:
                plan.notes.append(f"moves labmind from {prop.removeprefix(COMMANDS)}")
                plan.steps.append(Step((tool, "-c", CHANNEL, "-p", prop, "-r")))
            elif prop.startswith(WINDOW_MANAGER) and same_chord:
                plan.notes.append(
                    f"{chord.xfce()} is also the window manager's {value!r}; it may win"
                )
        create = () if exists else ("-n", "-t", "string")
        plan.steps.append(Step((tool, "-c", CHANNEL, "-p", target, *create, "-s", wanted)))
        return plan

    def uninstall(self, command: Sequence[str]) -> Plan:
        tool = require(self.commands, "xfconf-query")
        plan = Plan(self.name)
        wanted = shlex.join(command)
        for prop, value in self._list(tool).items():
            if prop.startswith(COMMANDS) and value == wanted:
                plan.steps.append(Step((tool, "-c", CHANNEL, "-p", prop, "-r")))
        return plan

    def _list(self, tool: str) -> dict[str, str]:
        result = self.commands.run((tool, "-c", CHANNEL, "-l", "-v"))
        if not result.ok:
            raise ShortcutError(
                f"xfconf-query cannot read the {CHANNEL} channel ({result.reason()}); "
                "is xfconfd running?"
            )
        return properties(result.stdout)
