"""The tracker's surface: ids through a DataLoader, clear errors, no host synchronisation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset

from labmind.trainers.track import IndexedDataset, SampleTracker


def test_indexed_dataset_carries_ids_through_a_shuffling_dataloader() -> None:
    x = torch.arange(20, dtype=torch.float32).unsqueeze(1) * 10
    y = torch.arange(20) % 3
    loader = DataLoader(IndexedDataset(TensorDataset(x, y)), batch_size=6, shuffle=True)
    seen = []
    for xb, yb, ids in loader:
        assert torch.equal(xb[:, 0], ids.float() * 10)
        assert torch.equal(yb, ids % 3)
        seen += ids.tolist()
    assert sorted(seen) == list(range(20))


def test_indexed_dataset_wraps_plain_items_and_mappings() -> None:
    class Plain:
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> Any:
            return {"text": f"t{i}"} if i == 2 else i * 2

    wrapped = IndexedDataset(Plain())
    assert wrapped[1] == (2, 1)
    assert wrapped[2] == {"text": "t2", "index": 2}
    assert len(wrapped) == 3


def test_wrong_shapes_are_refused_with_a_clear_message() -> None:
    tracker = SampleTracker(10)
    ids = torch.arange(4)
    with pytest.raises(ValueError, match="reduction='none'"):
        tracker.update(ids, torch.tensor(1.0))
    with pytest.raises(ValueError, match="ids has shape"):
        tracker.update(torch.arange(3), torch.ones(4))
    with pytest.raises(ValueError, match="logits has shape"):
        tracker.update(
            ids, torch.ones(4), logits=torch.ones(3, 2), labels=torch.zeros(4, dtype=torch.long)
        )
    with pytest.raises(TypeError, match="integers"):
        tracker.update(ids.float(), torch.ones(4))


def test_ids_out_of_range_are_reported_at_the_next_read() -> None:
    tracker = SampleTracker(10)
    tracker.update(torch.tensor([1, 2, 10]), torch.ones(3))
    with pytest.raises(IndexError, match=r"outside \[0, 10\)"):
        tracker.flagged()


def test_binary_logits_and_python_lists_are_accepted() -> None:
    tracker = SampleTracker(4)
    for _ in range(3):
        logit = torch.tensor([2.0, -2.0, 2.0, 3.0])
        labels = [1, 0, 0, 1]
        losses = functional.binary_cross_entropy_with_logits(
            logit, torch.tensor(labels, dtype=torch.float32), reduction="none"
        )
        tracker.update([0, 1, 2, 3], losses, logits=logit, labels=labels)
    margin = tracker.signals()["margin"]
    assert margin[2] < 0 < margin[0]


@pytest.fixture
def no_host_copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every way of reading a tensor's values on the host raises."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("update() read a tensor's value on the host")

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    yield


def _steps(tracker: SampleTracker, device: str, steps: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    model.to(device)
    tracker.watch(model[1])
    gen = torch.Generator().manual_seed(0)
    for step in range(steps):
        ids = torch.randperm(40, generator=gen)[:8].to(device)
        x = torch.randn(8, 8, generator=gen).to(device)
        y = (torch.arange(8) % 3).to(device)
        logits = model(x)
        losses = functional.cross_entropy(logits, y, reduction="none")
        if step == 25:
            losses = losses * float("nan")
        tracker.update(ids, losses, logits=logits, labels=y)


def test_update_reads_no_value_on_the_host(no_host_copies: None) -> None:
    # A log of 64 visits is folded inside update() every 8 steps.
    tracker = SampleTracker(40, log_entries=64)
    _steps(tracker, "cpu", 60)
    assert tracker.step == 60


def test_update_runs_on_tensors_without_data() -> None:
    # Meta tensors have shapes but no values: any operation that needs a value fails.
    tracker = SampleTracker(40, log_entries=64)
    _steps(tracker, "meta", 36)  # four folds: spike checks armed from the third
    assert tracker.step == 36


def test_results_after_the_hooks_are_removed() -> None:
    tracker = SampleTracker(40)
    _steps(tracker, "cpu", 20)
    tracker.unwatch()
    scores = tracker.scores()
    assert scores.shape == (40,)
    assert np.isfinite(scores).all()
    assert "0:ReLU:rms" in tracker.signals()


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import labmind.trainers.track\n"
        "from labmind.trainers.track import log\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_segmented_scan_matches_a_plain_loop() -> None:
    from labmind.trainers.track.samples import _segmented_scan

    gen = torch.Generator().manual_seed(3)
    runs = [1, 5, 2, 1, 17, 3, 40, 1]
    rank = torch.cat([torch.arange(n) for n in runs])
    a = torch.where(torch.rand(len(rank), generator=gen) < 0.8, 0.5, 1.0)
    b = torch.rand(len(rank), generator=gen)
    x0 = torch.rand(len(runs), generator=gen)
    gain, offset = _segmented_scan(a, b, rank)
    at = 0
    for run, start in zip(runs, x0.tolist(), strict=True):
        x = start
        for i in range(at, at + run):
            x = float(a[i]) * x + float(b[i])
            assert float(gain[i]) * start + float(offset[i]) == pytest.approx(x, rel=1e-5)
        at += run
