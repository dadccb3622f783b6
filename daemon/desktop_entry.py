"""Writing values into freedesktop ``.desktop`` files (launchers, autostart entries)."""

from __future__ import annotations

from collections.abc import Sequence

_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`=%")


def exec_line(argv: Sequence[str]) -> str:
    """``Exec=`` value for ``argv``: the Desktop Entry quoting, then the string escapes."""
    return escape_value(" ".join(_quote_arg(arg) for arg in argv))


def escape_value(text: str) -> str:
    """A string value: backslash, newline and tab escaped as the specification asks."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _quote_arg(arg: str) -> str:
    arg = arg.replace("%", "%%")
    if arg and not (_RESERVED & set(arg)):
        return arg
    escaped = "".join(f"\\{ch}" if ch in '"`$\\' else ch for ch in arg)
    return f'"{escaped}"'
