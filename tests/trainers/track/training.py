"""Small real training runs on scikit-learn's digits for the tracker tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional

from labmind.trainers.track import SampleTracker

Injector = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
"""Called before each step with (step, ids, inputs, labels); may edit inputs and labels."""


@dataclass
class Digits:
    x: np.ndarray
    y: np.ndarray

    @property
    def classes(self) -> int:
        return int(self.y.max()) + 1


def digits(n: int = 600, seed: int = 0) -> Digits:
    x, y = load_digits(return_X_y=True)
    picked = np.random.default_rng(seed).permutation(len(y))[:n]
    x = x[picked]
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return Digits(x=x.astype(np.float32), y=y[picked].astype(np.int64))


def flip_labels(
    y: np.ndarray, share: float, classes: int, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Labels with ``share`` of them moved to another class, and the moved indices."""
    rng = np.random.default_rng(seed)
    moved = rng.choice(len(y), int(share * len(y)), replace=False)
    noisy = y.copy()
    noisy[moved] = (y[moved] + rng.integers(1, classes, len(moved))) % classes
    return noisy, np.sort(moved)


def mlp(features: int, classes: int, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, classes))


def train(
    data: Digits,
    tracker: SampleTracker,
    *,
    epochs: int = 10,
    batch: int = 50,
    model: nn.Sequential | None = None,
    inject: Injector | None = None,
    seed: int = 0,
) -> nn.Sequential:
    """Adam on mini-batches; every step goes through ``tracker.update``."""
    model = model or mlp(data.x.shape[1], data.classes, seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x_all, y_all = torch.from_numpy(data.x), torch.from_numpy(data.y)
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(data.y), generator=gen)
        for start in range(0, len(order), batch):
            ids = order[start : start + batch]
            x, y = x_all[ids].clone(), y_all[ids].clone()
            if inject is not None:
                inject(step, ids, x, y)
            logits = model(x)
            losses = functional.cross_entropy(logits, y, reduction="none")
            opt.zero_grad()
            torch.autograd.backward(losses.mean())
            opt.step()
            tracker.update(ids, losses, logits=logits, labels=y)
            step += 1
    return model


def auroc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the samples marked in ``positive``."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, scores))
