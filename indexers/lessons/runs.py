"""Lessons from failed experiment runs: a missing module, a failed import, a library that
would not load, read from the failure's summary and the tail of the attempt's log."""

from __future__ import annotations

from .model import Episode
from .signatures import failures_in

_LIBRARY_FAILURES = ("missing_module", "import_error", "unknown", "cuda_error")
"""Failure classes whose log may show a library failing to load; out-of-memory, NaN
losses, timeouts and kills never name a library."""


def mine_run(
    run_id: str,
    *,
    failure: str | None,
    summary: str | None,
    log_tail: str,
    command: str = "",
    seen: float | None = None,
) -> list[Episode]:
    """The libraries a failed attempt shows failing (none for other kinds of failure)."""
    if failure not in _LIBRARY_FAILURES:
        return []
    found = failures_in(f"{log_tail}\n{summary or ''}", set())
    return [
        Episode(
            library=f.library,
            symptom=f.symptom,
            ref=f"run:{run_id}",
            confidence=round(f.strength + 0.1, 3),
            seen=seen,
            context=command[:400],
        )
        for f in found
    ]
