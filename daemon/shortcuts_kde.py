"""KDE Plasma: a hidden launcher ``.desktop`` file with its global shortcut.

The launcher goes to ``$XDG_DATA_HOME/applications/labmind-popup.desktop`` (with
``X-KDE-Shortcuts``), and the shortcut into ``kglobalshortcutsrc`` under
``[services][labmind-popup.desktop]`` with kwriteconfig, as System Settings → Shortcuts
does for an application (Plasma 5.25 and later).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .desktop_entry import escape_value, exec_line
from .desktop_shortcuts import TITLE, Plan, Step, require
from .hotkey_chord import Chord
from .system_commands import Commands

DESKTOP_FILE = "labmind-popup.desktop"
SHORTCUTS_FILE = "kglobalshortcutsrc"
MARKER = "X-Labmind-Installed=hotkey"
KWRITECONFIG = ("kwriteconfig6", "kwriteconfig5")


def launcher(chord: Chord, command: Sequence[str]) -> str:
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            f"Name={escape_value(TITLE)}",
            "Comment=Show or hide the labmind search popup",
            f"Exec={exec_line(command)}",
            "Icon=labmind",
            "NoDisplay=true",
            "StartupNotify=false",
            f"X-KDE-Shortcuts={chord.kde()}",
            MARKER,
            "",
        ]
    )


def shortcut_groups(text: str) -> Iterator[tuple[str, str, str]]:
    """``(group, key, value)`` of a kglobalshortcutsrc; nested groups as ``[a][b]``."""
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            group = line
            continue
        key, sep, value = line.partition("=")
        if sep:
            yield group, key.strip(), value.strip()


def bound_chords(value: str) -> list[Chord]:
    """The active shortcuts of a value: ``Meta+E\\tLaunch (1)`` or ``Ctrl+K,none,Name``."""
    active = value.split(",")[0] if re.search(r",[^,]*,", value) else value
    chords = (Chord.parse_accelerator(part) for part in active.replace("\\t", "\t").split("\t"))
    return [chord for chord in chords if chord is not None]


class Kde:
    name = "KDE Plasma"

    def __init__(self, commands: Commands, env: Mapping[str, str]) -> None:
        self.commands = commands
        home = Path(env.get("HOME") or Path.home())
        self.data_home = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
        self.config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")

    @property
    def launcher_path(self) -> Path:
        return self.data_home / "applications" / DESKTOP_FILE

    @property
    def shortcuts_path(self) -> Path:
        return self.config_home / SHORTCUTS_FILE

    def install(self, chord: Chord, command: Sequence[str]) -> Plan:
        tool = require(self.commands, *KWRITECONFIG)
        plan = Plan(self.name)
        content = launcher(chord, command)
        ours = f"[services][{DESKTOP_FILE}]"
        current = self._read(self.launcher_path)
        for group, key, value in shortcut_groups(self._read(self.shortcuts_path)):
            if key == "_k_friendly_name" or chord not in bound_chords(value):
                continue
            if group == ours:
                continue
            plan.notes.append(
                f"{chord.kde()} is already the shortcut of {key!r} in {group}; Plasma keeps the "
                "first one (change one in System Settings → Shortcuts)"
            )
        if current == content:
            return plan
        if current and MARKER not in current:
            plan.notes.append(f"replaces {self.launcher_path}, which labmind did not write")
        elif current:
            plan.notes.append(f"replaces labmind's earlier binding in {self.launcher_path}")
        plan.steps += [
            Step(write=self.launcher_path, content=content),
            Step(self._kwrite(tool, "_launch", chord.kde())),
        ]
        plan.after.append("log out and back in (or restart kglobalaccel) for Plasma to load it")
        return plan

    def uninstall(self, command: Sequence[str]) -> Plan:
        plan = Plan(self.name)
        current = self._read(self.launcher_path)
        if MARKER in current:
            plan.steps.append(Step(remove=self.launcher_path))
        elif current:
            plan.notes.append(f"leaves {self.launcher_path}: labmind did not write it")
        ours = f"[services][{DESKTOP_FILE}]"
        if any(group == ours for group, _, _ in shortcut_groups(self._read(self.shortcuts_path))):
            tool = require(self.commands, *KWRITECONFIG)
            plan.steps.append(Step(self._kwrite(tool, "_launch", None)))
        return plan

    def _kwrite(self, tool: str, key: str, value: str | None) -> tuple[str, ...]:
        head = (tool, "--file", SHORTCUTS_FILE, "--group", "services", "--group", DESKTOP_FILE)
        tail = ("--key", key, "--delete") if value is None else ("--key", key, value)
        return head + tail

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return ""
