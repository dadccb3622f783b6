"""The tail of a run's log, read through the daemon's API (which serves it in chunks from an
offset): the log's size is found with a few probes, then only the tail is fetched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .protocol import LogChunk


class LogSource(Protocol):
    def exp_log(self, run_id: str, offset: int = 0) -> LogChunk: ...


@dataclass(frozen=True)
class LogTail:
    text: str
    start: int
    end: int
    finished: bool


def log_size(source: LogSource, run_id: str) -> tuple[int, bool]:
    """The log's size in bytes, and whether the run has finished (from the last probe).

    A read at ``offset`` returns bytes iff ``offset`` lies before the end, so the end is found
    by doubling the step past the last byte seen, then bisecting.
    """
    first = source.exp_log(run_id, 0)
    low = first.offset
    """Every byte before `low` exists."""
    if low == 0:
        return 0, first.finished
    finished = first.finished
    step = low
    high: int | None = None
    """The log ends at or before `high`."""
    while high is None or low < high:
        probe = low + step if high is None else (low + high) // 2
        chunk = source.exp_log(run_id, probe)
        finished = chunk.finished
        if chunk.offset > probe:
            low = chunk.offset
            step *= 2
        elif probe == low:
            return low, finished
        else:
            high = probe
    return low, finished


def read_tail(source: LogSource, run_id: str, max_bytes: int) -> LogTail:
    """The last ``max_bytes`` of the log, from a line start where the cut falls mid-line."""
    size, finished = log_size(source, run_id)
    start = max(0, size - max_bytes)
    parts: list[str] = []
    offset = start
    while offset < size:
        chunk = source.exp_log(run_id, offset)
        finished = chunk.finished
        if chunk.offset <= offset:
            break
        parts.append(chunk.text)
        offset = chunk.offset
    text = "".join(parts)
    if start > 0:
        newline = text.find("\n")
        if 0 <= newline < len(text) - 1:
            start += len(text[: newline + 1].encode("utf-8", "replace"))
            text = text[newline + 1 :]
    return LogTail(text=text, start=start, end=offset, finished=finished)
