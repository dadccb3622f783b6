"""Per-sample training statistics, kept in preallocated tensors on the loss's device.

A step only writes what it saw into the log of the steps since the last fold
(:mod:`.steplog`): a handful of tensor operations, never a copy to the host.
:meth:`SampleStats.fold` turns the log into the per-sample tables, for the whole log at
once, when it is full and before anything is read.

Two tables with one row per sample (and one spare row that takes the updates of ids or
labels out of range): sums that only grow (``index_add_``, so repeated visits add up) and
latest values. The per-visit recurrences (the loss EMA, and forgetting, which compares a
visit with the one before) run over each sample's visits in step order with a segmented
scan, so a fold costs the same whatever the order of the ids.

Weighted sums give a visit in epoch ``e`` the weight ``exp(-e / c)`` (``c`` =
``early_epochs``): the first epochs, before the model memorises noisy labels, count the
most; by then a mislabelled sample has shown itself, and what the model says about it
once it has learnt the wrong label by heart would only hide it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .logit_signals import ClassConfidence, logit_signals
from .steplog import StepLog

# Sums.
VISITS = 0  # updates with a finite loss
NONFINITE = 1  # updates with a loss that was not finite
LOSS = 2
WEIGHT = 3  # sum of visit weights (finite losses)
W_LOSS = 4
LOGIT_WEIGHT = 5  # sum of visit weights of updates with logits and labels
W_MARGIN = 6  # logit of the label minus the largest other logit
W_WRONG = 7  # another class had the largest logit
FORGETS = 8  # correct at the previous update, wrong at this one
LOGIT_VISITS = 9
LOGIT_RMS = 10  # log-RMS of the logits minus the batch median
W_PREFERENCE = 11  # how much more likely another class than the label, each against its class
ADD_COLUMNS = 12

# Latest values.
LOSS_EMA = 0
CORRECT_LAST = 1  # -1 before any update with logits
PREDICTED = 2  # class with the largest logit at the latest update; -1 before any
LABEL = 3  # -1 until an update with labels
LAST_STEP = 4
SET_COLUMNS = 5

LOSS_EMA_DECAY = 0.5
"""Per visit of the sample, so about one epoch."""
SCAN_REACH = 32
"""Visits of a sample within one fold that its loss EMA looks back over (0.5 ** 32 is
below float32's resolution; only a run of that many non-finite losses, which keep the
EMA where it was, would reach further)."""

LOG_ENTRIES = 16384
"""Sample visits the log holds before it is folded (a batch larger than this gets a log
of its own size)."""


@dataclass(frozen=True)
class Snapshot:
    """Host copies of the per-sample tables (one row per sample)."""

    sums: np.ndarray
    latest: np.ndarray


@dataclass(frozen=True)
class StepSummary:
    """The steps of one fold, for spike detection, one row per step: ``batch_loss`` (the
    mean finite loss; NaN when none was finite), ``broken`` (some loss was not finite),
    and each sample's ``rise`` over its usual loss with its ``ids`` (padded with -inf and
    -1 where a batch was narrower than the widest)."""

    steps: list[int]
    batch_loss: Tensor
    broken: Tensor
    rise: Tensor
    ids: Tensor


class SampleStats:
    """The per-sample tables for ``num_samples`` samples on ``device``, and the log."""

    def __init__(
        self, num_samples: int, device: torch.device, *, log_entries: int = LOG_ENTRIES
    ) -> None:
        self.num_samples = num_samples
        self.device = device
        self.sums = torch.zeros(num_samples + 1, ADD_COLUMNS, device=device)
        self.latest = torch.zeros(num_samples + 1, SET_COLUMNS, device=device)
        self.latest[:, LOSS_EMA] = torch.nan  # not seen yet
        self.latest[:, CORRECT_LAST:] = -1
        self.log = StepLog(device, log_entries)
        self.confidence = ClassConfidence(device)

    def rows(self, ids: Tensor) -> Tensor:
        """Row indices for ``ids``; an id out of range goes to the spare last row."""
        n = self.num_samples
        return ids.clamp(-1, n).remainder(n + 1)

    def record(
        self,
        step: int,
        ids: Tensor,
        losses: Tensor,
        weight: float,
        logits: Tensor | None,
        labels: Tensor | None,
    ) -> StepSummary | None:
        """Log one batch (``weight``: this epoch's visit weight); when the log had no room
        for it, the log is folded first and that fold's summary returned."""
        summary = None
        if not self.log.fits(losses, logits, labels):
            summary = self.fold()
        self.log.write(step, ids, losses, weight, logits, labels)
        return summary

    def fold(self) -> StepSummary | None:
        """Fold the log into the tables; the per-step summary of what it held."""
        logged = self.log.take()
        if logged is None:
            return None
        m, steps, step_of = logged.entries, logged.steps, logged.step_of
        loss_in, weight, ids = logged.loss, logged.weight, logged.ids
        labels, has_logits = logged.labels, logged.has_logits
        clamped = labels.clamp(0, max(logged.classes - 1, 0))
        rows = self.rows(ids).masked_fill(has_logits & clamped.ne(labels), self.num_samples)
        loss = loss_in.nan_to_num(0.0, 0.0, 0.0)
        finite = loss.eq(loss_in)  # false exactly where the loss was NaN or infinite
        index = torch.arange(m, device=self.device)
        # Each step's entries side by side (each batch is contiguous in the log).
        step_start = torch.ones(m, dtype=torch.bool, device=self.device)
        step_start[1:] = step_of[1:].ne(step_of[:-1])
        column = index - _start_index(step_start, index)
        grid = _Grid(step_of, column, (len(steps), logged.widest))
        step_median = grid.put(loss, torch.nan).nanmedian(1).values
        # Logit signals.
        if logged.classes:
            signals = logit_signals(logged.logits, clamped, has_logits.float(), self.confidence)
            margin, predicted, preference = signals.margin, signals.predicted, signals.preference
            norm = signals.norm
        else:
            margin = preference = norm = torch.zeros_like(loss)
            predicted = clamped
        correct = margin > 0
        # log RMS relative to the batch: the class count drops out with the median.
        log_rms = norm.clamp_min(1e-12).log()
        log_rms = log_rms - grid.put(log_rms, torch.nan).nanmedian(1).values[step_of]
        # Each sample's visits in step order: its loss EMA, and forgetting.
        order = torch.sort(rows, stable=True).indices
        srows = rows[order]
        starts = torch.ones(m, dtype=torch.bool, device=self.device)
        starts[1:] = srows[1:].ne(srows[:-1])
        ends = torch.ones(m, dtype=torch.bool, device=self.device)
        ends[:-1] = starts[1:]
        first = _start_index(starts, index)
        before = self.latest.index_select(0, srows)
        sfinite, sloss = finite[order], loss[order]
        old_ema = before[:, LOSS_EMA]
        initial = torch.where(old_ema.isnan(), step_median[step_of[order]], old_ema)[first]
        decay = torch.where(sfinite, LOSS_EMA_DECAY, 1.0)
        gain, offset = _segmented_scan(decay, (1 - decay) * sloss, index - first)
        ema = gain * initial + offset
        usual = torch.where(starts, initial, ema.roll(1))
        rise = torch.empty_like(loss)
        rise[order] = torch.where(sfinite, sloss - usual, torch.inf)
        slogits, scorrect = has_logits[order], correct[order]
        was_correct = torch.where(
            starts, before[:, CORRECT_LAST].eq(1), scorrect.roll(1) & slogits.roll(1)
        )
        forgot = torch.empty_like(loss)
        forgot[order] = (was_correct & ~scorrect & slogits).float()
        # The sums.
        ok = finite.float()
        zero = torch.zeros_like(loss)
        logit_weight = torch.where(has_logits, weight, zero)
        added = torch.stack(
            (
                ok,
                1 - ok,
                loss,
                weight * ok,
                weight * loss,
                logit_weight,
                torch.where(has_logits, margin * weight, zero),
                logit_weight * (~correct).float(),
                forgot,
                has_logits.float(),
                torch.where(has_logits, log_rms, zero),
                torch.where(has_logits, preference * weight, zero),
            ),
            dim=1,
        )
        self.sums.index_add_(0, rows, added)
        # The latest values, from each sample's last visit in this log (the other visits
        # write to the spare row: no boolean indexing, which would wait for the device).
        slabels = labels[order]
        latest = torch.stack(
            (
                ema,
                torch.where(slogits, scorrect.float(), before[:, CORRECT_LAST]),
                torch.where(slogits, predicted[order].float(), before[:, PREDICTED]),
                torch.where(slabels.ge(0), clamped[order].float(), before[:, LABEL]),
                (step_of[order] + steps[0]).float(),
            ),
            dim=1,
        )
        self.latest.index_copy_(0, torch.where(ends, srows, self.num_samples), latest)
        count = grid.sum(ok)
        return StepSummary(
            steps=steps,
            batch_loss=grid.sum(loss) / count.masked_fill(count.eq(0), torch.nan),
            broken=count.lt(grid.sum(torch.ones_like(loss))),
            rise=grid.put(rise, -torch.inf),
            ids=grid.put(ids, -1),
        )

    def snapshot(self) -> Snapshot:
        """Host copies of the tables (fold the log first: it is not in them)."""
        n = self.num_samples
        return Snapshot(
            sums=self.sums[:n].double().cpu().numpy(),
            latest=self.latest[:n].double().cpu().numpy(),
        )

    def invalid_updates(self) -> int:
        """How many sample updates had ids (or labels) out of range: they went to the spare
        row (fold the log first)."""
        spare = self.sums[self.num_samples]
        return int((spare[VISITS] + spare[NONFINITE]).item())


class _Grid:
    """Entries of a log laid out one row per step, one column per sample of the batch."""

    def __init__(self, row: Tensor, column: Tensor, shape: tuple[int, int]) -> None:
        self.row, self.column, self.shape = row, column, shape

    def put(self, values: Tensor, fill: float) -> Tensor:
        out = values.new_full(self.shape, fill)
        out[self.row, self.column] = values
        return out

    def sum(self, values: Tensor) -> Tensor:
        return values.new_zeros(self.shape[0]).index_add_(0, self.row, values)


def _start_index(starts: Tensor, index: Tensor) -> Tensor:
    """For each entry, the index of the entry that starts its run (``starts`` marks them)."""
    return torch.where(starts, index, 0).cummax(0).values


def _segmented_scan(a: Tensor, b: Tensor, rank: Tensor) -> tuple[Tensor, Tensor]:
    """``x[i] = a[i] * x[i - 1] + b[i]`` along runs (``rank``: each entry's place in its
    run, 0 first), as ``x[i] = gain[i] * x0 + offset[i]`` with ``x0`` the value before the
    run. Doubling steps (Hillis-Steele), stable for ``|a| <= 1``: log2 of
    :data:`SCAN_REACH` rounds of elementwise work, each entry composed with the
    ``SCAN_REACH`` before it at most (with ``a`` = 0.5 per visit, what lies further back
    weighs less than 1e-9)."""
    gain, offset = a.clone(), b.clone()
    distance = 1
    while distance < min(a.shape[0], SCAN_REACH):
        reach = rank[distance:].ge(distance)
        earlier_gain = torch.where(reach, gain[:-distance], 1.0)
        carried = torch.addcmul(offset[distance:], gain[distance:] * reach, offset[:-distance])
        gain[distance:] *= earlier_gain
        offset[distance:] = carried
        distance *= 2
    return gain, offset
