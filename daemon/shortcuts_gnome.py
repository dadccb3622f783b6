"""GNOME: a custom keybinding of ``org.gnome.settings-daemon.plugins.media-keys``."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from .desktop_shortcuts import TITLE, Plan, ShortcutError, Step, require
from .hotkey_chord import Chord
from .system_commands import Commands

SCHEMA = "org.gnome.settings-daemon.plugins.media-keys"
LIST_KEY = "custom-keybindings"
ENTRY = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/labmind/"
CHECKED_SCHEMAS = (SCHEMA, "org.gnome.desktop.wm.keybindings", "org.gnome.shell.keybindings")
"""Where GNOME's own shortcuts live; a chord taken there is reported before binding."""

_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


def entry_schema(path: str) -> str:
    return f"{SCHEMA}.custom-keybinding:{path}"


def gvariant_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def gvariant_strv(items: Sequence[str]) -> str:
    return "[" + ", ".join(gvariant_string(item) for item in items) + "]" if items else "@as []"


def parse_strings(text: str) -> list[str]:
    """The strings of a GVariant ``s`` or ``as`` as gsettings prints it."""
    found = []
    for match in _STRING.finditer(text):
        raw = match.group(1) if match.group(1) is not None else match.group(2)
        found.append(re.sub(r"\\(.)", r"\1", raw))
    return found


class Gnome:
    name = "GNOME"

    def __init__(self, commands: Commands) -> None:
        self.commands = commands

    def install(self, chord: Chord, command: Sequence[str]) -> Plan:
        gsettings = require(self.commands, "gsettings")
        plan = Plan(self.name)
        entries = self._entries(gsettings)
        wanted = {"name": TITLE, "command": shlex.join(command), "binding": chord.gnome()}
        if ENTRY in entries:
            current = {key: self._get(gsettings, entry_schema(ENTRY), key) for key in wanted}
            if current == wanted:
                return plan
            plan.notes.append(
                f"replaces labmind's binding {current['binding']!r} → {current['command']!r}"
            )
        plan.notes += self._taken(gsettings, chord, entries)
        target = entry_schema(ENTRY)
        plan.steps += [
            Step((gsettings, "set", target, key, gvariant_string(value)))
            for key, value in wanted.items()
        ]
        if ENTRY not in entries:
            plan.steps.append(
                Step((gsettings, "set", SCHEMA, LIST_KEY, gvariant_strv([*entries, ENTRY])))
            )
        return plan

    def uninstall(self, command: Sequence[str]) -> Plan:
        gsettings = require(self.commands, "gsettings")
        plan = Plan(self.name)
        entries = self._entries(gsettings)
        if ENTRY not in entries:
            return plan
        remaining = [entry for entry in entries if entry != ENTRY]
        plan.steps.append(Step((gsettings, "set", SCHEMA, LIST_KEY, gvariant_strv(remaining))))
        plan.steps += [
            Step((gsettings, "reset", entry_schema(ENTRY), key))
            for key in ("name", "command", "binding")
        ]
        return plan

    def _entries(self, gsettings: str) -> list[str]:
        result = self.commands.run((gsettings, "get", SCHEMA, LIST_KEY))
        if not result.ok:
            raise ShortcutError(
                f"gsettings cannot read {SCHEMA} ({result.reason()}); "
                "is GNOME's settings daemon installed?"
            )
        return parse_strings(result.stdout)

    def _get(self, gsettings: str, schema: str, key: str) -> str:
        result = self.commands.run((gsettings, "get", schema, key))
        values = parse_strings(result.stdout) if result.ok else []
        return values[0] if values else ""

    def _taken(self, gsettings: str, chord: Chord, entries: list[str]) -> list[str]:
        notes: list[str] = []
        for entry in entries:
            if entry == ENTRY:
                continue
            schema = entry_schema(entry)
            if Chord.parse_accelerator(self._get(gsettings, schema, "binding")) == chord:
                name = self._get(gsettings, schema, "name") or entry
                notes.append(
                    f"{chord.gnome()} is also the custom shortcut {name!r}; both will compete "
                    "(change one in Settings → Keyboard)"
                )
        for schema in CHECKED_SCHEMAS:
            result = self.commands.run((gsettings, "list-recursively", schema))
            for line in result.stdout.splitlines() if result.ok else []:
                parts = line.split(None, 2)
                if len(parts) < 3 or parts[1] == LIST_KEY:
                    continue
                if any(Chord.parse_accelerator(v) == chord for v in parse_strings(parts[2])):
                    notes.append(
                        f"{chord.gnome()} is already GNOME's {parts[1]!r} ({schema}); it may win "
                        "over labmind's binding"
                    )
        return notes
