"""What lesson mining reads (turns of a conversation) and what it finds (episodes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TurnRole = Literal["user", "assistant", "tool"]

ResolutionKind = Literal["replacement", "pin", "workaround", "install", "upgrade"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the displayed path of a conversation (Markdown text, code fenced)."""

    id: str
    role: TurnRole
    text: str
    created: float | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What replaced or fixed a failing library.

    ``text`` is one line for a person (``use pillow instead``, ``pin numpy<2``,
    ``apt-get install libgl1``); ``library`` is the replacement's pip name for a
    replacement, or the pinned/installed package for a pin or an install.
    """

    kind: ResolutionKind
    text: str
    library: str | None = None
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class Episode:
    """One source's evidence that ``library`` (a pip name) failed, and what came of it.

    ``ref`` names where: ``chat:<conversation id>#<message id>`` or ``run:<run id>``;
    ``context`` is a little of the surrounding text (a chat's title, the user's words),
    for matching the lesson to a later task.
    """

    library: str
    symptom: str
    ref: str
    confidence: float
    resolution: Resolution | None = None
    seen: float | None = None
    context: str = ""
