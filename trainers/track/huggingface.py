"""A Hugging Face ``Trainer`` that feeds a :class:`SampleTracker` (needs ``transformers``).

This module imports ``transformers``; nothing else in ``labmind.trainers.track`` imports
this module, so the tracker works without it installed (the dependency rule allows the
framework only in its own integration module).

Two changes to a ``Trainer`` script::

    tracker = SampleTracker(len(train_set))
    trainer = TrackingTrainer(
        model=model,
        args=args,
        train_dataset=IndexedDataset(train_set),  # items are dicts: adds "index"
        data_collator=collator,                   # any collator; the ids go around it
        tracker=tracker,
    )
    trainer.train()

``TrackingTrainer`` keeps the ``index`` column through ``remove_unused_columns`` and the
collator (:class:`IndexedCollator`), takes it out of the inputs before the model sees them,
and after each training forward pass computes per-sample losses from the logits and labels
(:func:`per_sample_losses`: classification, regression, multi-label and per-token losses
averaged over each sample's labelled tokens, shifted for causal language models) and calls
``tracker.update``. The loss the model optimises is the model's own, unchanged. Epoch ends
call ``tracker.end_epoch()`` and the end of training ``tracker.report()``.

It subclasses ``Trainer`` cooperatively, so it also goes in front of another trainer class:
``class MyTrainer(TrackingTrainer, Seq2SeqTrainer): ...``. Give ``sample_losses=`` to
compute per-sample losses another way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from .datasets import INDEX_KEY
from .tracker import SampleTracker

IGNORE_INDEX = -100
"""The label Hugging Face losses skip (padding, prompt tokens)."""

SampleLosses = Callable[[Any, Tensor], Tensor]
"""Takes the model's outputs and the labels, gives one loss per sample."""


def per_sample_losses(logits: Tensor, labels: Tensor, *, shift: bool = False) -> Tensor:
    """One loss per sample, as Hugging Face models compute the batch's loss:

    - ``(batch, classes)`` logits, integer ``(batch,)`` labels: cross-entropy;
    - ``(batch, 1)`` or ``(batch,)`` logits, float ``(batch,)`` labels: squared error;
    - ``(batch, classes)`` logits, float labels of the same shape: binary cross-entropy,
      averaged over the classes (multi-label);
    - ``(batch, tokens, vocab)`` logits, ``(batch, tokens)`` labels: cross-entropy averaged
      over each sample's tokens whose label is not ``-100``; with ``shift`` token ``t``
      predicts label ``t + 1`` (causal language models).
    """
    logits = logits.detach().float()
    if logits.dim() == 3 and labels.dim() == 2:
        if shift:
            logits, labels = logits[:, :-1], labels[:, 1:]
        tokens = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).view(labels.shape)
        counted = (labels != IGNORE_INDEX).sum(dim=1).clamp_min(1)
        return tokens.sum(dim=1) / counted
    if labels.is_floating_point():
        if labels.shape == logits.shape and logits.dim() == 2 and logits.shape[1] > 1:
            bce = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
            return bce.mean(dim=1)
        predicted = logits.reshape(labels.shape[0], -1)
        if predicted.shape[1] == 1:
            return F.mse_loss(predicted[:, 0], labels.float().reshape(-1), reduction="none")
    elif logits.dim() == 2 and labels.dim() == 1:
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")
    raise ValueError(
        f"no per-sample loss for logits of shape {tuple(logits.shape)} and labels of shape "
        f"{tuple(labels.shape)} ({labels.dtype}); give TrackingTrainer(sample_losses=...)"
    )


class IndexedCollator:
    """Collates the features without their ``key`` and puts the ids back as a tensor.

    Any collator (padding, masking) then sees the features it expects; features without
    ``key`` (an evaluation set that is not indexed) pass through unchanged.
    """

    def __init__(self, collator: Callable[[list[Any]], Any], key: str = INDEX_KEY) -> None:
        self.collator = collator
        self.key = key

    def __call__(self, features: list[Any]) -> Any:
        if not features or not all(isinstance(f, Mapping) and self.key in f for f in features):
            return self.collator(features)
        ids = [int(f[self.key]) for f in features]
        batch = self.collator([{k: v for k, v in f.items() if k != self.key} for f in features])
        batch[self.key] = torch.tensor(ids, dtype=torch.long)
        return batch


class _EpochEnds(TrainerCallback):
    def __init__(self, tracker: SampleTracker) -> None:
        self.tracker = tracker

    def on_epoch_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self.tracker.end_epoch()

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self.tracker.report()


class TrackingTrainer(Trainer):
    """A ``Trainer`` that calls ``tracker.update`` with per-sample losses every training
    step (see the module's docstring). ``index_key``: the feature holding the sample id.
    """

    def __init__(
        self,
        *args: Any,
        tracker: SampleTracker,
        index_key: str = INDEX_KEY,
        sample_losses: SampleLosses | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tracker = tracker
        self.index_key = index_key
        self.sample_losses = sample_losses
        self._shift: bool | None = None
        self.data_collator = IndexedCollator(self.data_collator, index_key)
        self.add_callback(_EpochEnds(tracker))

    def _set_signature_columns_if_needed(self) -> None:
        # Keep the ids when ``remove_unused_columns`` drops what the model does not take.
        super()._set_signature_columns_if_needed()
        columns: list[str] | None = self._signature_columns
        if columns is not None and self.index_key not in columns:
            columns.append(self.index_key)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        inputs = dict(inputs)
        ids = inputs.pop(self.index_key, None)
        if ids is None or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.get("labels")
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if labels is None:
            raise ValueError(
                "TrackingTrainer needs labels in the training inputs to compute per-sample losses"
            )
        self._track(model, ids, outputs, labels)
        return (loss, outputs) if return_outputs else loss

    def _track(self, model: nn.Module, ids: Tensor, outputs: Any, labels: Tensor) -> None:
        logits = _logits(outputs)
        if self.sample_losses is not None:
            losses = self.sample_losses(outputs, labels)
        elif logits is None:
            raise ValueError(
                "the model's outputs have no logits to compute per-sample losses from; "
                "give TrackingTrainer(sample_losses=...)"
            )
        else:
            losses = per_sample_losses(logits, labels, shift=self._causal(model))
        classes = (
            logits is not None
            and logits.dim() == 2
            and logits.shape[1] > 1
            and labels.dim() == 1
            and not labels.is_floating_point()
        )
        self.tracker.update(
            ids,
            losses,
            logits=logits if classes else None,
            labels=labels if classes else None,
        )

    def _causal(self, model: nn.Module) -> bool:
        if self._shift is None:
            name = type(self.accelerator.unwrap_model(model)).__name__
            self._shift = name in _causal_lm_names()
        return self._shift


def _causal_lm_names() -> set[str]:
    names: set[str] = set()
    for value in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        names.update([value] if isinstance(value, str) else value)
    return names


def _logits(outputs: Any) -> Tensor | None:
    logits = outputs.get("logits") if isinstance(outputs, Mapping) else None
    if logits is None and isinstance(outputs, tuple | list) and len(outputs) > 1:
        logits = outputs[1]
    return logits if isinstance(logits, Tensor) else None
