"""Batch loss spikes, detected on the device without a host synchronisation per step.

Each step's batch loss is compared with the steps before it in two ways: the recent level
(the mean of the last ``RECENT`` of them, so a falling loss does not leave the baseline
behind) plus ``sigma`` standard deviations estimated over the last ``window`` steps, and
an exponential moving average plus ``ema_sigma`` moving standard deviations. A step
beyond both is a spike, and so is a batch with a loss that is not finite. Both standard
deviations are estimated from the step-to-step changes, so that the steady fall of the
loss early in training does not count as noise. The recent history keeps a spike only up
to the threshold, so one spike does not hide the next, and the changes into and out of a
step cut back so are left out of the window's deviation, so a spike does not widen it
for the next ``window`` steps either. A step beyond both thresholds within
``REFRACTORY`` steps after one with a higher loss is the same incident (the optimiser
recovering), and is not reported again.

Steps arrive in batches (a fold of the tracker's log, :class:`.samples.StepSummary`): per
step its batch loss and each sample's rise over its own usual loss, of which the
``top_k`` largest are kept. They are checked ``block`` steps at a time against the
history as it stood before the block; spikes are written to preallocated device
tensors, and :meth:`SpikeDetector.read` copies them out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .findings import Spike
from .samples import StepSummary

WINDOW = 128
SIGMA = 6.0
EMA_ALPHA = 0.05
WARMUP = 20
TOP_K = 16
CAPACITY = 4096
BLOCK = 64
RECENT = 32
"""Steps whose mean is the level a batch loss is compared with."""
REFRACTORY = 32
"""Steps after a spike in which a step beyond the thresholds but with a lower loss is
taken for the same incident (a bad batch throws the optimiser off for a while)."""
MIN_REL_SD = 0.01
MIN_START_SD = 0.002
"""Floors on the standard deviations: 1% of the recent mean loss, and 0.2% of the mean
loss when checks began, so that neither a flat loss nor a memorised one near zero turns
a single sample's wobble into a spike."""
DRIVER_FLOOR = 0.01
"""Rises below this share of the largest one do not drive a spike."""
DRIVER_GAP = 2.0
"""The drivers are the rises before the largest drop between neighbours (largest first),
when that drop is at least this factor; otherwise all rises above the floor."""


