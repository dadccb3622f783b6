"""A PyTorch Lightning callback that feeds a :class:`SampleTracker` (needs ``lightning``).

This module imports ``lightning``; nothing else in ``labmind.trainers.track`` imports this
module, so the tracker works without Lightning installed (the dependency rule allows the
framework only in its own integration module).

The contract with your ``LightningModule`` is two changes:

1. train on ``IndexedDataset(train_set)``, so every batch carries the samples' ids (last in
   a tuple batch, ``batch["index"]`` in a mapping batch);
2. return the per-sample losses from ``training_step`` next to the loss (the keys are the
   names of :meth:`SampleTracker.update`'s arguments; ``logits`` and ``labels`` are
   optional and enable the label-error signals)::

    def training_step(self, batch, batch_idx):
        x, y, _ids = batch
        logits = self(x)
        losses = F.cross_entropy(logits, y, reduction="none")
        return {"loss": losses.mean(), "losses": losses, "logits": logits, "labels": y}

    tracker = SampleTracker(len(train_set))
    trainer = L.Trainer(callbacks=[SampleTrackerCallback(tracker)])
    trainer.fit(model, DataLoader(IndexedDataset(train_set), batch_size=128, shuffle=True))

The callback calls ``tracker.update`` after every training batch, ``tracker.end_epoch()``
after every training epoch and ``tracker.report()`` when training ends, so under labmind the
findings reach ``outliers.jsonl`` and ``spikes.jsonl``. Under DDP each process tracks the
samples it trains on; give each its own tracker (they append to the same files).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from .datasets import INDEX_KEY
from .tracker import SampleTracker

IdsOf = Callable[[Any], Tensor]
"""Takes a training batch, gives the ids of its samples."""


def batch_ids(batch: Any, key: str = INDEX_KEY) -> Tensor:
    """The sample ids ``IndexedDataset`` put in a collated batch: its last element, or
    ``batch[key]`` for a mapping."""
    if isinstance(batch, Mapping):
        if key not in batch:
            raise KeyError(
                f"the batch has no {key!r} key; train on IndexedDataset(dataset) "
                "or give SampleTrackerCallback(ids=...)"
            )
        ids = batch[key]
    elif isinstance(batch, tuple | list) and batch:
        ids = batch[-1]
    else:
        raise TypeError(
            f"cannot find sample ids in a batch of type {type(batch).__name__}; "
            "give SampleTrackerCallback(ids=...)"
        )
    if not isinstance(ids, Tensor):
        raise TypeError(
            f"the sample ids of a batch are a {type(ids).__name__}, not a tensor; train on "
            "IndexedDataset(dataset) or give SampleTrackerCallback(ids=...)"
        )
    return ids


class SampleTrackerCallback(pl.Callback):
    """Feeds ``tracker`` from every training batch (see the module's docstring).

    ``ids``: how to find the sample ids in a batch, when it was not built by
    ``IndexedDataset``.
    """

    def __init__(self, tracker: SampleTracker, *, ids: IdsOf | None = None) -> None:
        self.tracker = tracker
        self.ids: IdsOf = ids if ids is not None else batch_ids

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if outputs is None:
            return  # training_step skipped this batch
        if not isinstance(outputs, Mapping) or "losses" not in outputs:
            got = (
                f"a dict with keys {sorted(outputs)}"
                if isinstance(outputs, Mapping)
                else f"a {type(outputs).__name__}"
            )
            raise ValueError(
                "SampleTrackerCallback needs training_step to return "
                '{"loss": ..., "losses": <per-sample losses, reduction="none">} '
                f"(optionally with logits and labels), not {got}"
            )
        self.tracker.update(
            self.ids(batch),
            outputs["losses"],
            logits=outputs.get("logits"),
            labels=outputs.get("labels"),
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.tracker.end_epoch()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.tracker.report()
