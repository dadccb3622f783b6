"""Per-sample training statistics, kept in preallocated tensors on the loss's device.

Two tables with one row per sample (and one spare row that takes the updates of ids out
of range): sums that only grow (``index_add_``, so a repeated id in a batch adds up) and
latest values (``index_copy_``). An update is a fixed handful of tensor operations and
never copies anything to the host; :meth:`SampleStats.snapshot` does, for scoring.

Weighted sums give a visit in epoch ``e`` the weight ``c / (c + e)`` (``c`` =
``early_epochs``): the first epochs, before the model memorises noisy labels, count the
most, and later epochs still count, so the averages hold up over long runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

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
ADD_COLUMNS = 11

# Latest values.
LOSS_EMA = 0
CORRECT_LAST = 1  # -1 before any update with logits
PREDICTED = 2  # class with the largest logit at the latest update; -1 before any
LABEL = 3  # -1 until an update with labels
LAST_STEP = 4
SET_COLUMNS = 5

LOSS_EMA_DECAY = 0.5
"""Per visit of the sample, so about one epoch."""


@dataclass(frozen=True)
class Snapshot:
    """Host copies of the per-sample tables (one row per sample)."""

    sums: np.ndarray
    latest: np.ndarray


@dataclass(frozen=True)
class StepResult:
    """What the rest of the step needs from :meth:`SampleStats.update`."""

    rise: Tensor  # each sample's loss minus its usual loss (inf for a loss not finite)
    loss_sum: Tensor  # sum of the finite losses
    finite: Tensor  # how many losses were finite


class SampleStats:
    """The per-sample tables for ``num_samples`` samples on ``device``."""

    def __init__(self, num_samples: int, device: torch.device) -> None:
        self.num_samples = num_samples
        self.device = device
        self.sums = torch.zeros(num_samples + 1, ADD_COLUMNS, device=device)
        self.latest = torch.zeros(num_samples + 1, SET_COLUMNS, device=device)
        self.latest[:, LOSS_EMA] = torch.nan  # not seen yet
        self.latest[:, CORRECT_LAST:] = -1
        self._mix_weight = float("nan")
        self._mix_tensor = torch.zeros(7, ADD_COLUMNS, device=device)

    def rows(self, ids: Tensor) -> Tensor:
        """Row indices for ``ids``; an id out of range goes to the spare last row."""
        n = self.num_samples
        return ids.clamp(-1, n).remainder(n + 1)

    def update(
        self,
        rows: Tensor,
        step: int,
        losses: Tensor,
        weight: float,
        logits: Tensor | None,
        labels: Tensor | None,
    ) -> StepResult:
        """Fold one batch in (``weight``: this epoch's visit weight)."""
        loss = losses.nan_to_num(0.0, 0.0, 0.0)
        finite = loss.eq(losses)  # false exactly where the loss was NaN or infinite
        ok = finite.float()
        before = self.latest.index_select(0, rows)
        old_ema = before[:, LOSS_EMA]
        seen = old_ema.isnan().logical_not_()
        usual = torch.where(seen, old_ema, loss.median())
        ema = torch.where(finite, usual.lerp(loss, 1 - LOSS_EMA_DECAY), usual)
        rise = (loss - usual).masked_fill_(~finite, torch.inf)
        mix = self._mix(weight)
        if logits is not None and labels is not None:
            sig = _logit_signals(logits, labels)
            wrong = sig.correct.logical_not().float()
            forgot = before[:, CORRECT_LAST].eq(1).float().mul_(wrong)
            base = torch.stack((ok, loss, sig.margin, wrong, forgot, sig.log_rms), dim=1)
            added = torch.addmm(mix[0], base, mix[1:])
            latest = torch.stack(
                (ema, 1 - wrong, sig.predicted.float(), labels.float(), torch.full_like(ok, step)),
                dim=1,
            )
        else:
            added = torch.addmm(mix[0, :5], torch.stack((ok, loss), dim=1), mix[1:3, :5])
            added = torch.nn.functional.pad(added, (0, ADD_COLUMNS - 5))
            label = labels.float() if labels is not None else before[:, LABEL]
            latest = torch.cat(
                (
                    ema.unsqueeze(1),
                    before[:, CORRECT_LAST:LABEL],
                    torch.stack((label, torch.full_like(ok, step)), dim=1),
                ),
                dim=1,
            )
        self.sums.index_add_(0, rows, added)
        self.latest.index_copy_(0, rows, latest)
        return StepResult(rise=rise, loss_sum=loss.sum(), finite=finite.sum())

    def _mix(self, weight: float) -> Tensor:
        """Row 0: constant terms; rows 1-6: how (ok, loss, margin, wrong, forgot, log_rms)
        add to each sum column, for visits of weight ``weight``."""
        if self._mix_weight != weight:
            mix = torch.zeros(7, ADD_COLUMNS)
            mix[0, NONFINITE] = 1
            mix[0, LOGIT_WEIGHT] = weight
            mix[0, LOGIT_VISITS] = 1
            mix[1, VISITS] = 1
            mix[1, NONFINITE] = -1
            mix[1, WEIGHT] = weight
            mix[2, LOSS] = 1
            mix[2, W_LOSS] = weight
            mix[3, W_MARGIN] = weight
            mix[4, W_WRONG] = weight
            mix[5, FORGETS] = 1
            mix[6, LOGIT_RMS] = 1
            self._mix_tensor = mix.to(self.device, non_blocking=True)
            self._mix_weight = weight
        return self._mix_tensor

    def snapshot(self) -> Snapshot:
        n = self.num_samples
        return Snapshot(
            sums=self.sums[:n].double().cpu().numpy(),
            latest=self.latest[:n].double().cpu().numpy(),
        )

    def invalid_updates(self) -> int:
        """How many sample updates had ids out of range (they went to the spare row)."""
        spare = self.sums[self.num_samples]
        return int((spare[VISITS] + spare[NONFINITE]).item())


@dataclass(frozen=True)
class LogitSignals:
    margin: Tensor
    correct: Tensor
    predicted: Tensor
    log_rms: Tensor


def _logit_signals(logits: Tensor, labels: Tensor) -> LogitSignals:
    z = logits.nan_to_num(0.0, 1e4, -1e4)
    lab = labels.unsqueeze(1)
    own = z.gather(1, lab).squeeze(1)
    other, runner_up = z.scatter(1, lab, -torch.inf).max(1)
    margin = own - other
    correct = margin > 0
    log_rms = z.square().mean(1).clamp_min_(1e-24).log_().mul_(0.5)
    return LogitSignals(
        margin=margin,
        correct=correct,
        predicted=torch.where(correct, labels, runner_up),
        log_rms=log_rms - log_rms.median(),
    )
