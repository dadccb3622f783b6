"""A keyboard chord such as ``<ctrl>+<alt>+k``: parsed once, written in each desktop's syntax.

The config holds chords the way pynput writes them (``<ctrl>``, ``<alt>``, ``<shift>``,
``<cmd>`` for the Super/Windows/Command key, then one key). GNOME and XFCE want GTK
accelerators, KDE its own ``Ctrl+Alt+K``; `Chord.parse_accelerator` reads the first two
back, so that existing bindings can be compared with ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

MODIFIERS: Final = ("ctrl", "alt", "shift", "cmd")
"""In the order every rendering writes them."""

_NAMED: Final[dict[str, tuple[str, str]]] = {
    # pynput name: (GTK/keysym name, KDE name)
    "space": ("space", "Space"),
    "tab": ("Tab", "Tab"),
    "enter": ("Return", "Return"),
    "esc": ("Escape", "Esc"),
    "backspace": ("BackSpace", "Backspace"),
    "insert": ("Insert", "Ins"),
    "delete": ("Delete", "Del"),
    "home": ("Home", "Home"),
    "end": ("End", "End"),
    "page_up": ("Page_Up", "PgUp"),
    "page_down": ("Page_Down", "PgDown"),
    "up": ("Up", "Up"),
    "down": ("Down", "Down"),
    "left": ("Left", "Left"),
    "right": ("Right", "Right"),
    **{f"f{n}": (f"F{n}", f"F{n}") for n in range(1, 25)},
}

_GTK_MODIFIERS: Final = {
    "control": "ctrl",
    "ctrl": "ctrl",
    "primary": "ctrl",
    "alt": "alt",
    "mod1": "alt",
    "shift": "shift",
    "super": "cmd",
    "mod4": "cmd",
    "meta": "cmd",
}
_KDE_MODIFIERS: Final = {"ctrl": "ctrl", "alt": "alt", "shift": "shift", "meta": "cmd"}
_BY_GTK_NAME: Final = {gtk.lower(): name for name, (gtk, _) in _NAMED.items()}
_BY_KDE_NAME: Final = {kde.lower(): name for name, (_, kde) in _NAMED.items()}


class ChordError(ValueError):
    """A chord that cannot be used; the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Chord:
    modifiers: frozenset[str]
    key: str
    """A lowercase letter or digit, or a pynput key name (``space``, ``f5``, …)."""

    @classmethod
    def parse(cls, text: str) -> Chord:
        """A pynput-style chord: ``<ctrl>+<alt>+k``; at least one modifier, then one key."""
        parts = [part.strip().lower() for part in text.split("+")]
        if len(parts) < 2 or any(not part for part in parts):
            raise ChordError(
                f"{text!r} is not a chord; write modifiers and a key like <ctrl>+<alt>+k"
            )
        *mods, key = parts
        modifiers: set[str] = set()
        for mod in mods:
            name = mod.removeprefix("<").removesuffix(">")
            if not (mod.startswith("<") and mod.endswith(">")) or name not in MODIFIERS:
                raise ChordError(
                    f"{mod!r} in {text!r} is not a modifier; use {', '.join(_bracketed())}"
                )
            if name in modifiers:
                raise ChordError(f"{text!r} names {mod} twice")
            modifiers.add(name)
        return cls(frozenset(modifiers), _key(key, text))

    @classmethod
    def parse_accelerator(cls, text: str) -> Chord | None:
        """A GTK accelerator (``<Primary><Alt>k``) or a KDE shortcut (``Ctrl+Alt+K``); None
        when it is neither or uses keys this module does not know."""
        text = text.strip()
        gtk = re.fullmatch(r"((?:<[A-Za-z0-9]+>)+)([^<>+]+)", text)
        if gtk:
            mods = re.findall(r"<([A-Za-z0-9]+)>", gtk.group(1))
            table, names, key = _GTK_MODIFIERS, _BY_GTK_NAME, gtk.group(2)
        elif "+" in text:
            *mods, key = text.split("+")
            table, names = _KDE_MODIFIERS, _BY_KDE_NAME
        else:
            return None
        modifiers = {table.get(mod.strip().lower()) for mod in mods}
        key = key.strip().lower()
        key = names.get(key, key)
        if None in modifiers or not (key in _NAMED or re.fullmatch(r"[a-z0-9]", key)):
            return None
        return cls(frozenset(m for m in modifiers if m is not None), key)

    def _ordered(self) -> list[str]:
        return [mod for mod in MODIFIERS if mod in self.modifiers]

    def pynput(self) -> str:
        key = f"<{self.key}>" if self.key in _NAMED else self.key
        return "+".join([*(f"<{mod}>" for mod in self._ordered()), key])

    def gnome(self) -> str:
        names = {"ctrl": "<Control>", "alt": "<Alt>", "shift": "<Shift>", "cmd": "<Super>"}
        return "".join(names[mod] for mod in self._ordered()) + self._gtk_key()

    def xfce(self) -> str:
        names = {"ctrl": "<Primary>", "alt": "<Alt>", "shift": "<Shift>", "cmd": "<Super>"}
        return "".join(names[mod] for mod in self._ordered()) + self._gtk_key()

    def kde(self) -> str:
        names = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "cmd": "Meta"}
        key = _NAMED[self.key][1] if self.key in _NAMED else self.key.upper()
        return "+".join([*(names[mod] for mod in self._ordered()), key])

    def xdg(self) -> str:
        """The XDG shortcuts syntax of the GlobalShortcuts portal: ``CTRL+ALT+k``."""
        names = {"ctrl": "CTRL", "alt": "ALT", "shift": "SHIFT", "cmd": "LOGO"}
        return "+".join([*(names[mod] for mod in self._ordered()), self._gtk_key()])

    def _gtk_key(self) -> str:
        return _NAMED[self.key][0] if self.key in _NAMED else self.key


def _bracketed() -> list[str]:
    return [f"<{mod}>" for mod in MODIFIERS]


def _key(key: str, text: str) -> str:
    if re.fullmatch(r"[a-z0-9]", key):
        return key
    name = key.removeprefix("<").removesuffix(">")
    if key.startswith("<") and key.endswith(">") and name in _NAMED:
        return name
    if name in MODIFIERS:
        raise ChordError(f"{text!r} ends in a modifier; end it with a key like k or <f5>")
    raise ChordError(
        f"{key!r} in {text!r} is not a key labmind can bind; use a letter, a digit or one of "
        "<space>, <tab>, <enter>, <esc>, <f1>…<f24>, <home>, <end>, <page_up>, <page_down>, "
        "<insert>, <delete>, <backspace>, <up>, <down>, <left>, <right>"
    )
