"""Reading loosely typed JSON fields of an export without trusting their types.

Exports change shape over time and are sometimes hand-edited: a title may be a number,
a timestamp a string, a list an object. These helpers coerce what has an obvious
reading and answer None (or empty) for the rest, so one odd field never costs a whole
conversation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

MILLISECONDS_AFTER = 1e11
"""Numeric timestamps above this are milliseconds (1e11 s is the year 5138)."""


def as_mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> Sequence[Any]:
    """``value`` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def as_text(value: object) -> str | None:
    """A string field: strings as they are, numbers as written, anything else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return None


def as_identifier(value: object) -> str | None:
    """An id field: a non-blank string or an integer, as a string; else None."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def as_timestamp(value: object) -> float | None:
    """Unix seconds from a number, a numeric string or an ISO-8601 string; else None.

    Milliseconds (JavaScript timestamps) are recognised by their size; ISO times without
    a zone are taken as UTC.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        try:
            seconds = float(value)
        except (OverflowError, ValueError):  # a huge integer, a signalling NaN
            return None
    elif isinstance(value, str):
        seconds_or_none = _parse_time_string(value.strip())
        if seconds_or_none is None:
            return None
        seconds = seconds_or_none
    else:
        return None
    if not math.isfinite(seconds):
        return None
    if abs(seconds) > MILLISECONDS_AFTER:
        seconds /= 1000.0
    return seconds if abs(seconds) <= MILLISECONDS_AFTER else None


def _parse_time_string(text: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except (ValueError, OverflowError):
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
