"""The files in ``packaging/`` and how they are filled in for this installation.

Templates use ``${name}`` placeholders (`string.Template`); each file format gets its own
quoting: systemd ``ExecStart=``, a desktop entry's ``Exec=``, plist XML, a Windows
``.cmd``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from xml.sax.saxutils import escape

from .desktop_entry import exec_line

MARKER = "labmind service install"
"""Every text file `labmind service install` writes says so; uninstall removes only those."""

ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)


class PackagingMissing(Exception):
    """The installation lacks its packaging files."""


def packaging_dir() -> Path:
    """``packaging/`` of this installation: inside the wheel, or in the source checkout."""
    spec = importlib.util.find_spec("labmind.packaging")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "systemd").is_dir():
            return Path(location)
    source = Path(__file__).resolve().parent.parent / "packaging"
    if (source / "systemd").is_dir():
        return source
    raise PackagingMissing("labmind's packaging files are missing; reinstall labmind")


def render(name: str, values: Mapping[str, str]) -> str:
    """The template ``packaging/<name>`` with every placeholder filled."""
    text = (packaging_dir() / name).read_bytes().decode("utf-8")
    return Template(text).substitute(values)


def icon_files() -> dict[str, bytes]:
    """``hicolor`` theme paths (``48x48/apps/labmind.png``) and their bytes."""
    icons = packaging_dir() / "icons"
    found = {"scalable/apps/labmind.svg": (icons / "labmind.svg").read_bytes()}
    for size in ICON_SIZES:
        found[f"{size}x{size}/apps/labmind.png"] = (icons / f"labmind-{size}.png").read_bytes()
    return found


def systemd_exec(argv: Sequence[str]) -> str:
    """``ExecStart=`` words: specifiers (%) doubled, words with blanks or quotes quoted."""
    words = []
    for arg in argv:
        arg = arg.replace("%", "%%")
        if arg and not any(ch in arg for ch in " \t\"'\\;$"):
            words.append(arg)
        else:
            escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
            words.append(f'"{escaped}"')
    return " ".join(words)


def systemd_environment(env: Mapping[str, str]) -> str:
    lines = []
    for key, value in env.items():
        quoted = f"{key}={value}".replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'Environment="{quoted}"\n')
    return "".join(lines)


def desktop_exec(argv: Sequence[str]) -> str:
    return exec_line(argv)


def plist_strings(argv: Sequence[str]) -> str:
    return "".join(f"\t\t<string>{escape(arg)}</string>\n" for arg in argv)


def plist_environment(env: Mapping[str, str]) -> str:
    if not env:
        return ""
    pairs = "".join(
        f"\t\t<key>{escape(k)}</key>\n\t\t<string>{escape(v)}</string>\n" for k, v in env.items()
    )
    return f"\t<key>EnvironmentVariables</key>\n\t<dict>\n{pairs}\t</dict>\n"


def cmd_words(argv: Sequence[str]) -> str:
    """A Windows ``.cmd`` command line: every word double-quoted, ``%`` doubled."""
    return " ".join('"' + arg.replace("%", "%%") + '"' for arg in argv)


def cmd_environment(env: Mapping[str, str]) -> str:
    return "".join(f'set "{k}={v.replace("%", "%%")}"\r\n' for k, v in env.items())
