"""The tail of a run's log, read through the daemon's API (which serves it in chunks from an
offset): the log's size is found with a few probes, then only the tail is fetched. The
daemon's side of ``?tail=`` (one read that starts at a line near the end) is here too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from labmind.trainers.run_dir import OUTPUT_LOG

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
        cut = _line_cut(text)
        start += len(text[:cut].encode("utf-8", "replace"))
        text = text[cut:]
    return LogTail(text=text, start=start, end=offset, finished=finished)


def _line_cut(text: str) -> int:
    """Where the first whole line of ``text`` starts (0 when it has a single line)."""
    newline = text.find("\n")
    return newline + 1 if 0 <= newline < len(text) - 1 else 0


def log_file_size(run_dir: str | None) -> int:
    """The size of the latest attempt's log in ``run_dir`` (0 when there is none yet)."""
    if run_dir is None:
        return 0
    try:
        return (Path(run_dir) / OUTPUT_LOG).stat().st_size
    except OSError:
        return 0


def tail_start(size: int, tail: int) -> int:
    """Where reading starts for the last ``tail`` bytes of a log of ``size`` bytes."""
    return max(0, size - max(0, tail))


def from_line_start(chunk: LogChunk, start: int) -> LogChunk:
    """A chunk read from ``start``, without the partial line it began with (if ``start`` is
    past the beginning); its ``offset`` (where to read on from) is unchanged."""
    if start == 0:
        return chunk
    return chunk.model_copy(update={"text": chunk.text[_line_cut(chunk.text) :]})
