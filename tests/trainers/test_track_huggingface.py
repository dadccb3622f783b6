"""The Hugging Face helper with a real `transformers.Trainer` and a tiny BERT from a config."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

from labmind.trainers.track import IndexedDataset  # noqa: E402
from labmind.trainers.track.huggingface import (  # noqa: E402
    IndexedCollator,
    TrackingTrainer,
    per_sample_losses,
)

from .track_problems import RecordingTracker, auroc, precision_at_k  # noqa: E402

VOCAB = 40
PAD = 0


class Sentences(Dataset[dict[str, Any]]):
    """Token sequences of varying length: class 0 draws from tokens 2–19, class 1 from
    20–39; ``flips`` labels are flipped."""

    def __init__(self, n: int, flips: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.truth = rng.integers(0, 2, size=n)
        self.items: list[dict[str, Any]] = []
        for label in self.truth:
            low = 2 if label == 0 else 20
            length = int(rng.integers(4, 12))
            self.items.append(
                {"input_ids": rng.integers(low, low + 18, size=length).tolist(), "labels": label}
            )
        self.flipped = np.zeros(n, dtype=bool)
        self.flipped[rng.choice(n, size=flips, replace=False)] = True
        for i in np.flatnonzero(self.flipped):
            self.items[i]["labels"] = 1 - self.items[i]["labels"]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def strict_pad(features: list[dict[str, Any]]) -> dict[str, Tensor]:
    """A collator that pads and refuses features it does not know (as many do)."""
    for feature in features:
        unknown = set(feature) - {"input_ids", "labels"}
        if unknown:
            raise KeyError(f"unexpected features {sorted(unknown)}")
    longest = max(len(f["input_ids"]) for f in features)
    ids = [f["input_ids"] + [PAD] * (longest - len(f["input_ids"])) for f in features]
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": (torch.tensor(ids) != PAD).long(),
        "labels": torch.tensor([int(f["labels"]) for f in features]),
    }


def tiny_bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
        pad_token_id=PAD,
    )
    return transformers.AutoModelForSequenceClassification.from_config(config)


@pytest.mark.slow
def test_a_real_trainer_feeds_every_sample_and_the_flips_rank_high(tmp_path: Path) -> None:
    transformers.set_seed(0)
    data = Sentences(n=96, flips=8)
    tracker = RecordingTracker(len(data), run_dir=tmp_path)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=6,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=2e-3,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = TrackingTrainer(
        model=tiny_bert(),
        args=args,
        train_dataset=IndexedDataset(data),
        eval_dataset=IndexedDataset(data),
        data_collator=strict_pad,
        tracker=tracker,
    )

    trainer.train()
    updates = tracker.updates
    metrics = trainer.evaluate()

    assert tracker.seen == set(range(len(data)))
    assert updates == 6 * math.ceil(len(data) / 16)
    assert tracker.updates == updates
    assert math.isfinite(metrics["eval_loss"])
    assert tracker.epoch == 6
    scores = tracker.scores()
    assert auroc(scores, data.flipped) > 0.95
    assert precision_at_k(scores, data.flipped) >= 0.75
    assert (tmp_path / "outliers.jsonl").exists()


def test_per_sample_losses_match_the_usual_reductions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, -100])
    tokens = torch.randn(2, 5, 7)
    token_labels = torch.tensor([[1, 2, 3, -100, -100], [4, 5, 6, 0, 1]])
    multi = torch.randint(0, 2, (4, 3)).float()

    classes = per_sample_losses(logits, labels)
    regression = per_sample_losses(torch.randn(4, 1), torch.randn(4))
    multilabel = per_sample_losses(logits, multi)
    plain = per_sample_losses(tokens, token_labels)
    shifted = per_sample_losses(tokens, token_labels, shift=True)

    assert torch.allclose(
        classes[:3], torch.nn.functional.cross_entropy(logits[:3], labels[:3], reduction="none")
    )
    assert classes[3] == 0
    assert regression.shape == (4,) and multilabel.shape == (4,)
    first = torch.nn.functional.cross_entropy(tokens[0, :3], token_labels[0, :3])
    assert torch.allclose(plain[0], first)
    second = torch.nn.functional.cross_entropy(tokens[1, :4], token_labels[1, 1:])
    assert torch.allclose(shifted[1], second)
    with pytest.raises(ValueError, match="sample_losses="):
        per_sample_losses(torch.randn(4, 3, 2, 2), labels)


def test_the_collator_wrapper_hides_the_ids_and_passes_other_batches_through() -> None:
    collate = IndexedCollator(strict_pad)
    features = [
        {"input_ids": [3, 4], "labels": 1, "index": 7},
        {"input_ids": [5], "labels": 0, "index": 2},
    ]

    batch = collate(features)
    plain = collate([{k: v for k, v in f.items() if k != "index"} for f in features])

    assert batch["index"].tolist() == [7, 2]
    assert batch["input_ids"].tolist() == [[3, 4], [5, PAD]]
    assert "index" not in plain
