"""Provenance scores: how much of a chat code block a piece of code holds, or the reverse.

Both sides are sets of winnowed fingerprints (:mod:`labmind.indexers.fingerprint`).
Copies are rarely whole: a file keeps half of a block, a chunk holds one function out of
a longer answer, or one function merges two answers. So the score is containment over
the smaller side, ``shared / min(|code|, |block|)``, which is 1 when either holds all of
the other, however much else the larger side has. A few fingerprints are a weak sign
(two unrelated snippets easily share ``return os.path.join(V, S)``), so the denominator
is never below :data:`SMALL_SIDE` and a link needs :data:`MIN_SHARED` fingerprints.

Everything here is pure; the daemon keeps fingerprints in SQLite (hash -> block id) and
passes the blocks that share any hash with a chunk as ``candidates``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Set
from dataclasses import dataclass

DEFAULT_THRESHOLD = 0.5
"""Score from which a chunk is linked to a block: half of the smaller side is shared.
In ``python -m bench.provenance`` precision stays above 0.97 from 0.25 to 0.9, and
recall falls above 0.5 as partial copies and merges drop out."""

MIN_SHARED = 5
"""Fingerprints a chunk and a block must share to link at all: a lone ``import os`` has
none, a one-line function two or three. At 4 the benchmark's precision drops below 0.95
(small look-alike functions link); at 6 its recall drops below 0.90."""

SMALL_SIDE = 6
"""Smallest denominator of the score: a block or chunk with fewer fingerprints is
scored as if it had this many, so three shared hashes out of three is not certainty."""

Fingerprints = Mapping[int, int] | Collection[int]
"""A snippet's fingerprints: the hash -> line mapping of ``fingerprints()`` or just hashes."""


@dataclass(frozen=True)
class Match:
    """A chat code block that a piece of code matches, with its score and shared hashes."""

    block_id: int
    score: float
    shared: int


def _hashes(fingerprints: Fingerprints) -> Set[int]:
    if isinstance(fingerprints, Mapping):
        return fingerprints.keys()
    if isinstance(fingerprints, Set):
        return fingerprints
    return frozenset(fingerprints)


def _score(shared: int, code_size: int, block_size: int) -> float:
    if shared == 0:
        return 0.0
    return min(1.0, shared / max(min(code_size, block_size), SMALL_SIDE))


def similarity(code: Fingerprints, block: Fingerprints) -> float:
    """Containment of the smaller snippet in the larger, in [0, 1] (see the module doc)."""
    code_hashes = _hashes(code)
    block_hashes = _hashes(block)
    shared = len(code_hashes & block_hashes)
    return _score(shared, len(code_hashes), len(block_hashes))


def best_matches(
    code_fps: Fingerprints,
    candidates: Mapping[int, Fingerprints],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_shared: int = MIN_SHARED,
) -> list[Match]:
    """The candidate blocks (block id -> fingerprints) that ``code_fps`` links to, best first.

    A block links when it shares at least ``min_shared`` fingerprints and scores at
    least ``threshold``; ties are broken by more shared fingerprints, then block id.
    """
    code_hashes = _hashes(code_fps)
    matches: list[Match] = []
    for block_id, block in candidates.items():
        block_hashes = _hashes(block)
        shared = len(code_hashes & block_hashes)
        if shared < max(min_shared, 1):
            continue
        score = _score(shared, len(code_hashes), len(block_hashes))
        if score >= threshold:
            matches.append(Match(block_id, score, shared))
    matches.sort(key=lambda match: (-match.score, -match.shared, match.block_id))
    return matches
