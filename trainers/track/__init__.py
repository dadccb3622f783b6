"""What a training script imports: metrics logging and the sample tracker for labmind runs.

``from labmind.trainers.track import log; log(step, loss=loss)`` (standard library only).
``SampleTracker`` and ``IndexedDataset`` need torch, which is imported only when they are
first used, so ``import labmind.trainers.track`` stays light.
"""

from typing import TYPE_CHECKING, Any

from .metrics import log

if TYPE_CHECKING:
    from .datasets import IndexedDataset
    from .findings import Flag, Spike
    from .tracker import SampleTracker

__all__ = ["Flag", "IndexedDataset", "SampleTracker", "Spike", "log"]

_LAZY = {
    "SampleTracker": "tracker",
    "IndexedDataset": "datasets",
    "Flag": "findings",
    "Spike": "findings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
