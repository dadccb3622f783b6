"""The third-party libraries a source file imports (for pre-flight warnings)."""

from __future__ import annotations

import ast
import json
import re
from typing import Final

from .names import canonical, is_stdlib

_IMPORT_LINE: Final = re.compile(
    r"^\s*(?:import\s+([\w.]+(?:\s*,\s*[\w.]+)*)|from\s+([\w.]+)\s+import\b)", re.MULTILINE
)
_NOTEBOOK_SUFFIX: Final = ".ipynb"


def imported_modules(source: str) -> set[str]:
    """Top-level modules that Python ``source`` imports (absolute imports only); a file
    that does not parse is read line by line."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return _by_lines(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _by_lines(source: str) -> set[str]:
    found: set[str] = set()
    for m in _IMPORT_LINE.finditer(source):
        if m.group(1):
            found.update(part.strip().split(".")[0] for part in m.group(1).split(","))
        else:
            found.add(m.group(2).split(".")[0])
    return found


def notebook_source(text: str) -> str:
    """The code cells of a notebook's JSON, joined (empty when it is not a notebook)."""
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        return ""
    parts: list[str] = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            src = cell.get("source", "")
            text_ = "".join(src) if isinstance(src, list) else str(src)
            lines = [ln for ln in text_.splitlines() if not ln.lstrip().startswith(("!", "%"))]
            parts.append("\n".join(lines))
    return "\n".join(parts)


def imported_libraries(source: str, *, notebook: bool = False) -> dict[str, str]:
    """Third-party libraries of ``source`` as {pip name: the module imported}."""
    code = notebook_source(source) if notebook else source
    return {
        canonical(module): module
        for module in sorted(imported_modules(code))
        if module and not is_stdlib(module) and not module.startswith("_")
    }


def is_notebook(path: str) -> bool:
    return path.endswith(_NOTEBOOK_SUFFIX)
