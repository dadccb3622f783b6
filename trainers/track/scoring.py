"""From per-sample statistics to suspicion scores and flags (numpy only, on the host).

Signals, per sample (weighted averages give early epochs the most weight, see
:mod:`.samples`):

- ``loss``: mean loss; ``weighted_loss``: its weighted average;
- ``margin``: weighted area under the margin (label logit minus the largest other logit);
- ``preference``: weighted average of how much more likely the model found another class
  than the label, in log-probability, each against its class's usual confidence;
- ``wrong``: weighted share of updates at which another class had the largest logit;
- ``forgets``: times it went from predicted right to predicted wrong;
- ``logits:rms``, ``<module>:rms``, ``<module>:atypical``: activation statistics relative
  to the batch (see :mod:`.activations`).

The label score is the preference as a robust z-score, ``(x - median) / (1.4826 MAD)``
over all samples (without logits: the weighted loss's, within the samples of the same
labelled class); the corruption score is the largest activation z-score within the
labelled class (both directions for a watched module's ``rms``; the high side for the
logits' ``rms``, since logits smaller than usual mean an unsure model, which is the label
score's business, and for ``atypical``). A sample's score is the larger of its label
score and its corruption score minus 2.5.

Flags: ``label_error`` when the preference for another class exceeds a bar that rises as
label errors look rarer: with ``p`` the share of samples whose preference is positive
(an estimate of the noise rate) and ``m`` the median absolute preference (how sure this
model is of anything), the bar is ``label_slope * m * log((1 - p) / p)``, so a clean data
set's few hard samples stay unflagged while a noisy one's errors are (without logits: a
weighted-loss z-score above ``loss_z``);
``corrupted_input`` when the corruption score exceeds ``activation_z`` or a loss was not
finite; ``forgotten`` when it was forgotten ``forgets`` times or more and is predicted
wrong now; ``spike`` when it drove a loss spike. Samples seen fewer than ``min_visits``
times are not flagged.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from . import samples as s
from .findings import Flag, Reason

MAD_SCALE = 1.4826
LOGITS_RMS = "logits:rms"
NOISE_FLOOR = 0.001
NOISE_CEILING = 0.5
"""The estimated share of label errors is kept in [NOISE_FLOOR, NOISE_CEILING]."""
CORRUPTION_OFFSET = 2.5
"""How much a corruption z-score is discounted against a label z-score: it is the largest
of several z-scores, so ordinary samples reach higher values on it."""


@dataclass(frozen=True)
class Thresholds:
    """When a signal becomes a flag (see the module docstring)."""

    label_slope: float = 0.15
    loss_z: float = 6.0
    activation_z: float = 8.0
    forgets: int = 3
    min_visits: int = 2


@dataclass
class Assessment:
    """Scores and signals for every sample, and the flags they lead to."""

    scores: np.ndarray
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den > 0``, NaN elsewhere."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def robust_z(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD) within each group; NaN stays NaN.

    A group of fewer than 5 measured samples is compared with all samples instead.
    """
    out = np.full(values.shape, np.nan)
    measured = np.isfinite(values)
    if not measured.any():
        return out
    for g in np.unique(groups[measured]):
        members = measured & (groups == g)
        pool = values[members] if members.sum() >= 5 else values[measured]
        median = float(np.median(pool))
        mad = float(np.median(np.abs(pool - median))) * MAD_SCALE
        spread = max(mad, 0.1 * float(np.std(pool)), 1e-9)
        out[members] = (values[members] - median) / spread
    return out


def preference_bar(preference: np.ndarray, thresholds: Thresholds) -> float:
    """How strong a preference for another class makes a label error, given everyone's."""
    if preference.size == 0:
        return float("inf")
    share = min(max(float(np.mean(preference > 0)), NOISE_FLOOR), NOISE_CEILING)
    odds = math.log((1 - share) / share)
    return thresholds.label_slope * float(np.median(np.abs(preference))) * odds


def _nanmax(arrays: list[np.ndarray], n: int) -> np.ndarray:
    if not arrays:
        return np.zeros(n)
    stacked = np.stack(arrays)
    stacked = np.where(np.isnan(stacked), -np.inf, stacked)
    out: np.ndarray = np.maximum(stacked.max(axis=0), 0.0)
    return out


