"""The log of sample visits since the last fold, in preallocated tensors on the device.

A step writes its batch into the next free columns: ids, losses, the labels (and the
labels clamped to the logits' classes), and the few logit values the signals need (the
label's logit, the two largest logits and their classes, the logits' norm). That is
seven tensor operations with logits, two or three without, and nothing is read back on
the host. Per-step values (the step number, the visit weight, the batch size) stay on
the host until :meth:`StepLog.take` hands everything over for a fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LoggedSteps:
    """What a fold reads: one entry per sample visit, steps in order, each batch
    contiguous. ``top_classes`` is -1 where a step had no logits, ``labels`` and
    ``clamped`` where it had no labels."""

    steps: list[int]
    """The step numbers (consecutive)."""
    widest: int
    step_of: Tensor
    """Each entry's step, counted from the first of ``steps``."""
    weight: Tensor
    loss: Tensor
    ids: Tensor
    labels: Tensor
    clamped: Tensor
    own: Tensor
    norm: Tensor
    top_values: Tensor
    top_classes: Tensor

    @property
    def entries(self) -> int:
        return int(self.loss.shape[0])


class _Slot:
    """Views of the log where one batch goes: made once per position, since batches of
    one size land at the same positions fold after fold."""

    def __init__(self, log: StepLog, at: int, batch: int) -> None:
        span = slice(at, at + batch)
        self.batch = batch
        self.loss, self.own, self.norm = (row[span] for row in log.floats.unbind(0))
        self.ids, self.labels, self.clamped = (row[span] for row in log.ints.unbind(0))
        self.label_rows = log.ints[1:, span]
        self.top_values, self.top_classes = log.top_values[span], log.top_classes[span]


class StepLog:
    """Room for ``entries`` sample visits on ``device``."""

    def __init__(self, device: torch.device, entries: int) -> None:
        self.device = device
        self._allocate(entries)
        self.filled = 0
        self._steps: list[int] = []
        self._sizes: list[int] = []
        self._weights: list[float] = []

    @property
    def capacity(self) -> int:
        return int(self.floats.shape[1])

    @property
    def steps(self) -> int:
        """Steps logged since the last :meth:`take`."""
        return len(self._steps)

    def fits(self, batch: int) -> bool:
        return self.filled + batch <= self.capacity

    def write(
        self,
        step: int,
        ids: Tensor,
        losses: Tensor,
        weight: float,
        logits: Tensor | None,
        labels: Tensor | None,
    ) -> None:
        """Log one batch; :meth:`fits` must have said yes, or the log be empty."""
        batch = losses.shape[0]
        if batch > self.capacity:
            self._allocate(batch)
        at = self.filled
        slot = self._slots.get(at)
        if slot is None or slot.batch != batch:
            slot = self._slots[at] = _Slot(self, at, batch)
        slot.loss.copy_(losses)
        slot.ids.copy_(ids)
        if logits is not None and labels is not None:
            clamped = torch.clamp(labels, 0, logits.shape[1] - 1, out=slot.clamped)
            torch.gather(logits, 1, clamped.unsqueeze(1), out=slot.own.unsqueeze(1))
            torch.linalg.vector_norm(logits, dim=1, out=slot.norm)
            torch.topk(logits, 2, dim=1, out=(slot.top_values, slot.top_classes))
            slot.labels.copy_(labels)
        else:
            if labels is None:
                slot.label_rows.fill_(-1)
            else:
                slot.label_rows.copy_(labels.expand(2, batch))
            slot.top_classes.fill_(-1)
        self.filled += batch
        self._steps.append(step)
        self._sizes.append(batch)
        self._weights.append(weight)

    def take(self) -> LoggedSteps | None:
        """Everything logged since the last call (views of the log, valid until the next
        :meth:`write`), and an empty log; None when nothing was logged."""
        m = self.filled
        if m == 0:
            return None
        steps, sizes, weights = self._steps, self._sizes, self._weights
        self.filled, self._steps, self._sizes, self._weights = 0, [], [], []
        step_of = torch.repeat_interleave(
            torch.arange(len(steps), device=self.device),
            self._on_device(sizes, torch.long),
            output_size=m,
        )
        floats, ints = self.floats[:, :m], self.ints[:, :m]
        return LoggedSteps(
            steps=steps,
            widest=max(sizes),
            step_of=step_of,
            weight=self._on_device(weights, torch.float32)[step_of],
            loss=floats[0],
            own=floats[1],
            norm=floats[2],
            ids=ints[0],
            labels=ints[1],
            clamped=ints[2],
            top_values=self.top_values[:m],
            top_classes=self.top_classes[:m],
        )

    def _on_device(self, values: list[int] | list[float], dtype: torch.dtype) -> Tensor:
        """``values`` on the device without waiting for it (from pinned memory to a GPU)."""
        if self.device.type != "cuda":
            return torch.tensor(values, dtype=dtype, device=self.device)
        host = torch.tensor(values, dtype=dtype, pin_memory=True)
        return host.to(self.device, non_blocking=True)

    def _allocate(self, entries: int) -> None:
        device = self.device
        self.floats = torch.zeros(3, entries, device=device)  # loss, own, norm
        self.ints = torch.zeros(3, entries, dtype=torch.long, device=device)  # ids, labels
        self.top_values = torch.zeros(entries, 2, device=device)
        self.top_classes = torch.zeros(entries, 2, dtype=torch.long, device=device)
        self._slots: dict[int, _Slot] = {}
