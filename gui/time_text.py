"""Times as people read them in a menu or a table."""

from __future__ import annotations

import time


def ago(when: float | None, now: float | None = None) -> str:
    """``5 min ago``, ``2 h ago``, ``just now``; ``never`` for none."""
    if when is None:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - when)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"
