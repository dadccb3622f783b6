"""Lessons from episodes: one lesson per library, backed by every episode that names it."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .model import Episode, Resolution

_KIND_RANK = {"replacement": 4, "pin": 3, "workaround": 2, "upgrade": 1, "install": 0}


@dataclass(frozen=True, slots=True)
class Lesson:
    """What the episodes about one library add up to."""

    id: str
    library: str
    symptom: str
    resolution: str | None
    replacement: str | None
    evidence: tuple[str, ...]
    first_seen: float | None
    last_seen: float | None
    count: int
    confidence: float
    context: str


def lesson_id(library: str) -> str:
    """A short id that stays the same for a library however often it is mined."""
    return hashlib.sha1(f"lesson:{library}".encode(), usedforsecurity=False).hexdigest()[:8]


def aggregate(library: str, episodes: Sequence[Episode]) -> Lesson:
    """The lesson about ``library`` from its episodes (at least one)."""
    if not episodes:
        raise ValueError(f"no episodes about {library}")
    ordered = sorted(episodes, key=lambda e: (e.seen or 0.0, e.ref))
    symptoms = Counter(e.symptom for e in ordered)
    top = max(symptoms.values())
    symptom = next(e.symptom for e in reversed(ordered) if symptoms[e.symptom] == top)
    best = _resolution([e.resolution for e in ordered if e.resolution is not None])
    miss = 1.0
    for e in ordered:
        miss *= 1.0 - e.confidence
    seen = [e.seen for e in ordered if e.seen is not None]
    contexts = " ".join(dict.fromkeys(e.context for e in reversed(ordered) if e.context))
    return Lesson(
        id=lesson_id(library),
        library=library,
        symptom=symptom,
        resolution=None if best is None else best.text,
        replacement=None if best is None or best.kind != "replacement" else best.library,
        evidence=tuple(e.ref for e in ordered),
        first_seen=min(seen) if seen else None,
        last_seen=max(seen) if seen else None,
        count=len(ordered),
        confidence=round(1.0 - miss, 3),
        context=contexts[:2000],
    )


def _resolution(found: Sequence[Resolution]) -> Resolution | None:
    """The resolution most episodes agree on; confirmed ones count double, a replacement
    beats a pin beats a workaround, and the latest breaks a tie."""
    if not found:
        return None
    votes: Counter[str] = Counter()
    for r in found:
        votes[r.text] += 2 if r.confirmed else 1
    latest = {r.text: i for i, r in enumerate(found)}
    by_text = {r.text: r for r in found}
    text = max(votes, key=lambda t: (votes[t], _KIND_RANK[by_text[t].kind], latest[t]))
    return by_text[text]
