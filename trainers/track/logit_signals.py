"""What a fold reads from the logits of its visits: margins, predictions, norms and the
preference for another class.

The logits come as one row per class and one column per visit, so every reduction over
classes is an elementwise operation across rows (fast on any device, unlike a reduction
along a short last dimension).

The preference for another class compares log-probabilities each against its class's
usual confidence (the mean probability the model gives the label to samples labelled
with that class, over recent folds), as confident learning does: a class the model is
unsure of everywhere does not make all its samples look mislabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

CONFIDENCE_DECAY = 0.5
"""Per fold: how much of the earlier folds the classes' usual confidence keeps."""
LOGIT_LIMIT = 1e4
"""A visit's margin and norm are clipped to ±this (NaN to 0), so a broken visit stays
finite in the sums."""
PREFERENCE_LIMIT = 50.0


@dataclass(frozen=True)
class LogitSignals:
    """Per visit."""

    margin: Tensor
    """The label's logit minus the largest other logit (> 0: predicted right)."""
    predicted: Tensor
    """The class with the largest logit."""
    norm: Tensor
    """The logits' Euclidean norm."""
    preference: Tensor
    """How much more likely the likeliest other class is than the label, in
    log-probability, each less the log of its class's usual confidence."""


class ClassConfidence:
    """Per class, the decayed mean probability of the label among visits labelled with it."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, 0, device=device)  # probabilities, visits

    def update(
        self, label: Tensor, label_log_prob: Tensor, counted: Tensor, classes: int
    ) -> Tensor:
        """Take in one fold's visits (``counted``: 1 for those with logits, else 0); the
        log of each class's usual confidence (0 for classes no visit was labelled with)."""
        if self.sums.shape[1] < classes:
            grown = self.sums.new_zeros(2, classes)
            grown[:, : self.sums.shape[1]] = self.sums
            self.sums = grown
        counted = counted * label_log_prob.isfinite()  # a broken visit says nothing
        self.sums.mul_(CONFIDENCE_DECAY)
        self.sums[0].index_add_(0, label, label_log_prob.nan_to_num(0.0).exp() * counted)
        self.sums[1].index_add_(0, label, counted)
        total, count = self.sums[:, :classes].unbind(0)
        mean = (total / count.clamp_min(1e-9)).clamp_min(1e-6)
        return mean.log() * count.gt(0)


def logit_signals(
    logits: Tensor, label: Tensor, counted: Tensor, confidence: ClassConfidence
) -> LogitSignals:
    """The signals of visits with ``logits`` (classes × visits) and ``label`` (each visit's
    label, within the classes); ``counted`` (1 or 0 per visit) says which visits count
    towards the classes' usual confidence."""
    classes = logits.shape[0]
    x = logits
    rank = torch.arange(classes, 0, -1, device=x.device).unsqueeze(1)  # C .. 1
    is_label = rank.eq(classes - label)
    own = x.gather(0, label.unsqueeze(0)).squeeze(0)
    others = x.masked_fill(is_label, -torch.inf)
    best_other = others.amax(0)
    first_best = (others.eq(best_other) * rank).amax(0)
    margin = own - best_other
    predicted = torch.where(margin > 0, label, classes - first_best)
    top = torch.maximum(own, best_other)
    lse = (x - top).exp().sum(0).log() + top
    label_log_prob = (own - lse).clamp_max(0.0)
    usual = confidence.update(label, label_log_prob, counted, classes)
    best_normalised = (others - usual.unsqueeze(1)).amax(0) - lse
    preference = best_normalised - (label_log_prob - usual[label])
    return LogitSignals(
        margin=margin.nan_to_num(0.0, LOGIT_LIMIT, -LOGIT_LIMIT),
        predicted=predicted,
        norm=x.square().sum(0).sqrt().nan_to_num(0.0, LOGIT_LIMIT, LOGIT_LIMIT),
        preference=preference.nan_to_num(0.0).clamp(-PREFERENCE_LIMIT, PREFERENCE_LIMIT),
    )
