"""Small classification problems with planted label flips, for the integration tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from labmind.trainers.track import SampleTracker


@dataclass(frozen=True)
class Planted:
    """Separable Gaussian blobs whose labels were flipped at ``flipped``."""

    x: Tensor
    labels: Tensor
    flipped: np.ndarray
    classes: int


def blobs(n: int = 240, classes: int = 3, dim: int = 8, flips: int = 12, seed: int = 0) -> Planted:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(classes, dim))
    truth = rng.integers(0, classes, size=n)
    x = centres[truth] + rng.normal(0.0, 1.0, size=(n, dim))
    labels = truth.copy()
    flipped = np.zeros(n, dtype=bool)
    chosen = rng.choice(n, size=flips, replace=False)
    labels[chosen] = (truth[chosen] + rng.integers(1, classes, size=flips)) % classes
    flipped[chosen] = True
    return Planted(
        x=torch.tensor(x, dtype=torch.float32),
        labels=torch.tensor(labels, dtype=torch.long),
        flipped=flipped,
        classes=classes,
    )


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` separating ``positive`` from the rest."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    pos = int(positive.sum())
    neg = len(scores) - pos
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def precision_at_k(scores: np.ndarray, positive: np.ndarray) -> float:
    """The share of planted samples among the ``k`` highest scores, ``k`` = how many there are."""
    k = int(positive.sum())
    return float(positive[np.argsort(-scores, kind="stable")[:k]].mean())


class RecordingTracker(SampleTracker):
    """A real tracker that also remembers which ids it was given."""

    def __init__(self, num_samples: int, *, run_dir: Path | None = None) -> None:
        super().__init__(num_samples, run_dir=run_dir)
        self.seen: set[int] = set()
        self.updates = 0

    def update(
        self,
        ids: Tensor | Sequence[int],
        losses: Tensor,
        logits: Tensor | None = None,
        labels: Tensor | Sequence[int] | None = None,
    ) -> None:
        self.seen.update(int(i) for i in torch.as_tensor(ids).tolist())
        self.updates += 1
        super().update(ids, losses, logits=logits, labels=labels)