def assess(
    snap: s.Snapshot,
    activations: Mapping[str, np.ndarray],
    spike_drivers: Collection[int],
    thresholds: Thresholds,
) -> Assessment:
    sums, latest = snap.sums, snap.latest
    n = sums.shape[0]
    visits = sums[:, s.VISITS]
    labels = latest[:, s.LABEL].astype(np.int64)
    has_label = labels >= 0
    groups = np.where(has_label, labels, -1)
    predicted = latest[:, s.PREDICTED].astype(np.int64)
    nonfinite = sums[:, s.NONFINITE]

    signals: dict[str, np.ndarray] = {
        "loss": ratio(sums[:, s.LOSS], visits),
        "weighted_loss": ratio(sums[:, s.W_LOSS], sums[:, s.WEIGHT]),
    }
    loss_z = robust_z(signals["weighted_loss"], groups)
    has_logits = sums[:, s.LOGIT_WEIGHT] > 0
    if has_logits.any():
        signals["margin"] = ratio(sums[:, s.W_MARGIN], sums[:, s.LOGIT_WEIGHT])
        signals["preference"] = ratio(sums[:, s.W_PREFERENCE], sums[:, s.LOGIT_WEIGHT])
        signals["wrong"] = ratio(sums[:, s.W_WRONG], sums[:, s.LOGIT_WEIGHT])
        signals["forgets"] = np.where(has_logits, sums[:, s.FORGETS], np.nan)
        signals[LOGITS_RMS] = ratio(sums[:, s.LOGIT_RMS], sums[:, s.LOGIT_VISITS])
        preference_z = robust_z(signals["preference"], np.zeros(n, dtype=np.int64))
        label_score = np.where(has_logits, preference_z, loss_z)
    else:
        label_score = loss_z
    signals.update(activations)

    corruption_parts = []
    for name, values in signals.items():
        if name == LOGITS_RMS:
            corruption_parts.append(robust_z(values, groups))
        elif name.endswith(":rms"):
            corruption_parts.append(np.abs(robust_z(values, groups)))
        elif name.endswith(":atypical"):
            corruption_parts.append(robust_z(values, groups))
    corruption_score = _nanmax(corruption_parts, n)
    label_score = np.nan_to_num(label_score, nan=0.0)
    score = np.maximum(label_score, corruption_score - CORRUPTION_OFFSET)
    score = np.where(nonfinite > 0, np.maximum(score, thresholds.activation_z), score)
    signals["label_score"] = label_score
    signals["corruption_score"] = corruption_score

    ready = visits >= thresholds.min_visits
    if "preference" in signals:
        preference = signals["preference"]
        judged = ready & has_label & has_logits & np.isfinite(preference)
        bar = preference_bar(preference[judged], thresholds)
        with np.errstate(invalid="ignore"):
            is_label = judged & (preference > bar)
        is_label |= ready & has_label & ~has_logits & (loss_z > thresholds.loss_z)
        is_forgotten = ready & (sums[:, s.FORGETS] >= thresholds.forgets)
        is_forgotten &= latest[:, s.CORRECT_LAST] == 0
    else:
        is_label = ready & (np.nan_to_num(loss_z) > thresholds.loss_z)
        is_forgotten = np.zeros(n, dtype=bool)
    is_corrupt = (ready & (corruption_score > thresholds.activation_z)) | (nonfinite > 0)
    drivers = np.zeros(n, dtype=bool)
    drivers[np.array([i for i in spike_drivers if 0 <= i < n], dtype=np.int64)] = True

    flags: list[Flag] = []
    for i in np.flatnonzero(is_label | is_corrupt | is_forgotten | drivers).tolist():
        reasons: list[Reason] = []
        if is_label[i]:
            reasons.append("label_error")
        if is_corrupt[i]:
            reasons.append("corrupted_input")
        if drivers[i]:
            reasons.append("spike")
        if is_forgotten[i]:
            reasons.append("forgotten")
        detail = {k: float(v[i]) for k, v in signals.items() if np.isfinite(v[i])}
        if nonfinite[i] > 0:
            detail["nonfinite_losses"] = float(nonfinite[i])
        flags.append(
            Flag(
                sample=i,
                score=float(score[i]),
                reasons=tuple(reasons),
                label=int(labels[i]) if has_label[i] else None,
                predicted=int(predicted[i]) if predicted[i] >= 0 else None,
                detail=detail,
            )
        )
    flags.sort(key=lambda f: -f.score)
    return Assessment(scores=score, signals=signals, flags=flags)
