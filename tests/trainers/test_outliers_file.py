"""Following a tracker's outliers.jsonl and spikes.jsonl while they are being written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from labmind.trainers.outliers_file import (
    OutlierRecord,
    SpikeRecord,
    read_outliers,
    read_spikes,
)
from labmind.trainers.run_dir import read_json_lines, read_metrics


def outlier(sample: int, score: float | str = 3.0, **extra: Any) -> dict[str, Any]:
    return {
        "time": 1718000000.5,
        "step": 10,
        "epoch": 1,
        "sample": sample,
        "score": score,
        "reasons": ["label_error"],
        "label": 3,
        "predicted": 8,
        "detail": {"loss_ema": 2.5},
        **extra,
    }


def line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()


def test_complete_lines_are_read_and_a_truncated_last_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "outliers.jsonl"
    whole = line(outlier(5))
    partial = line(outlier(6))
    path.write_bytes(whole + partial[:20])

    records, offset = read_outliers(path)
    assert records == [
        OutlierRecord(
            time=1718000000.5,
            step=10,
            epoch=1,
            sample=5,
            score=3.0,
            reasons=("label_error",),
            label=3,
            predicted=8,
            detail={"loss_ema": 2.5},
        )
    ]
    assert offset == len(whole)

    with path.open("ab") as handle:
        handle.write(partial[20:])
    records, offset = read_outliers(path, offset)
    assert [r.sample for r in records] == [6]
    assert offset == len(whole) + len(partial)
    assert read_outliers(path, offset) == ([], offset)


def test_garbage_and_lines_off_the_format_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "outliers.jsonl"
    path.write_bytes(
        b"not json at all\n"
        b"[1, 2, 3]\n"
        b"\xff\xfe binary\n"
        b"\n"
        + line(outlier(-1))
        + line(outlier(1, reasons="label_error"))
        + line({**outlier(2), "sample": True})
        + line(outlier(3, score="high"))
        + line(outlier(4, label=1.5))
        + line({k: v for k, v in outlier(5).items() if k != "step"})
        + b'{"deep": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}\n"
        + line(outlier(7, epoch=None, label=None, predicted=None, detail={"x": "?", "y": 1}))
    )

    records, offset = read_outliers(path)

    assert [r.sample for r in records] == [7]
    assert (records[0].epoch, records[0].label, records[0].detail) == (None, None, {"y": 1.0})
    assert offset == path.stat().st_size


def test_non_finite_numbers_come_back_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "outliers.jsonl"
    path.write_bytes(
        b'{"time": 1, "step": 1, "epoch": null, "sample": 0, "score": NaN, "reasons": []}\n'
        + line(outlier(1, score="inf", detail={"loss": "nan"}))
    )

    records, _ = read_outliers(path)

    assert math.isnan(records[0].score)
    assert records[1].score == math.inf and math.isnan(records[1].detail["loss"])


def test_reading_from_an_offset_in_bounded_chunks_covers_a_big_file(tmp_path: Path) -> None:
    path = tmp_path / "outliers.jsonl"
    path.write_bytes(b"".join(line(outlier(i, score=float(i))) for i in range(5000)))

    seen: list[int] = []
    offset, calls = 0, 0
    while True:
        records, after = read_outliers(path, offset, max_bytes=16_384)
        calls += 1
        seen += [r.sample for r in records]
        if after == offset:
            break
        assert after - offset <= 16_384
        offset = after

    assert seen == list(range(5000))
    assert calls > 10


def test_a_line_longer_than_a_read_is_skipped_not_stuck(tmp_path: Path) -> None:
    path = tmp_path / "outliers.jsonl"
    path.write_bytes(line(outlier(1, detail={f"k{i}": i for i in range(2000)})) + line(outlier(2)))

    seen: list[int] = []
    offset = 0
    for _ in range(100):
        records, after = read_outliers(path, offset, max_bytes=4096)
        seen += [r.sample for r in records]
        if after == offset:
            break
        offset = after

    assert seen == [2]
    assert offset == path.stat().st_size


def test_a_file_shorter_than_the_offset_was_replaced_and_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "outliers.jsonl"
    path.write_bytes(line(outlier(1)) * 3)
    _, offset = read_outliers(path)
    path.write_bytes(line(outlier(9)))

    records, after = read_outliers(path, offset)

    assert [r.sample for r in records] == [9]
    assert after == path.stat().st_size


def test_a_missing_file_reads_as_nothing_new(tmp_path: Path) -> None:
    assert read_outliers(tmp_path / "outliers.jsonl", 17) == ([], 17)
    assert read_spikes(tmp_path / "spikes.jsonl") == ([], 0)


def test_spikes_are_read_with_the_samples_behind_them(tmp_path: Path) -> None:
    path = tmp_path / "spikes.jsonl"
    spike = {"time": 2.0, "step": 421, "loss": 9.5, "baseline": 0.4, "z": 11.2, "samples": [17]}
    path.write_bytes(
        line(spike)
        + line({**spike, "samples": [-1]})
        + line({**spike, "z": None})
        + line({**spike, "step": 422, "loss": "nan"})
        + b'{"time": 3.0, "step": 423'
    )

    records, offset = read_spikes(path)

    assert records[0] == SpikeRecord(
        time=2.0, step=421, loss=9.5, baseline=0.4, z=11.2, samples=(17,)
    )
    assert records[1].step == 422 and math.isnan(records[1].loss)
    assert len(records) == 2
    assert offset == path.read_bytes().rfind(b"\n") + 1


def test_metrics_and_outliers_share_one_line_reader(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "loss": "nan"}\n["x"]\n{"loss": 1}\n{"step": 2, "loss": 0.5}\n')

    objects, offset = read_json_lines(path)
    metrics, same = read_metrics(path)

    assert objects == [{"step": 1, "loss": "nan"}, {"loss": 1}, {"step": 2, "loss": 0.5}]
    assert [m["step"] for m in metrics] == [1, 2] and math.isnan(metrics[0]["loss"])
    assert offset == same == path.stat().st_size
