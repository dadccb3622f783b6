"""What a training script imports: metrics logging for labmind runs (standard library only).

``from labmind.trainers.track import log; log(step, loss=loss)``
"""

from .metrics import log

__all__ = ["log"]
