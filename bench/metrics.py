"""Retrieval metrics over ranked lists of paths."""

from __future__ import annotations

from collections.abc import Sequence


def first_relevant_rank(ranked: Sequence[str], relevant: set[str]) -> int | None:
    """1-based rank of the first relevant path (duplicates of a path count once)."""
    seen: list[str] = []
    for path in ranked:
        if path in seen:
            continue
        seen.append(path)
        if path in relevant:
            return len(seen)
    return None


def summarize(ranks: Sequence[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "mrr@10": sum(1.0 / r for r in ranks if r is not None and r <= 10) / n,
        "recall@1": sum(1 for r in ranks if r == 1) / n,
        "recall@10": sum(1 for r in ranks if r is not None and r <= 10) / n,
    }
