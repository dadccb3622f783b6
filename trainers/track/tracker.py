"""``SampleTracker``: which training samples behave strangely, found during the training run.

Three lines in a training loop::

    tracker = SampleTracker(len(train_set))                 # with IndexedDataset(train_set)
    tracker.watch(model.encoder)                            # optional: activation statistics
    tracker.update(ids, losses, logits=logits, labels=y)    # per-sample losses, every step

``update`` only writes what the step saw into a log on the loss's device — a handful of
tensor operations, no ``.item()``, no copy to the host, so it does not stall a GPU. The log
is folded into the per-sample statistics (and checked for loss spikes) when it is full
and before a read; ``scores()``, ``flagged()``, ``spikes()`` and ``report()`` copy the
statistics to the host. Under labmind (``$LABMIND_RUN_DIR`` set)
new findings are appended to ``outliers.jsonl`` and ``spikes.jsonl`` every
``report_every_steps`` steps or ``report_every_seconds`` seconds, whichever comes first, and
at :meth:`SampleTracker.end_epoch`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .activations import ActivationStats
from .findings import Flag, Spike
from .reporting import RUN_DIR_ENV, FindingsReport
from .samples import LOG_ENTRIES, SampleStats, StepSummary
from .scoring import Assessment, Thresholds, assess
from .spikes import SpikeDetector

EARLY_EPOCHS = 5
REPORT_EVERY_STEPS = 200
REPORT_EVERY_SECONDS = 60.0


class SampleTracker:
    """Tracks ``num_samples`` training samples by id (``0 <= id < num_samples``).

    ``early_epochs``: a visit in epoch ``e`` weighs ``exp(-e / early_epochs)`` in the
    averaged losses and margins, so early training, before the model memorises noisy
    labels, counts the most.
    ``spike_window``, ``spike_sigma``: a batch loss more than ``spike_sigma`` standard
    deviations (estimated over the last ``spike_window`` steps) above the mean of the 32
    steps before it, and as far above an exponential moving average, is a spike.
    ``run_dir``: where findings go; default ``$LABMIND_RUN_DIR``, and nothing is written
    when neither is set. ``log_entries``: sample visits logged on the device between two
    folds.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        early_epochs: int = EARLY_EPOCHS,
        spike_window: int = 128,
        spike_sigma: float = 6.0,
        report_every_steps: int = REPORT_EVERY_STEPS,
        report_every_seconds: float = REPORT_EVERY_SECONDS,
        run_dir: str | os.PathLike[str] | None = None,
        thresholds: Thresholds | None = None,
        log_entries: int = LOG_ENTRIES,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, not {num_samples}")
        if early_epochs <= 0:
            raise ValueError(f"early_epochs must be positive, not {early_epochs}")
        self.num_samples = int(num_samples)
        self.early_epochs = early_epochs
        self.spike_window = spike_window
        self.spike_sigma = spike_sigma
        self.report_every_steps = report_every_steps
        self.report_every_seconds = report_every_seconds
        self.run_dir = run_dir
        self.thresholds = thresholds or Thresholds()
        self.log_entries = log_entries
        self.step = 0
        self.samples_seen = 0
        self.epochs_ended: int | None = None
        self.device: torch.device | None = None
        self._stats: SampleStats | None = None
        self._spikes: SpikeDetector | None = None
        self._activations = ActivationStats(self.num_samples)
        self._report = FindingsReport()
        self._assessment: tuple[int, Assessment] | None = None
        self._reported_step = 0
        self._reported_time = time.monotonic()

    # -- the training loop ----------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """Epochs ended (:meth:`end_epoch`), or else samples seen / ``num_samples``."""
        if self.epochs_ended is not None:
            return self.epochs_ended
        return self.samples_seen // self.num_samples

    def watch(self, *modules: nn.Module, **named: nn.Module) -> SampleTracker:
        """Keep per-sample activation statistics of these modules' outputs.

        A module's latest forward pass before an :meth:`update` is taken to be that
        update's batch (its output's first dimension must be the batch).
        """
        start = len(self._activations.names)
        for offset, module in enumerate(modules):
            self._activations.watch(module, f"{start + offset}:{type(module).__name__}")
        for name, module in named.items():
            self._activations.watch(module, name)
        return self

    def unwatch(self) -> None:
        """Remove the forward hooks (statistics gathered so far stay)."""
        self._activations.remove()

    def update(
        self,
        ids: Tensor | Sequence[int],
        losses: Tensor,
        logits: Tensor | None = None,
        labels: Tensor | Sequence[int] | None = None,
    ) -> None:
        """Record one training step: per-sample ``losses`` (``reduction="none"``) of ``ids``.

        ``logits`` (batch × classes, or one logit per sample for a binary task) and
        integer ``labels`` enable the margin, forgetting and label-error signals.
        """
        losses, ids_t, logits, labels_t = self._checked(ids, losses, logits, labels)
        stats, spikes = self._state(losses.device)
        weight = math.exp(-self.epoch / self.early_epochs)
        folded = stats.record(self.step, ids_t, losses, weight, logits, labels_t)
        if folded is not None:
            spikes.observe(folded)
        if self._activations.watched:
            rows = stats.rows(ids_t)
            if logits is None:
                groups, num_groups = torch.zeros_like(rows), 1
            elif labels_t is None:
                groups, num_groups = logits.argmax(1), logits.shape[1]
            else:
                groups = labels_t.clamp(0, logits.shape[1] - 1)
                rows = rows.masked_fill(groups.ne(labels_t), self.num_samples)
                num_groups = logits.shape[1]
            self._activations.fold(rows, groups, num_groups, losses.device)
        self.step += 1
        self.samples_seen += losses.shape[0]
        self._maybe_report()

    def end_epoch(self) -> None:
        """Mark the end of an epoch (epochs then count these calls) and report findings."""
        self.epochs_ended = (self.epochs_ended or 0) + 1
        if self._run_dir() is not None:
            self.report()

    # -- results (these copy to the host) -------------------------------------------------

    def scores(self) -> np.ndarray:
        """One suspicion score per sample (higher = more suspicious; 0 for unseen samples)."""
        return self._assess().scores.copy()

    def signals(self) -> dict[str, np.ndarray]:
        """The per-sample signals behind the scores, by name (NaN where not measured)."""
        return {k: v.copy() for k, v in self._assess().signals.items()}

    def flagged(self) -> list[Flag]:
        """The flagged samples with their reasons, most suspicious first."""
        return list(self._assess().flags)

    def spikes(self) -> list[Spike]:
        """The batch loss spikes so far, with the sample ids that drove them."""
        self._fold()
        return [] if self._spikes is None else self._spikes.read()

    def report(self) -> int:
        """Append new findings to the run folder now; the number of lines written."""
        self._reported_step = self.step
        self._reported_time = time.monotonic()
        run_dir = self._run_dir()
        if run_dir is None or self._stats is None:
            return 0
        return self._report.append(
            run_dir, self.flagged(), self.spikes(), step=self.step, epoch=self.epoch
        )

    # -- internals -------------------------------------------------------------------------

    def _run_dir(self) -> str | os.PathLike[str] | None:
        return self.run_dir if self.run_dir is not None else os.environ.get(RUN_DIR_ENV) or None

    def _maybe_report(self) -> None:
        due = self.step - self._reported_step >= self.report_every_steps
        if not due and time.monotonic() - self._reported_time < self.report_every_seconds:
            return
        if self._run_dir() is not None:
            self.report()
        else:
            self._reported_step = self.step
            self._reported_time = time.monotonic()

    def _state(self, device: torch.device) -> tuple[SampleStats, SpikeDetector]:
        if self._stats is None or self._spikes is None:
            self.device = device
            self._stats = SampleStats(self.num_samples, device, log_entries=self.log_entries)
            self._spikes = SpikeDetector(
                device, window=self.spike_window, sigma=self.spike_sigma, ema_sigma=self.spike_sigma
            )
        elif device != self.device:
            raise ValueError(
                f"losses moved from {self.device} to {device}; keep them on one device"
            )
        return self._stats, self._spikes

    def _assess(self) -> Assessment:
        if self._assessment is not None and self._assessment[0] == self.step:
            return self._assessment[1]
        if self._stats is None or self._spikes is None:
            return Assessment(scores=np.zeros(self.num_samples))
        self._fold()
        invalid = self._stats.invalid_updates()
        if invalid:
            raise IndexError(
                f"{invalid} sample updates had an id outside [0, {self.num_samples}) or a label "
                "outside the logits' classes; check num_samples and the ids from IndexedDataset"
            )
        drivers = {i for spike in self._spikes.read() for i in spike.samples}
        result = assess(self._stats.snapshot(), self._activations.means(), drivers, self.thresholds)
        self._assessment = (self.step, result)
        return result

    def _fold(self) -> None:
        """Fold the steps logged so far into the statistics and the spike checks."""
        if self._stats is not None and self._spikes is not None:
            summary: StepSummary | None = self._stats.fold()
            if summary is not None:
                self._spikes.observe(summary)

    def _checked(
        self,
        ids: Tensor | Sequence[int],
        losses: Tensor,
        logits: Tensor | None,
        labels: Tensor | Sequence[int] | None,
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        if not isinstance(losses, Tensor):
            raise TypeError("losses must be a tensor of per-sample losses")
        if losses.dim() != 1:
            raise ValueError(
                f"losses must have one value per sample (shape [batch]), not "
                f"{tuple(losses.shape)}; "
                "compute the loss with reduction='none' (and average any other dimensions)"
            )
        batch = losses.shape[0]
        device = losses.device
        losses = _plain(losses, torch.float32, device)
        ids_t = _as_index(ids, "ids", device)
        if ids_t.shape != (batch,):
            raise ValueError(
                f"ids has shape {tuple(ids_t.shape)}; expected ({batch},), one per loss"
            )
        labels_t = None if labels is None else _as_labels(labels, device)
        if labels_t is not None and labels_t.shape != (batch,):
            raise ValueError(f"labels has shape {tuple(labels_t.shape)}; expected ({batch},)")
        if logits is not None:
            logits = _plain(logits, torch.float32, device)
            if logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
                binary = logits.reshape(-1, 1)
                logits = torch.cat((torch.zeros_like(binary), binary), dim=1)
            if logits.dim() != 2 or logits.shape[0] != batch:
                raise ValueError(
                    f"logits has shape {tuple(logits.shape)}; expected ({batch}, classes)"
                )
        return losses, ids_t, logits, labels_t


def _plain(tensor: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``tensor`` detached, as ``dtype`` on ``device`` (no operation when it already is)."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    if tensor.dtype != dtype or tensor.device != device:
        tensor = tensor.to(device=device, dtype=dtype, non_blocking=True)
    return tensor


def _as_index(values: Any, name: str, device: torch.device) -> Tensor:
    tensor = values if isinstance(values, Tensor) else torch.as_tensor(values)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must be integers, not {tensor.dtype}")
    return _plain(tensor, torch.long, device)


def _as_labels(values: Any, device: torch.device) -> Tensor:
    tensor = values if isinstance(values, Tensor) else torch.as_tensor(values)
    if tensor.dim() == 2 and tensor.is_floating_point():
        tensor = tensor.argmax(dim=1)
    return _as_index(tensor, "labels", device)
