"""A run log's size and tail, found through chunked reads from an offset (as the API serves)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labmind.daemon.protocol import LogChunk
from labmind.daemon.run_log_tail import (
    from_line_start,
    log_file_size,
    log_size,
    read_tail,
    tail_start,
)


class ChunkedLog:
    """Serves a log like the daemon does: at most `chunk` bytes from `offset` on."""

    def __init__(self, data: bytes, chunk: int, finished: bool = True) -> None:
        self.data = data
        self.chunk = chunk
        self.finished = finished
        self.reads = 0

    def exp_log(self, run_id: str, offset: int = 0) -> LogChunk:
        assert run_id == "r1"
        self.reads += 1
        part = self.data[offset : offset + self.chunk]
        return LogChunk(
            text=part.decode("utf-8", "replace"),
            offset=offset + len(part),
            finished=self.finished and offset + len(part) >= len(self.data),
        )


@given(size=st.integers(0, 5000), chunk=st.integers(1, 700))
def test_the_size_is_exact_for_any_size_and_chunk(size: int, chunk: int) -> None:
    log = ChunkedLog(b"a" * size, chunk)
    assert log_size(log, "r1")[0] == size


@pytest.mark.parametrize("size", [65_536 * 4, 65_536 * 4 + 1, 10_000_000])
def test_a_large_log_takes_few_reads(size: int) -> None:
    log = ChunkedLog(b"z" * size, 65_536)
    assert log_size(log, "r1") == (size, True)
    assert log.reads <= 2 * size.bit_length()


def test_the_tail_starts_at_a_line_and_carries_offsets() -> None:
    lines = [f"line {i}\n".encode() for i in range(1000)]
    data = b"".join(lines)
    log = ChunkedLog(data, 100)

    tail = read_tail(log, "r1", 30)

    assert tail.text == "line 997\nline 998\nline 999\n"
    assert tail.end == len(data)
    assert data[tail.start :].decode() == tail.text
    assert tail.finished


def test_a_short_log_comes_whole_and_an_empty_one_empty() -> None:
    assert read_tail(ChunkedLog(b"one\ntwo", 4), "r1", 100).text == "one\ntwo"
    empty = read_tail(ChunkedLog(b"", 4, finished=False), "r1", 100)
    assert (empty.text, empty.start, empty.end, empty.finished) == ("", 0, 0, False)


def test_a_tail_read_starts_at_a_line_and_keeps_the_offset(tmp_path: Path) -> None:
    (tmp_path / "output.log").write_bytes(b"first line\nsecond line\n")
    size = log_file_size(str(tmp_path))
    assert size == 23 and log_file_size(None) == 0 and log_file_size(str(tmp_path / "x")) == 0
    start = tail_start(size, 15)
    assert start == 8 and tail_start(size, 100) == 0
    chunk = LogChunk(text="ne\nsecond line\n", offset=size, finished=False)
    assert from_line_start(chunk, start) == LogChunk(
        text="second line\n", offset=size, finished=False
    )
    whole = LogChunk(text="first line\n", offset=11, finished=True)
    assert from_line_start(whole, 0) == whole
    assert from_line_start(LogChunk(text="partial\n", offset=9, finished=True), 1).text == (
        "partial\n"
    )
