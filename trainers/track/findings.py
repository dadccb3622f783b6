"""What the sample tracker finds: flagged samples and loss spikes (standard library only).

Both turn into one JSON line each in the run folder (see :mod:`.reporting`); the field
names here are the file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Reason = Literal["label_error", "corrupted_input", "spike", "forgotten"]
REASONS: tuple[Reason, ...] = ("label_error", "corrupted_input", "spike", "forgotten")


@dataclass(frozen=True)
class Flag:
    """A suspicious training sample.

    ``reasons``: ``label_error`` (the model keeps predicting another class, with a loss and
    margin far outside the rest), ``corrupted_input`` (its activations sit far from those
    of its class, or its loss was not finite), ``spike`` (it drove a batch loss spike),
    ``forgotten`` (learned, then repeatedly unlearned). ``detail`` holds the signals
    behind the flag, by name.
    """

    sample: int
    score: float
    reasons: tuple[Reason, ...]
    label: int | None = None
    predicted: int | None = None
    detail: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Spike:
    """A batch whose mean loss jumped far above the recent ones.

    ``baseline`` is the mean batch loss of the last steps before it, ``z`` how many of
    their standard deviations it lies above; ``samples`` are the ids in that batch whose
    loss rose the most, largest first.
    """

    step: int
    loss: float
    baseline: float
    z: float
    samples: tuple[int, ...]
