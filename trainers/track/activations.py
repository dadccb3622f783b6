"""Per-sample activation statistics of watched modules, through forward hooks.

A hook keeps the latest output of its module, pooled to one feature vector per sample
(sequence outputs ``[batch, tokens, features]`` are averaged over tokens, feature maps
``[batch, channels, ...]`` over their spatial dimensions). The next
:meth:`ActivationStats.fold` turns it into two numbers per sample, each relative to the
batch median so that they stay comparable while the network trains:

- ``rms``: the log-RMS of the features — scaled or saturated inputs move it;
- ``atypical``: one minus the cosine similarity to the nearest class centroid (a running
  mean of the normalised features of each class) — noise and scrambled inputs land far
  from every class even when their norm looks ordinary, while a mislabelled sample
  stays close to its true class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional
from torch.utils.hooks import RemovableHandle

CENTROID_DECAY = 0.9
"""Per step in which a class appears."""
STATS = ("rms", "atypical")


def first_tensor(output: Any) -> Tensor | None:
    """The tensor a module returned: itself, or the first of a tuple, list or mapping."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, tuple | list):
        values: Any = output
    elif isinstance(output, Mapping):
        values = output.values()
    else:
        return None
    return next((v for v in values if isinstance(v, Tensor)), None)


def pooled(output: Tensor) -> Tensor:
    """One feature vector per sample (leading dimension = batch)."""
    x = output.detach().float()
    if x.dim() == 1:
        return x.unsqueeze(1)
    if x.dim() == 3:
        return x.mean(1)
    if x.dim() > 3:
        return x.flatten(2).mean(2)
    return x


class _Watched:
    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: Tensor | None = None
        self.centroids: Tensor | None = None  # [groups, features], unit-normalised means
        self.present: Tensor | None = None  # [groups] bool: the class has been seen


class ActivationStats:
    """Sums of per-sample activation statistics: three columns per watched module."""

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples
        self.watched: list[_Watched] = []
        self.handles: list[RemovableHandle] = []
        self.table: Tensor | None = None  # [num_samples + 1, 3 * modules]: rms, atypical, count

    @property
    def names(self) -> list[str]:
        return [w.name for w in self.watched]

    def watch(self, module: nn.Module, name: str) -> None:
        watched = _Watched(name)
        self.watched.append(watched)

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None and tensor.dim() >= 1 and tensor.shape[0] > 0:
                watched.pending = pooled(tensor)

        self.handles.append(module.register_forward_hook(hook))
        if self.table is not None:
            grown = torch.zeros(self.table.shape[0], 3, device=self.table.device)
            self.table = torch.cat((self.table, grown), dim=1)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        for watched in self.watched:
            watched.pending = None

    def fold(self, rows: Tensor, groups: Tensor, num_groups: int, device: torch.device) -> None:
        """Add the pending statistics of this step (``groups``: each sample's class)."""
        if not self.watched:
            return
        if self.table is None:
            self.table = torch.zeros(self.num_samples + 1, 3 * len(self.watched), device=device)
        batch = rows.shape[0]
        columns: list[Tensor] = []
        zero = torch.zeros(batch, device=device)
        for watched in self.watched:
            features, watched.pending = watched.pending, None
            if features is None or features.shape[0] != batch:
                columns += [zero, zero, zero]
                continue
            columns += [*self._measure(watched, features.to(device), groups, num_groups), zero + 1]
        self.table.index_add_(0, rows, torch.stack(columns, dim=1))

    @staticmethod
    def _measure(
        watched: _Watched, features: Tensor, groups: Tensor, num_groups: int
    ) -> tuple[Tensor, Tensor]:
        log_rms = features.square().mean(1).clamp_min(1e-24).log().mul(0.5)
        unit = functional.normalize(features, dim=1)
        if (
            watched.centroids is None
            or watched.present is None
            or watched.centroids.shape != (num_groups, unit.shape[1])
        ):
            watched.centroids = unit.new_zeros(num_groups, unit.shape[1])
            watched.present = torch.zeros(num_groups, dtype=torch.bool, device=unit.device)
        similarity = unit @ functional.normalize(watched.centroids, dim=1).T
        atypical = 1 - similarity.max(1).values
        sums = unit.new_zeros(num_groups, unit.shape[1]).index_add_(0, groups, unit)
        counts = unit.new_zeros(num_groups).index_add_(0, groups, unit.new_ones(groups.shape[0]))
        means = sums / counts.clamp_min(1).unsqueeze(1)
        here = (counts > 0).unsqueeze(1)
        blended = torch.where(
            watched.present.unsqueeze(1),
            CENTROID_DECAY * watched.centroids + (1 - CENTROID_DECAY) * means,
            means,
        )
        watched.centroids = torch.where(here, blended, watched.centroids)
        watched.present = watched.present | here.squeeze(1)
        return log_rms - log_rms.median(), atypical - atypical.median()

    def means(self) -> dict[str, np.ndarray]:
        """Per module and statistic (``"<module>:rms"``, ``"<module>:atypical"``), each
        sample's mean (NaN where never seen), as numpy arrays."""
        if self.table is None:
            return {}
        table = self.table[: self.num_samples].double().cpu().numpy()
        out: dict[str, np.ndarray] = {}
        for slot, watched in enumerate(self.watched):
            count = table[:, 3 * slot + 2]
            seen = count > 0
            for offset, stat in enumerate(STATS):
                mean = np.full(count.shape, np.nan)
                mean[seen] = table[seen, 3 * slot + offset] / count[seen]
                out[f"{watched.name}:{stat}"] = mean
        return out
