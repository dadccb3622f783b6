"""Fusing BM25 and vector scores into one ranking.

Rank fusion (RRF) throws the scores away: a BM25 hit that matched one common word ranks
as high as one that matched every rare word of the query, and it drags hybrid search
below vector search on natural-language queries. Here both signals are kept as scores:

* every candidate (the union of both top-k lists) gets both scores: its cosine with the
  query is computed exactly even when it came only from BM25, and BM25 is 0 for a
  candidate that did not match a single query term;
* each signal is put on a 0..1 scale relative to the best candidate of this query
  (cosine against a floor taken from the candidates' own distribution), so a weak
  lexical match stays weak;
* the lexical weight depends on the query: identifiers, dotted names and calls make
  BM25 trustworthy; plain English makes vectors the better judge.

The weights were chosen on CoSQA (plain-English queries) and the stdlib benchmark
(English and identifier-mixed queries) together, so that the fused ranking is above
the better half on each kind (docs/benchmarks.md). Weighting the lexical side further
by how far its top hit stands out from the next ones was measured too and dropped: it
lost on both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

_CODE_TOKEN = re.compile(
    r"[A-Za-z]+_[A-Za-z0-9_]+|[a-z]+[A-Z][A-Za-z0-9]*|[A-Z]{2,}[a-z]+\w*|\w+\.\w+|\w+\(|::"
)
_WORD = re.compile(r"[A-Za-z0-9_]+")


FLOOR_POOL = 100
"""The cosine floor is a quantile of this many best cosines, so a query ranks the same
whether 100 or 1,000 candidates were gathered."""


@dataclass(frozen=True, slots=True)
class Signals:
    """What each half says about one candidate: BM25 score and cosine, if known."""

    bm25: float | None
    cosine: float | None


@dataclass(frozen=True, slots=True)
class FusionWeights:
    """Tunable constants; the defaults are the ones measured in docs/benchmarks.md."""

    nl_lexical: float = 0.3
    code_lexical: float = 0.85
    cosine_floor_quantile: float = 0.5


def code_likeness(query: str) -> float:
    """0 for plain English, 1 for a query made of identifiers."""
    words = _WORD.findall(query)
    if not words:
        return 0.0
    if len(words) == 1:
        return 1.0
    code = len(_CODE_TOKEN.findall(query))
    return min(1.0, code / len(words) * 2.0)


def lexical_weight(query: str, bm25_scores: list[float], weights: FusionWeights) -> float:
    """The share of BM25 in the fused score for this query."""
    if not bm25_scores:
        return 0.0
    like = code_likeness(query)
    return weights.nl_lexical + (weights.code_lexical - weights.nl_lexical) * like


def fuse(
    query: str,
    candidates: Mapping[int, Signals],
    weights: FusionWeights | None = None,
) -> dict[int, float]:
    """Fused score per candidate id, higher is better."""
    w = weights or FusionWeights()
    bm25 = [s.bm25 for s in candidates.values() if s.bm25 is not None and s.bm25 > 0]
    cosines = sorted(s.cosine for s in candidates.values() if s.cosine is not None)
    w_lex = lexical_weight(query, bm25, w)
    if not cosines:
        w_lex = 1.0
    b_max = max(bm25) if bm25 else 1.0
    c_top = cosines[-1] if cosines else 1.0
    pool = cosines[-FLOOR_POOL:]
    c_floor = _quantile(pool, w.cosine_floor_quantile) if pool else 0.0
    span = max(c_top - c_floor, 1e-6)
    fused: dict[int, float] = {}
    for cid, sig in candidates.items():
        lex = (sig.bm25 or 0.0) / b_max if b_max > 0 else 0.0
        sem = max(0.0, (sig.cosine - c_floor) / span) if sig.cosine is not None else 0.0
        fused[cid] = w_lex * lex + (1.0 - w_lex) * sem
    return fused


def rrf(rankings: list[list[K]], k: float = 60.0) -> dict[K, float]:
    """Plain reciprocal rank fusion, kept as the baseline the benchmarks compare with."""
    out: dict[K, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking):
            out[cid] = out.get(cid, 0.0) + 1.0 / (k + rank + 1)
    return out


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