class SpikeDetector:
    """Batch-loss spike detection; state lives on ``device``."""

    def __init__(
        self,
        device: torch.device,
        *,
        window: int = WINDOW,
        sigma: float = SIGMA,
        ema_sigma: float = SIGMA,
        ema_alpha: float = EMA_ALPHA,
        warmup: int = WARMUP,
        top_k: int = TOP_K,
        capacity: int = CAPACITY,
        block: int = BLOCK,
    ) -> None:
        if window < 2 or warmup < 2 or block < 1:
            raise ValueError("the spike window and warm-up need at least 2 steps")
        self.window = window
        self.sigma = sigma
        self.ema_sigma = ema_sigma
        self.warmup = warmup
        self.top_k = top_k
        self.capacity = capacity
        self.block = block
        self.device = device
        self.steps_seen = 0  # steps already checked
        self.history = torch.zeros(window, device=device)
        self.calm = torch.ones(window, dtype=torch.bool, device=device)  # not cut back
        # The losses of the last REFRACTORY steps that were beyond the thresholds.
        self.incidents = torch.full((REFRACTORY,), -torch.inf, device=device)
        self.filled = 0
        self.ema = torch.zeros(2, device=device)  # mean, variance of step-to-step changes
        self.start_level: Tensor | None = None  # mean loss of the window at the first check
        # One row per spike: step, loss, baseline, z, then top_k ids and top_k rises; the
        # last row takes the writes of steps that are not spikes.
        self.records = torch.zeros(capacity + 1, 4 + 2 * top_k, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.long, device=device)
        decay = 1 - ema_alpha
        t = torch.arange(block, dtype=torch.float64)
        power = (t.unsqueeze(1) - t.unsqueeze(0)).clamp_min(0)
        lower = t.unsqueeze(1) >= t.unsqueeze(0)
        # m_t = decay^(t+1) m_0 + sum_{s<=t} alpha decay^(t-s) x_s, for t, s in the block.
        self._weights = torch.where(lower, ema_alpha * decay**power, 0.0).float().to(device)
        self._carry = (decay ** (t + 1)).float().to(device)

    def observe(self, summary: StepSummary) -> None:
        """Check the steps of ``summary`` for spikes, ``block`` steps at a time."""
        k = min(self.top_k, summary.rise.shape[1])
        top, where = summary.rise.topk(k, dim=1)
        ids = summary.ids.gather(1, where)
        narrow = top.isneginf()
        top, ids = top.masked_fill(narrow, 0.0), ids.masked_fill(narrow, -1)
        if k < self.top_k:
            top = torch.nn.functional.pad(top, (0, self.top_k - k))
            ids = torch.nn.functional.pad(ids, (0, self.top_k - k), value=-1)
        batch_loss = torch.where(summary.batch_loss.isnan(), self.ema[0], summary.batch_loss)
        values = torch.cat(
            (batch_loss.unsqueeze(1), summary.broken.float().unsqueeze(1), top), dim=1
        )
        found: list[tuple[Tensor, Tensor, Tensor]] = []
        at = 0
        while at < len(summary.steps):
            # The warm-up steps first, on their own: they only fill the history.
            size = self.block if self.steps_seen >= self.warmup else self.warmup - self.steps_seen
            checked = self.check(values[at : at + size, :2])
            if checked is not None:
                found.append(checked)
            at += size
        if found:
            z, baseline, spike = (torch.cat(parts) for parts in zip(*found, strict=True))
            m = z.shape[0]
            self._record(summary.steps[-m:], values[-m:], ids[-m:], z, baseline, spike)

    def check(self, values: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """Check a block of steps (per step: the batch loss and whether a loss was not
        finite) against the history before it. Once armed: each step's z-score, the
        baseline, and whether it is a spike."""
        m = values.shape[0]
        losses = values[:, 0]
        checked = None
        if self.filled < 2:
            kept, calm = losses, torch.ones_like(losses, dtype=torch.bool)
            if self.filled == 0:
                self.ema[0] = losses[0]
            self._advance_ema(kept, m)
        else:
            armed_from = max(0, self.warmup - self.steps_seen)
            window, was_calm = self.history[: self.filled], self.calm[: self.filled]
            # The block's own values are cut back at a ceiling from the history before it;
            # then each step is compared with the RECENT kept values just before it and a
            # deviation over the `window` changes just before it.
            first = torch.full((1,), self.filled, device=self.device)
            level, sd = self._level_and_deviation(window, was_calm, first)
            ceiling = level + self.sigma * sd
            kept, calm = torch.minimum(losses, ceiling), losses.le(ceiling)
            prev_mean, prev_var = self._advance_ema(kept, m)
            level, sd = self._level_and_deviation(
                torch.cat((window, kept)),
                torch.cat((was_calm, calm)),
                torch.arange(self.filled, self.filled + m, device=self.device),
            )
            floor = self._floor(level)
            z = (losses - level) / sd
            ema_z = (losses - prev_mean) / torch.maximum(prev_var.sqrt(), floor)
            broken = values[:, 1] > 0
            beyond = (z > self.sigma) & (ema_z > self.ema_sigma)
            if armed_from > 0:
                beyond[:armed_from] = False
            spike = (beyond & ~self._same_incident(beyond, losses)) | broken
            if armed_from > 0:
                spike[:armed_from] = False
            checked = (z, level, spike)
        joined = torch.cat((self.history[: self.filled], kept))[-self.window :]
        joined_calm = torch.cat((self.calm[: self.filled], calm))[-self.window :]
        self.filled = joined.shape[0]
        self.history[: self.filled] = joined
        self.calm[: self.filled] = joined_calm
        self.steps_seen += m
        return checked

    def _same_incident(self, beyond: Tensor, losses: Tensor) -> Tensor:
        """Which steps beyond the thresholds follow one with at least as high a loss
        within ``REFRACTORY`` steps: the optimiser still recovering from the same
        incident, not a new one. Remembers this block's for the next."""
        marked = torch.where(beyond, losses, -torch.inf)
        recent = torch.cat((self.incidents, marked))
        before = recent.unfold(0, REFRACTORY, 1)[: losses.shape[0]].amax(1)
        self.incidents.copy_(recent[-REFRACTORY:])
        return before >= losses

    def _level_and_deviation(
        self, values: Tensor, calm: Tensor, at: Tensor
    ) -> tuple[Tensor, Tensor]:
        """For each position in ``at``: the mean of the ``RECENT`` values before it, and
        the standard deviation from the step-to-step changes among the ``window`` values
        before it, leaving out changes into or out of a value that was cut back."""
        sums = torch.nn.functional.pad(values.cumsum(0), (1, 0))
        start = (at - RECENT).clamp_min(0)
        level = (sums[at] - sums[start]) / (at - start)
        counted = (calm[1:] & calm[:-1]).float()
        change = values.diff()
        squares = torch.nn.functional.pad((change * change * counted).cumsum(0), (1, 0))
        counts = torch.nn.functional.pad(counted.cumsum(0), (1, 0))
        last, first = at - 1, (at - self.window).clamp_min(0)
        variance = (squares[last] - squares[first]) / (counts[last] - counts[first]).clamp_min(1.0)
        return level, torch.maximum(variance.mul(0.5).sqrt(), self._floor(level))

    def _floor(self, level: Tensor) -> Tensor:
        if self.start_level is None:
            self.start_level = level[0].abs()
        return torch.maximum(level.abs() * MIN_REL_SD, self.start_level * MIN_START_SD) + 1e-12

    def _advance_ema(self, kept: Tensor, m: int) -> tuple[Tensor, Tensor]:
        """Move the moving mean and the moving variance of step-to-step changes over the
        ``m`` values ``kept``; returns both as they stood before each value."""
        last = self.history[self.filled - 1 : self.filled] if self.filled else kept[:1]
        change = kept - torch.cat((last, kept[:-1]))
        mean = self._weights[:m, :m] @ kept + self._carry[:m] * self.ema[0]
        var = self._weights[:m, :m] @ (0.5 * change * change) + self._carry[:m] * self.ema[1]
        prev_mean = torch.cat((self.ema[:1], mean[:-1]))
        prev_var = torch.cat((self.ema[1:], var[:-1]))
        self.ema.copy_(torch.stack((mean[-1], var[-1])))
        return prev_mean, prev_var

    def _record(
        self,
        steps: list[int],
        values: Tensor,
        ids: Tensor,
        z: Tensor,
        baseline: Tensor,
        spike: Tensor,
    ) -> None:
        m = values.shape[0]
        first = torch.arange(m, dtype=torch.float64, device=self.device) + steps[0]
        rows = torch.cat(
            (
                first.unsqueeze(1),
                values[:, :1].double(),
                baseline.double().unsqueeze(1),
                z.double().unsqueeze(1),
                ids.double(),
                values[:, 2:].double(),
            ),
            dim=1,
        )
        slots = torch.where(spike, self.count + spike.long().cumsum(0) - 1, self.capacity)
        self.records.index_copy_(0, slots.clamp(max=self.capacity), rows)
        self.count += spike.long().sum()

    def read(self) -> list[Spike]:
        """The spikes so far, oldest first (the first ``capacity`` of them)."""
        count = min(int(self.count.item()), self.capacity)
        k = self.top_k
        spikes = []
        for row in self.records[:count].cpu().tolist():
            pairs = [
                (int(i), r) for i, r in zip(row[4 : 4 + k], row[4 + k :], strict=True) if i >= 0
            ]
            drivers = tuple(pairs[i][0] for i in range(drivers_count([r for _, r in pairs])))
            spikes.append(
                Spike(step=int(row[0]), loss=row[1], baseline=row[2], z=row[3], samples=drivers)
            )
        return spikes


def drivers_count(rises: list[float]) -> int:
    """How many of ``rises`` (largest first) drove the spike: those before the largest
    relative drop between neighbours, when it is at least ``DRIVER_GAP``."""
    if not rises or not rises[0] > 0:
        return 0
    if math.isinf(rises[0]):
        return sum(1 for r in rises if math.isinf(r))
    floor = DRIVER_FLOOR * rises[0]
    clamped = [max(r, floor) for r in rises]
    gaps = [clamped[i] / clamped[i + 1] for i in range(len(clamped) - 1)]
    if not gaps or max(gaps) < DRIVER_GAP:
        return sum(1 for r in rises if r > floor)
    return gaps.index(max(gaps)) + 1
