"""``IndexedDataset``: a dataset whose items carry their own index, so sample ids reach the loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from torch.utils.data import Dataset

INDEX_KEY = "index"


class MapStyle(Protocol):
    def __getitem__(self, index: int, /) -> Any: ...

    def __len__(self) -> int: ...


class IndexedDataset(Dataset[Any]):
    """Wraps a map-style dataset: item ``i`` becomes ``(*item, i)``.

    A tuple or list item is extended (``(x, y)`` → ``(x, y, i)``), any other item becomes a
    pair (``x`` → ``(x, i)``), and a mapping gets an ``"index"`` key (``key=`` to choose
    another), which is what Hugging Face-style collators pass through. The default
    ``DataLoader`` collation then yields the ids as a tensor, ready for
    :meth:`SampleTracker.update`.
    """

    def __init__(self, dataset: MapStyle, *, key: str = INDEX_KEY) -> None:
        self.dataset = dataset
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if isinstance(item, tuple | list):
            return (*item, index)
        if isinstance(item, Mapping):
            if self.key in item:
                raise KeyError(f"the dataset's items already have a {self.key!r} key; pass key=")
            return {**item, self.key: index}
        return (item, index)
