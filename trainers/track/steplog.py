"""The log of sample visits since the last fold, in preallocated tensors on the device.

A step copies its batch into the next free columns: ids, losses, labels and, when it has
both logits and labels, the logits themselves (one column per visit, one row per class,
so that a fold reduces over classes with elementwise operations). That is two to four
copies; nothing is computed per step and nothing is read back on the host. Per-step
values (the step number, the visit weight, the batch size, whether it had logits) stay
on the host until :meth:`StepLog.take` hands everything over for a fold.

All of a log's logits have the same number of classes; the log holds at most
:data:`LOGIT_BUDGET` logit values, so many classes mean fewer visits between folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LOGIT_BUDGET = 1 << 22
"""Logit values (float32) the log may hold: 16 MB, 16,384 visits of 256 classes."""


@dataclass(frozen=True)
class LoggedSteps:
    """What a fold reads: one entry per sample visit, steps in order, each batch
    contiguous. ``labels`` is -1 where a step had no labels."""

    steps: list[int]
    """The step numbers (consecutive)."""
    widest: int
    classes: int
    """The logits' classes (0 when no step had logits)."""
    step_of: Tensor
    """Each entry's step, counted from the first of ``steps``."""
    weight: Tensor
    loss: Tensor
    ids: Tensor
    labels: Tensor
    has_logits: Tensor
    """Whether the entry's step had logits and labels."""
    logits: Tensor
    """classes × entries; meaningful only where ``has_logits``."""

    @property
    def entries(self) -> int:
        return int(self.loss.shape[0])


class _Slot:
    """Views of the log where one batch goes: made once per position, since batches of
    one size land at the same positions fold after fold."""

    def __init__(self, log: StepLog, at: int, batch: int) -> None:
        span = slice(at, at + batch)
        self.batch = batch
        self.loss = log.losses[span]
        self.ids, self.labels = (row[span] for row in log.ints.unbind(0))
        self.logits = log.logits[:, span]


class StepLog:
    """Room for ``entries`` sample visits on ``device`` (fewer with many classes)."""

    def __init__(self, device: torch.device, entries: int) -> None:
        self.device = device
        self.entries = entries
        self.classes = 0
        self._allocate(entries, 0)
        self.filled = 0
        self._steps: list[int] = []
        self._sizes: list[int] = []
        self._weights: list[float] = []
        self._with_logits: list[bool] = []

    @property
    def capacity(self) -> int:
        return int(self.losses.shape[0])

    @property
    def steps(self) -> int:
        """Steps logged since the last :meth:`take`."""
        return len(self._steps)

    def fits(self, losses: Tensor, logits: Tensor | None, labels: Tensor | None) -> bool:
        """Whether the step :meth:`write` would log goes in without a fold first."""
        if self.filled == 0:
            return True
        classes = _logit_classes(logits, labels)
        if classes and classes != self.classes:
            return False
        return self.filled + losses.shape[0] <= self.capacity

    def write(
        self,
        step: int,
        ids: Tensor,
        losses: Tensor,
        weight: float,
        logits: Tensor | None,
        labels: Tensor | None,
    ) -> None:
        """Log one batch; :meth:`fits` must have said yes."""
        batch = losses.shape[0]
        classes = _logit_classes(logits, labels)
        if self.filled == 0:
            width = classes or self.classes
            capacity = max(batch, min(self.entries, LOGIT_BUDGET // max(width, 1)))
            if width != self.classes or capacity != self.capacity:
                self._allocate(capacity, width)
        at = self.filled
        slot = self._slots.get(at)
        if slot is None or slot.batch != batch:
            slot = self._slots[at] = _Slot(self, at, batch)
        slot.loss.copy_(losses)
        slot.ids.copy_(ids)
        if labels is None:
            slot.labels.fill_(-1)
        else:
            slot.labels.copy_(labels)
        if logits is not None and classes:
            slot.logits.copy_(logits.T)
        self.filled += batch
        self._steps.append(step)
        self._sizes.append(batch)
        self._weights.append(weight)
        self._with_logits.append(classes > 0)

    def take(self) -> LoggedSteps | None:
        """Everything logged since the last call (valid until the next :meth:`write`),
        and an empty log; None when nothing was logged."""
        m = self.filled
        if m == 0:
            return None
        steps, sizes, weights = self._steps, self._sizes, self._weights
        with_logits = self._with_logits
        self.filled, self._steps, self._sizes, self._weights = 0, [], [], []
        self._with_logits = []
        step_of = torch.repeat_interleave(
            torch.arange(len(steps), device=self.device),
            self._on_device(sizes, torch.long),
            output_size=m,
        )
        if all(with_logits) or not any(with_logits):
            has_logits = torch.full((m,), with_logits[0], dtype=torch.bool, device=self.device)
        else:
            has_logits = self._on_device(with_logits, torch.bool)[step_of]
        return LoggedSteps(
            steps=steps,
            widest=max(sizes),
            classes=self.classes,
            step_of=step_of,
            weight=self._on_device(weights, torch.float32)[step_of],
            loss=self.losses[:m],
            ids=self.ints[0, :m],
            labels=self.ints[1, :m],
            has_logits=has_logits,
            logits=self.logits[:, :m],
        )

    def _on_device(
        self, values: list[int] | list[float] | list[bool], dtype: torch.dtype
    ) -> Tensor:
        """``values`` on the device without waiting for it (from pinned memory to a GPU)."""
        if self.device.type != "cuda":
            return torch.tensor(values, dtype=dtype, device=self.device)
        host = torch.tensor(values, dtype=dtype, pin_memory=True)
        return host.to(self.device, non_blocking=True)

    def _allocate(self, entries: int, classes: int) -> None:
        device = self.device
        self.classes = classes
        self.losses = torch.zeros(entries, device=device)
        self.ints = torch.zeros(2, entries, dtype=torch.long, device=device)  # ids, labels
        self.logits = torch.zeros(classes, entries, device=device)
        self._slots: dict[int, _Slot] = {}


def _logit_classes(logits: Tensor | None, labels: Tensor | None) -> int:
    """The classes of a step's logits, or 0 when it lacks logits or labels (the logit
    signals need both)."""
    return logits.shape[1] if logits is not None and labels is not None else 0
