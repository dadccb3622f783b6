"""Findings appended to the run folder: whole JSON lines, only what is new."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from labmind.trainers.track import SampleTracker
from labmind.trainers.track.reporting import RUN_DIR_ENV

OUTLIER_KEYS = {
    "time",
    "step",
    "epoch",
    "sample",
    "score",
    "reasons",
    "label",
    "predicted",
    "detail",
}
SPIKE_KEYS = {"time", "step", "loss", "baseline", "z", "samples"}


def lines(path: Path) -> list[dict[str, object]]:
    def refuse(name: str) -> object:
        raise ValueError(f"non-standard JSON constant {name}")

    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def feed(
    tracker: SampleTracker, steps: range, wrong: set[int], spike_at: int | None = None
) -> None:
    """Ten samples, two per step; samples in ``wrong`` are confidently misclassified."""
    for step in steps:
        ids = torch.tensor([(2 * step) % 10, (2 * step + 1) % 10])
        labels = torch.zeros(2, dtype=torch.long)
        logits = torch.tensor([[4.0, 0.0], [4.0, 0.0]])
        for row, i in enumerate(ids.tolist()):
            if i in wrong:
                logits[row] = torch.tensor([0.0, 4.0])
        losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
        losses = losses + 0.001 * (step % 3)
        if step == spike_at:
            losses = losses + 50.0
        tracker.update(ids, losses, logits=logits, labels=labels)


def test_report_appends_new_flags_once_and_again_when_reasons_change(tmp_path: Path) -> None:
    tracker = SampleTracker(10, run_dir=tmp_path, report_every_steps=10**6)
    feed(tracker, range(40), wrong={3})
    assert tracker.report() == 1
    assert tracker.report() == 0
    (first,) = lines(tmp_path / "outliers.jsonl")
    assert set(first) == OUTLIER_KEYS
    assert first["sample"] == 3
    assert first["reasons"] == ["label_error"]
    assert (first["label"], first["predicted"], first["step"]) == (0, 1, 40)
    assert isinstance(first["detail"], dict) and "margin" in first["detail"]

    feed(tracker, range(40, 60), wrong={3}, spike_at=41)  # step 41 updates samples 2 and 3
    tracker.report()
    outliers = lines(tmp_path / "outliers.jsonl")
    assert [(o["sample"], o["reasons"]) for o in outliers[1:]] == [
        (3, ["label_error", "spike"]),
        (2, ["spike"]),
    ]
    (spike,) = lines(tmp_path / "spikes.jsonl")
    assert set(spike) == SPIKE_KEYS
    assert spike["step"] == 41
    assert spike["samples"] == [3, 2]  # largest rise first
    assert tracker.report() == 0


def test_findings_flush_on_their_own_under_labmind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    tracker = SampleTracker(10, report_every_steps=25, report_every_seconds=3600)
    feed(tracker, range(24), wrong={5})
    assert not (tmp_path / "outliers.jsonl").exists()
    feed(tracker, range(24, 25), wrong={5})
    assert [o["sample"] for o in lines(tmp_path / "outliers.jsonl")] == [5]


def test_end_epoch_reports_and_counts_epochs(tmp_path: Path) -> None:
    tracker = SampleTracker(10, run_dir=tmp_path, report_every_steps=10**6)
    feed(tracker, range(20), wrong={7})
    tracker.end_epoch()
    tracker.end_epoch()
    (line,) = lines(tmp_path / "outliers.jsonl")
    assert (line["sample"], line["epoch"]) == (7, 1)
    assert tracker.epoch == 2


def test_nothing_is_written_outside_labmind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    tracker = SampleTracker(10, report_every_steps=5)
    feed(tracker, range(30), wrong={1})
    assert tracker.report() == 0
    assert list(tmp_path.iterdir()) == []
    assert [f.sample for f in tracker.flagged()] == [1]
