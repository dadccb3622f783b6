"""Batch loss spikes, detected on the device without a host synchronisation per step.

Each step's batch loss is compared with the steps before it in two ways: the mean of the
last ``window`` steps plus ``sigma`` standard deviations, and an exponential moving
average plus ``ema_sigma`` moving standard deviations. A step beyond both is a spike, and
so is a batch with a loss that is not finite. Both standard deviations are estimated from
the step-to-step changes, so that the steady fall of the loss early in training does not
count as noise. The recent
history keeps a spike only up to the threshold, so one spike does not hide the next.

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
BLOCK = 16
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
        for at in range(0, len(summary.steps), self.block):
            checked = self.check(values[at : at + self.block, :2])
            if checked is not None:
                found.append(checked)
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
            kept = losses
            if self.filled == 0:
                self.ema[0] = losses[0]
            self._advance_ema(kept, m)
        else:
            armed_from = max(0, self.warmup - self.steps_seen)
            window = self.history[: self.filled]
            mean = window.mean()
            if self.start_level is None:
                self.start_level = mean.abs()
            floor = torch.maximum(mean.abs() * MIN_REL_SD, self.start_level * MIN_START_SD) + 1e-12
            change = window.diff()
            sd = torch.maximum((change * change).mean().mul(0.5).sqrt(), floor)
            kept = torch.minimum(losses, mean + self.sigma * sd)
            prev_mean, prev_var = self._advance_ema(kept, m)
            z = (losses - mean) / sd
            ema_z = (losses - prev_mean) / torch.maximum(prev_var.sqrt(), floor)
            spike = ((z > self.sigma) & (ema_z > self.ema_sigma)) | (values[:, 1] > 0)
            if armed_from > 0:
                spike[:armed_from] = False
            checked = (z, mean.expand(m), spike)
        joined = torch.cat((self.history[: self.filled], kept))[-self.window :]
        self.filled = joined.shape[0]
        self.history[: self.filled] = joined
        self.steps_seen += m
        return checked

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
