"""Detection quality on small real training runs with planted problems."""

from __future__ import annotations

import numpy as np
import torch

from labmind.trainers.track import SampleTracker

from .training import auroc, digits, flip_labels, mlp, train


def test_flipped_labels_are_flagged_as_label_errors() -> None:
    data = digits()
    data.y, moved = flip_labels(data.y, 0.15, data.classes)
    tracker = SampleTracker(len(data.y))
    train(data, tracker)

    flagged = {f.sample for f in tracker.flagged() if "label_error" in f.reasons}
    caught = flagged & set(moved.tolist())
    assert len(caught) >= 0.8 * len(moved)
    assert len(caught) >= 0.8 * len(flagged)
    planted = np.zeros(len(data.y), dtype=bool)
    planted[moved] = True
    assert auroc(planted, tracker.scores()) > 0.97
    flag = next(f for f in tracker.flagged() if f.sample in caught)
    assert flag.label == data.y[flag.sample]
    assert flag.predicted is not None and flag.predicted != flag.label
    assert {"loss", "margin"} <= flag.detail.keys()


def test_scaled_inputs_are_caught_through_activations_where_loss_misses_them() -> None:
    data = digits()
    scaled = np.random.default_rng(2).choice(len(data.y), 30, replace=False)
    data.x[scaled] *= 4  # labels stay right: the loss of these samples is ordinary or low
    planted = np.zeros(len(data.y), dtype=bool)
    planted[scaled] = True
    model = mlp(data.x.shape[1], data.classes)
    tracker = SampleTracker(len(data.y)).watch(model[1])
    train(data, tracker, model=model)

    by_loss = tracker.signals()["weighted_loss"]
    assert auroc(planted, by_loss) < 0.7
    assert auroc(planted, tracker.scores()) > 0.97
    corrupted = {f.sample for f in tracker.flagged() if "corrupted_input" in f.reasons}
    assert len(corrupted & set(scaled.tolist())) >= 0.8 * len(scaled)
    assert len(corrupted - set(scaled.tolist())) <= 3


def test_a_planted_spike_batch_is_found_with_its_samples() -> None:
    data = digits()
    planted: dict[int, list[int]] = {}

    def inject(step: int, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        if step in (60, 100):
            y[:5] = (y[:5] + 3) % 10
            x[:5] *= 5
            planted[step] = ids[:5].tolist()

    tracker = SampleTracker(len(data.y))
    train(data, tracker, inject=inject)

    spikes = {s.step: s for s in tracker.spikes()}
    assert set(spikes) == {60, 100}
    for step, ids in planted.items():
        assert set(ids) <= set(spikes[step].samples)
        assert spikes[step].loss > spikes[step].baseline
    flagged = {f.sample for f in tracker.flagged() if "spike" in f.reasons}
    assert set(planted[60]) | set(planted[100]) <= flagged


def test_a_mild_spike_after_a_strong_one_is_found() -> None:
    data = digits()
    planted: dict[int, list[int]] = {}

    def inject(step: int, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        if step == 50:  # strong: wrong labels and inputs ×5
            y[:6] = (y[:6] + 3) % 10
            x[:6] *= 5
        if step == 110:  # mild: four wrong labels, the strong one still in the window
            y[:4] = (y[:4] + 3) % 10
            planted[step] = ids[:4].tolist()

    tracker = SampleTracker(len(data.y))
    train(data, tracker, inject=inject)

    spikes = {s.step: s for s in tracker.spikes()}
    assert set(spikes) == {50, 110}
    assert set(planted[110]) <= set(spikes[110].samples)


def test_clean_data_has_few_flags() -> None:
    data = digits()
    tracker = SampleTracker(len(data.y))
    train(data, tracker)
    assert len(tracker.flagged()) <= 0.02 * len(data.y)
    assert tracker.spikes() == []


def test_a_nan_loss_is_a_finding_not_a_crash() -> None:
    tracker = SampleTracker(10)
    for step in range(30):
        losses = torch.full((5,), 1.0 + 0.01 * (step % 3))
        if step == 25:
            losses[2] = float("nan")
        tracker.update(torch.arange(5) + 5 * (step % 2), losses)

    sample = 5 * (25 % 2) + 2
    flags = {f.sample: f for f in tracker.flagged()}
    assert "corrupted_input" in flags[sample].reasons
    assert flags[sample].detail["nonfinite_losses"] == 1.0
    assert [s.step for s in tracker.spikes()] == [25]
    assert tracker.spikes()[0].samples == (sample,)
    assert np.isfinite(tracker.scores()).all()
