"""The Lightning callback with a real `lightning.Trainer`: every sample tracked, flips found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")
pytestmark = pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated")

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402, N812
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from labmind.trainers.outliers_file import read_outliers  # noqa: E402
from labmind.trainers.track import IndexedDataset  # noqa: E402
from labmind.trainers.track.lightning import SampleTrackerCallback  # noqa: E402

from .track_problems import RecordingTracker, auroc, blobs, precision_at_k  # noqa: E402


class Classifier(pl.LightningModule):
    def __init__(self, dim: int, classes: int, *, per_sample: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, classes))
        self.per_sample = per_sample

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Any:
        x, y, _ids = batch
        logits = self.net(x)
        losses = F.cross_entropy(logits, y, reduction="none")
        if not self.per_sample:
            return losses.mean()
        return {"loss": losses.mean(), "losses": losses, "logits": logits, "labels": y}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


def fit(module: Any, loader: DataLoader[Any], callback: Any, root: Path, epochs: int) -> None:
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
    trainer.fit(module, loader)


@pytest.mark.slow
def test_a_real_trainer_feeds_every_sample_and_the_flips_rank_high(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = blobs()
    train = IndexedDataset(TensorDataset(data.x, data.labels))
    loader = DataLoader(train, batch_size=32, shuffle=True)
    tracker = RecordingTracker(len(train), run_dir=tmp_path)

    fit(Classifier(8, data.classes), loader, SampleTrackerCallback(tracker), tmp_path, epochs=8)

    assert tracker.seen == set(range(len(train)))
    assert tracker.updates == 8 * len(loader)
    assert tracker.epoch == 8
    scores = tracker.scores()
    assert auroc(scores, data.flipped) > 0.95
    assert precision_at_k(scores, data.flipped) >= 2 / 3
    flagged = {f.sample for f in tracker.flagged() if "label_error" in f.reasons}
    assert len(flagged & set(data.flipped.nonzero()[0])) >= 2 / 3 * data.flipped.sum()
    written, _ = read_outliers(tmp_path / "outliers.jsonl")
    assert {r.sample for r in written} >= flagged


def test_a_training_step_without_per_sample_losses_is_one_clear_error(tmp_path: Path) -> None:
    data = blobs(n=64)
    loader = DataLoader(IndexedDataset(TensorDataset(data.x, data.labels)), batch_size=32)
    tracker = RecordingTracker(64)

    with pytest.raises(ValueError, match=r'needs training_step to return \{"loss"'):
        fit(
            Classifier(8, data.classes, per_sample=False),
            loader,
            SampleTrackerCallback(tracker),
            tmp_path,
            epochs=1,
        )


def test_ids_can_come_from_anywhere_in_the_batch(tmp_path: Path) -> None:
    data = blobs(n=64)
    ids = torch.arange(64)
    plain = TensorDataset(data.x, data.labels, ids)
    loader = DataLoader(plain, batch_size=16)
    tracker = RecordingTracker(64)
    callback = SampleTrackerCallback(tracker, ids=lambda batch: batch[2])

    fit(Classifier(8, data.classes), loader, callback, tmp_path, epochs=1)

    assert tracker.seen == set(range(64))
