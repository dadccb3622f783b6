"""The per-visit logit signals and the step log, checked against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional

from labmind.trainers.track import SampleTracker
from labmind.trainers.track.logit_signals import ClassConfidence, logit_signals


def test_logit_signals_match_a_direct_computation() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(40, 6, generator=gen) * 3
    logits[3] = torch.tensor([1.0, 4.0, 4.0, 0.0, -1.0, 2.0])  # a tie for the top: class 1
    logits[7, 2] = float("nan")
    label = torch.randint(0, 5, (40,), generator=gen)  # class 5 is never a label

    signals = logit_signals(
        logits.T.contiguous(), label, torch.ones(40), ClassConfidence(torch.device("cpu"))
    )

    x, y = logits.numpy().astype(np.float64), label.numpy()
    log_p = x - np.log(np.exp(x).sum(1, keepdims=True))
    p_own = np.exp(log_p[np.arange(40), y])
    usual = np.zeros(6)
    for c in range(5):
        mine = (y == c) & np.isfinite(p_own)
        usual[c] = np.log(max(p_own[mine].mean(), 1e-6)) if mine.any() else 0.0
    for i in range(40):
        if i == 7:
            continue  # NaN logit: any finite value will do
        others = [c for c in range(6) if c != y[i]]
        best = max(x[i, c] for c in others)
        assert signals.margin[i].item() == pytest.approx(x[i, y[i]] - best, abs=1e-4)
        assert signals.predicted[i].item() == int(np.argmax(x[i]))
        assert signals.norm[i].item() == pytest.approx(np.linalg.norm(x[i]), rel=1e-5)
        expected = max(log_p[i, c] - usual[c] for c in others) - (log_p[i, y[i]] - usual[y[i]])
        assert signals.preference[i].item() == pytest.approx(expected, abs=1e-3)
    assert signals.predicted[3].item() == 1
    assert all(torch.isfinite(v[7]) for v in (signals.margin, signals.norm, signals.preference))


def test_steps_with_other_class_counts_and_oversized_batches_fold_cleanly() -> None:
    tracker = SampleTracker(300, log_entries=64)
    gen = torch.Generator().manual_seed(0)
    for step in range(12):
        batch = 200 if step == 5 else 16  # larger than the log
        classes = 4 if step < 8 else 7  # the head grew
        ids = torch.randperm(300, generator=gen)[:batch]
        labels = torch.randint(0, 4, (batch,), generator=gen)
        logits = torch.randn(batch, classes, generator=gen)
        losses = functional.cross_entropy(logits, labels, reduction="none")
        tracker.update(ids, losses, logits=logits if step != 3 else None, labels=labels)

    signals = tracker.signals()
    seen = ~np.isnan(signals["loss"])
    assert seen.sum() > 200
    assert np.isfinite(signals["margin"][seen & ~np.isnan(signals["margin"])]).all()
    assert np.isfinite(tracker.scores()).all()
