"""A plain PyTorch loop with labmind's sample tracker: the three added lines are marked.

Trains a small MLP on scikit-learn's digits with 10% of the labels flipped, then prints
what the tracker found. Under labmind (``$LABMIND_RUN_DIR`` set) the findings also go to
``outliers.jsonl`` and ``spikes.jsonl`` in the run folder.

    python docs/examples/track_plain_loop.py
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset

from labmind.trainers.track import IndexedDataset, SampleTracker

x, y = load_digits(return_X_y=True)
x = (x - x.mean(0)) / (x.std(0) + 1e-6)
rng = np.random.default_rng(0)
flipped = rng.choice(len(y), len(y) // 10, replace=False)
y[flipped] = (y[flipped] + rng.integers(1, 10, len(flipped))) % 10

data = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
loader = DataLoader(IndexedDataset(data), batch_size=64, shuffle=True)  # 1: ids with each batch
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
tracker = SampleTracker(len(data)).watch(model[1])  # 2: the tracker, watching one layer

for _ in range(10):
    for inputs, labels, ids in loader:
        logits = model(inputs)
        losses = functional.cross_entropy(logits, labels, reduction="none")
        opt.zero_grad()
        losses.mean().backward()
        opt.step()
        tracker.update(ids, losses, logits=logits, labels=labels)  # 3: every step
    tracker.end_epoch()

flags = tracker.flagged()
caught = {f.sample for f in flags if "label_error" in f.reasons} & set(flipped.tolist())
print(
    f"{len(flags)} samples flagged; {len(caught)} of the {len(flipped)} flipped labels among them"
)
for flag in flags[:5]:
    print(
        f"  sample {flag.sample}: {', '.join(flag.reasons)} (label {flag.label}, "
        f"model says {flag.predicted}, score {flag.score:.1f})"
    )
print(f"loss spikes: {len(tracker.spikes())}")
