"""The sample tracker against cleanlab, in one run, on scikit-learn's bundled datasets.

Datasets: digits (1,797 × 64, 10 classes), wine (178 × 13, 3 classes), breast cancer
(569 × 30, 2 classes), features standardised. The model is the same MLP everywhere
(one hidden layer of 128 ReLUs, Adam, learning rate 2e-3, batches of 64 for digits and 32
for the others), trained on one CPU thread.

- **Label noise**: uniform flips (to any other class) and pair flips (class k → k+1) of
  10/20/40% of the labels (breast cancer has two classes, so only uniform), 3 seeds. The
  tracker watches one training run of 40 epochs; its findings are read after epoch 10
  and after epoch 40 (with a constant learning rate, the first 10 epochs of that run are
  a 10-epoch run). cleanlab's ``find_label_issues`` (default ``prune_by_noise_rate``) gets
  5-fold cross-validated probabilities of a logistic regression and of the same MLP
  (trained 40 epochs per fold, probabilities taken after 10 and 40). Flags: the tracker's
  ``label_error`` flags vs cleanlab's issues; AUROC: ``tracker.scores()`` vs one minus
  cleanlab's label quality (self-confidence); P@K with K = the number of flipped labels.
- **Clean control**: no noise; the share of samples flagged (tracker: any reason).
- **Corrupted inputs** with correct labels, 5% of the samples: Gaussian replacement,
  permutation of the features (pixels for digits), ×4 scale. The tracker watches the
  hidden layer. Flags: any tracker flag / any cleanlab issue; AUROC as above.
- **Spikes**: digits, 40 epochs, 6 batches per run (3 seeds) get a planted problem at
  known steps — strong: 8 of 64 samples with a wrong label and ×5 inputs; mild: 4
  samples with a wrong label. Recall of those steps, and of their samples among the
  reported ones. False alarms: spikes reported in runs without planted problems (the
  clean controls, and the spike runs away from the planted steps; spikes in the 32 steps
  after a planted batch are its after-effects and counted apart). In the label-noise and
  corrupted-input runs, spikes are counted with the share of their reported samples that
  are flipped or corrupted.
- **Overhead**: an MLP 784-512-512-10 on random data, a plain Adam step against the
  same step plus ``tracker.update`` (and plus ``watch`` of one hidden layer), at batch 128
  and 1024; interleaved rounds, median per step. A round spans at least one fold of the
  tracker's log (``LOG_ENTRIES`` sample visits), so folds are in every figure; ``update``
  alone is timed over four folds' worth of steps per round, with the ids made beforehand.

    python -m bench.tracker [--json out.json] [--quick] [--seeds 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from torch import nn
from torch.nn import functional

from labmind.trainers.track import SampleTracker
from labmind.trainers.track.samples import LOG_ENTRIES

from .report import print_table

LOADERS: dict[str, Callable[..., Any]] = {
    "digits": load_digits,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
}
HIDDEN = 128
LR = 2e-3
EPOCHS = (10, 40)
RATES = (0.1, 0.2, 0.4)
CORRUPTIONS = ("gaussian", "permute", "scale")
CORRUPT_SHARE = 0.05
FOLDS = 5
SPIKES_PER_RUN = 6
AFTERMATH = 32
"""Steps after a planted batch whose spikes are its after-effects, not false alarms: a
bad batch throws Adam off course for a while, and the loss really does go up."""

Probs = dict[int, np.ndarray]  # epochs → [samples, classes]


@dataclass
class Data:
    name: str
    x: np.ndarray
    y: np.ndarray  # the labels training sees
    truth: np.ndarray  # the correct labels

    @property
    def classes(self) -> int:
        return int(self.truth.max()) + 1

    @property
    def batch(self) -> int:
        return 64 if len(self.y) > 1000 else 32


def load(name: str) -> Data:
    x, y = LOADERS[name](return_X_y=True)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    return Data(name, x, y.astype(np.int64), y.astype(np.int64))


def with_noise(data: Data, kind: str, rate: float, seed: int) -> tuple[Data, np.ndarray]:
    rng = np.random.default_rng(seed)
    moved = rng.choice(len(data.y), round(rate * len(data.y)), replace=False)
    y = data.truth.copy()
    if kind == "uniform":
        y[moved] = (y[moved] + rng.integers(1, data.classes, len(moved))) % data.classes
    else:
        y[moved] = (y[moved] + 1) % data.classes
    planted = np.zeros(len(y), dtype=bool)
    planted[moved] = True
    return Data(data.name, data.x, y, data.truth), planted


def with_corruption(data: Data, kind: str, seed: int) -> tuple[Data, np.ndarray]:
    rng = np.random.default_rng(seed)
    hit = rng.choice(len(data.y), round(CORRUPT_SHARE * len(data.y)), replace=False)
    x = data.x.copy()
    for i in hit:
        if kind == "gaussian":
            x[i] = rng.standard_normal(x.shape[1])
        elif kind == "permute":
            x[i] = x[i][rng.permutation(x.shape[1])]
        else:
            x[i] = x[i] * 4
    planted = np.zeros(len(data.y), dtype=bool)
    planted[hit] = True
    return Data(data.name, x, data.y, data.truth), planted


def mlp(features: int, classes: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, classes))


Hook = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]


def fit(
    x: np.ndarray,
    y: np.ndarray,
    classes: int,
    batch: int,
    seed: int,
    *,
    tracker: SampleTracker | None = None,
    model: nn.Sequential | None = None,
    at_epoch_end: Callable[[int, nn.Sequential], None] | None = None,
    inject: Hook | None = None,
) -> nn.Sequential:
    """The benchmark's training loop: 40 epochs of Adam, per-sample losses to ``tracker``."""
    model = model or mlp(x.shape[1], classes, seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(1, EPOCHS[-1] + 1):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch):
            ids = order[start : start + batch]
            xb, yb = xs[ids], ys[ids]
            if inject is not None:
                xb, yb = xb.clone(), yb.clone()
                inject(step, ids, xb, yb)
            logits = model(xb)
            losses = functional.cross_entropy(logits, yb, reduction="none")
            opt.zero_grad()
            torch.autograd.backward(losses.mean())
            opt.step()
            if tracker is not None:
                tracker.update(ids, losses, logits=logits, labels=yb)
            step += 1
        if at_epoch_end is not None:
            at_epoch_end(epoch, model)
    return model


@dataclass
class TrackerView:
    scores: np.ndarray
    label_flags: np.ndarray
    any_flags: np.ndarray
    spikes: dict[int, tuple[int, ...]]


def run_tracker(
    data: Data, seed: int, *, watch: bool = False, inject: Hook | None = None
) -> tuple[dict[int, TrackerView], int]:
    """One tracked training run; the tracker's view after each epoch count in EPOCHS."""
    tracker = SampleTracker(
        len(data.y), report_every_steps=10**9, report_every_seconds=float("inf")
    )
    model = mlp(data.x.shape[1], data.classes, seed)
    if watch:
        tracker.watch(model[1])
    views: dict[int, TrackerView] = {}

    def snapshot(epoch: int, _model: nn.Sequential) -> None:
        if epoch in EPOCHS:
            n = len(data.y)
            label, anything = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
            for flag in tracker.flagged():
                anything[flag.sample] = True
                label[flag.sample] |= "label_error" in flag.reasons
            spikes = {s.step: s.samples for s in tracker.spikes()}
            views[epoch] = TrackerView(tracker.scores(), label, anything, spikes)

    fit(
        data.x,
        data.y,
        data.classes,
        data.batch,
        seed,
        tracker=tracker,
        model=model,
        at_epoch_end=snapshot,
        inject=inject,
    )
    return views, tracker.step


class FoldMLPs(nn.Module):
    """One copy of the benchmark MLP per fold, trained side by side as batched matmuls
    (Adam works element by element, so this is the same as training them one by one)."""

    def __init__(self, folds: int, features: int, classes: int, seed: int) -> None:
        super().__init__()
        first, second = [], []
        for f in range(folds):
            torch.manual_seed(seed + f)  # as mlp() initialises its layers
            first.append(nn.Linear(features, HIDDEN))
            second.append(nn.Linear(HIDDEN, classes))
        self.w1 = nn.Parameter(torch.stack([m.weight.detach().T for m in first]))
        self.b1 = nn.Parameter(torch.stack([m.bias.detach() for m in first]).unsqueeze(1))
        self.w2 = nn.Parameter(torch.stack([m.weight.detach().T for m in second]))
        self.b2 = nn.Parameter(torch.stack([m.bias.detach() for m in second]).unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [folds, batch, features]
        hidden = torch.relu(torch.baddbmm(self.b1, x, self.w1))
        return torch.baddbmm(self.b2, hidden, self.w2)

    def one(self, fold: int, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(x @ self.w1[fold] + self.b1[fold])
        return hidden @ self.w2[fold] + self.b2[fold]


def cv_probs_mlp(data: Data, seed: int) -> Probs:
    """5-fold cross-validated probabilities of the benchmark MLP after 10 and 40 epochs.

    Every fold's epoch has the same number of batches of the same size (a fold's shuffled
    training samples, wrapped around to fill the last batch)."""
    splits = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(data.x, data.y))
    models = FoldMLPs(FOLDS, data.x.shape[1], data.classes, seed)
    opt = torch.optim.Adam(models.parameters(), lr=LR)
    xs, ys = torch.from_numpy(data.x), torch.from_numpy(data.y)
    gen = torch.Generator().manual_seed(seed)
    steps = -(-max(len(train) for train, _ in splits) // data.batch)
    probs = {e: np.zeros((len(data.y), data.classes)) for e in EPOCHS}
    for epoch in range(1, EPOCHS[-1] + 1):
        order = []
        for train, _ in splits:
            idx = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
            order.append(idx.repeat(-(-steps * data.batch // len(idx)))[: steps * data.batch])
        batches = torch.stack(order).view(FOLDS, steps, data.batch)
        for s in range(steps):
            ids = batches[:, s]
            logits = models(xs[ids])
            loss = FOLDS * functional.cross_entropy(logits.flatten(0, 1), ys[ids].flatten())
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
        if epoch in EPOCHS:
            with torch.no_grad():
                for f, (_, test) in enumerate(splits):
                    logits = models.one(f, xs[torch.from_numpy(test)])
                    probs[epoch][test] = torch.softmax(logits, 1).numpy()
    return probs


def cv_probs_lr(data: Data, seed: int) -> np.ndarray:
    probs = np.zeros((len(data.y), data.classes))
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(
        data.x, data.y
    ):
        model = LogisticRegression(max_iter=2000).fit(data.x[train], data.y[train])
        probs[test] = model.predict_proba(data.x[test])
    return probs


@dataclass
class Verdict:
    """One method on one run: flags and scores against the planted truth."""

    precision: float
    recall: float
    f1: float
    auroc: float
    p_at_k: float
    flagged_share: float


def verdict(planted: np.ndarray, flags: np.ndarray, scores: np.ndarray) -> Verdict:
    tp = float((flags & planted).sum())
    precision = tp / flags.sum() if flags.any() else 0.0
    recall = tp / planted.sum() if planted.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    k = int(planted.sum())
    if 0 < k < len(planted):
        auroc = float(roc_auc_score(planted, scores))
        p_at_k = float(planted[np.argsort(-scores, kind="stable")[:k]].mean())
    else:
        auroc = p_at_k = float("nan")
    return Verdict(precision, recall, f1, auroc, p_at_k, float(flags.mean()))


def cleanlab_verdict(data: Data, planted: np.ndarray, probs: np.ndarray) -> Verdict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        issues = np.asarray(find_label_issues(data.y, probs), dtype=bool)
        quality = np.asarray(get_label_quality_scores(data.y, probs), dtype=float)
    return verdict(planted, issues, 1 - quality)


@dataclass
class Results:
    """Per setting and method, the verdicts of every seed."""

    label: dict[tuple[str, str], list[Verdict]] = field(default_factory=lambda: defaultdict(list))
    clean: dict[tuple[str, str], list[Verdict]] = field(default_factory=lambda: defaultdict(list))
    corrupt: dict[tuple[str, str], list[Verdict]] = field(default_factory=lambda: defaultdict(list))
    clean_steps: int = 0  # tracked steps of runs without planted problems
    false_alarms: int = 0
    aftermath: int = 0  # spikes within AFTERMATH steps after a planted one
    problem_steps: int = 0  # tracked steps of label-noise and corrupted-input runs
    problem_spikes: int = 0
    drivers: int = 0  # samples reported as driving those spikes
    planted_drivers: int = 0  # of which flipped or corrupted
    spikes: dict[str, Any] = field(default_factory=dict)
    overhead: dict[str, dict[str, float]] = field(default_factory=dict)


METHODS = ("tracker", "cleanlab-LR", "cleanlab-MLP")


def evaluate(
    data: Data, planted: np.ndarray, seed: int, *, watch: bool, use_any_flag: bool, res: Results
) -> dict[str, Verdict]:
    views, steps = run_tracker(data, seed, watch=watch)
    reported = views[EPOCHS[-1]].spikes
    if planted.any():
        res.problem_steps += steps
        res.problem_spikes += len(reported)
        for drivers in reported.values():
            res.drivers += len(drivers)
            res.planted_drivers += int(planted[list(drivers)].sum())
    else:
        res.clean_steps += steps
        res.false_alarms += len(reported)
    lr = cleanlab_verdict(data, planted, cv_probs_lr(data, seed))
    mlp_probs = cv_probs_mlp(data, seed)
    out: dict[str, Verdict] = {}
    for epochs in EPOCHS:
        view = views[epochs]
        flags = view.any_flags if use_any_flag else view.label_flags
        out[f"tracker@{epochs}"] = verdict(planted, flags, view.scores)
        out[f"cleanlab-MLP@{epochs}"] = cleanlab_verdict(data, planted, mlp_probs[epochs])
        out[f"cleanlab-LR@{epochs}"] = lr
    return out


def label_noise(
    res: Results,
    datasets: Sequence[str],
    kinds: Sequence[str],
    rates: Sequence[float],
    seeds: Sequence[int],
) -> None:
    for name, kind, rate, seed in itertools.product(datasets, kinds, rates, seeds):
        if kind == "pair" and name == "breast_cancer":
            continue  # two classes: pair flips are uniform flips
        data, planted = with_noise(load(name), kind, rate, seed)
        for key, v in evaluate(
            data, planted, seed, watch=False, use_any_flag=False, res=res
        ).items():
            method, epochs = key.split("@")
            res.label[(f"{name} {kind} {rate:.0%} · {epochs} ep", method)].append(v)
        print(f"  label noise {name} {kind} {rate:.0%} seed {seed}", flush=True)


def clean_control(res: Results, datasets: Sequence[str], seeds: Sequence[int]) -> None:
    for name, seed in itertools.product(datasets, seeds):
        data = load(name)
        planted = np.zeros(len(data.y), dtype=bool)
        for key, v in evaluate(data, planted, seed, watch=True, use_any_flag=True, res=res).items():
            method, epochs = key.split("@")
            res.clean[(f"{name} · {epochs} ep", method)].append(v)
        print(f"  clean {name} seed {seed}", flush=True)


def corrupted_inputs(res: Results, datasets: Sequence[str], seeds: Sequence[int]) -> None:
    for name, kind, seed in itertools.product(datasets, CORRUPTIONS, seeds):
        data, planted = with_corruption(load(name), kind, seed)
        for key, v in evaluate(data, planted, seed, watch=True, use_any_flag=True, res=res).items():
            method, epochs = key.split("@")
            res.corrupt[(f"{name} {kind} · {epochs} ep", method)].append(v)
        print(f"  corrupted {name} {kind} seed {seed}", flush=True)


class SpikePlanter:
    """Plants a problem into the batches of the given steps: ``strong``, 8 samples with a
    wrong label and ×5 inputs; ``mild``, 4 samples with a wrong label."""

    def __init__(self, strength: dict[int, str]) -> None:
        self.strength = strength
        self.samples: dict[int, set[int]] = {}

    def __call__(self, step: int, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        if step not in self.strength:
            return
        count = 8 if self.strength[step] == "strong" else 4
        y[:count] = (y[:count] + 3) % 10
        if self.strength[step] == "strong":
            x[:count] *= 5
        self.samples[step] = set(ids[:count].tolist())


def spikes(res: Results, seeds: Sequence[int]) -> None:
    base = load("digits")
    steps_per_epoch = -(-len(base.y) // base.batch)
    total = steps_per_epoch * EPOCHS[-1]
    found = {"strong": 0, "mild": 0}
    planted_count = {"strong": 0, "mild": 0}
    sample_hits = {"strong": [0, 0, 0], "mild": [0, 0, 0]}  # planted found, planted, reported
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        at = sorted(rng.choice(np.arange(40, total, 40), SPIKES_PER_RUN, replace=False).tolist())
        strength = {step: ("strong" if i % 2 == 0 else "mild") for i, step in enumerate(at)}
        planter = SpikePlanter(strength)
        views, steps = run_tracker(base, seed, inject=planter)
        res.clean_steps += steps
        reported = views[EPOCHS[-1]].spikes
        after = {a + d for a in strength for d in range(1, AFTERMATH + 1)}
        res.aftermath += len((set(reported) - set(strength)) & after)
        res.false_alarms += len(set(reported) - set(strength) - after)
        for step, kind in strength.items():
            planted_count[kind] += 1
            hits = sample_hits[kind]
            hits[1] += len(planter.samples[step])
            if step in reported:
                found[kind] += 1
                hits[0] += len(planter.samples[step] & set(reported[step]))
                hits[2] += len(reported[step])
        print(f"  spikes seed {seed}", flush=True)
    res.spikes = {
        kind: {
            "planted": planted_count[kind],
            "detected": found[kind],
            "sample_recall": sample_hits[kind][0] / max(sample_hits[kind][1], 1),
            "sample_precision": sample_hits[kind][0] / max(sample_hits[kind][2], 1),
        }
        for kind in found
    }


def timed_step(
    model: nn.Sequential,
    opt: torch.optim.Optimizer,
    tracker: SampleTracker | None,
    x: torch.Tensor,
    y: torch.Tensor,
    first_id: int,
) -> None:
    logits = model(x)
    losses = functional.cross_entropy(logits, y, reduction="none")
    opt.zero_grad()
    torch.autograd.backward(losses.mean())
    opt.step()
    if tracker is not None:
        ids = torch.arange(first_id, first_id + len(y))
        tracker.update(ids, losses, logits=logits, labels=y)


def overhead(res: Results, rounds: int, steps_at_128: int) -> None:
    n = 60_000
    for batch in (128, 1024):
        steps = max(steps_at_128 * 128 // batch, LOG_ENTRIES // batch)
        x = torch.randn(batch, 784)
        y = torch.randint(0, 10, (batch,))
        runs: dict[str, tuple[nn.Sequential, torch.optim.Optimizer, SampleTracker | None]] = {}
        for name in ("plain", "update", "update+watch"):
            torch.manual_seed(0)
            model = nn.Sequential(
                nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
            )
            tracker = None if name == "plain" else SampleTracker(n, report_every_steps=10**9)
            if tracker is not None and name.endswith("watch"):
                tracker.watch(model[3])
            runs[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), tracker)

        times: dict[str, list[float]] = defaultdict(list)
        for r in range(rounds + 1):
            for name in runs:
                start = time.perf_counter()
                model, opt, tracker = runs[name]
                for i in range(steps):
                    timed_step(model, opt, tracker, x, y, (r * steps + i) * batch % n)
                if r:  # the first round warms up
                    times[name].append((time.perf_counter() - start) / steps)
        alone = SampleTracker(n, report_every_steps=10**9)
        logits = runs["plain"][0](x).detach()
        losses = functional.cross_entropy(logits, y, reduction="none")
        update_only: list[float] = []
        span = 4 * LOG_ENTRIES // batch
        id_batches = [torch.arange(i * batch, (i + 1) * batch) % n for i in range(span)]
        for _ in range(rounds):
            start = time.perf_counter()
            for ids in id_batches:
                alone.update(ids, losses, logits=logits, labels=y)
            update_only.append((time.perf_counter() - start) / span)
        base = statistics.median(times["plain"])
        res.overhead[f"batch {batch}"] = {
            "plain step ms": base * 1e3,
            "update alone ms": statistics.median(update_only) * 1e3,
            "step + update ms": statistics.median(times["update"]) * 1e3,
            "step + update + watch ms": statistics.median(times["update+watch"]) * 1e3,
            "overhead %": (statistics.median(times["update"]) / base - 1) * 100,
            "overhead with watch %": (statistics.median(times["update+watch"]) / base - 1) * 100,
        }


def mean(values: Iterator[float] | list[float]) -> float:
    finite = [v for v in values if v == v]
    return float(np.mean(finite)) if finite else float("nan")


def prf(verdicts: list[Verdict]) -> str:
    p, r, f = (mean([getattr(v, k) for v in verdicts]) for k in ("precision", "recall", "f1"))
    return f"{p:.2f}/{r:.2f}/{f:.3f}"


def per_setting(table: dict[tuple[str, str], list[Verdict]]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for (setting, method), verdicts in table.items():
        row = rows.setdefault(setting, {})
        row[f"{method} P/R/F1"] = prf(verdicts)
    for (setting, method), verdicts in table.items():
        rows[setting][f"{method} AUROC"] = mean([v.auroc for v in verdicts])
    for (setting, method), verdicts in table.items():
        if method == "tracker":
            rows[setting]["tracker P@K"] = mean([v.p_at_k for v in verdicts])
    return rows


def averaged(table: dict[tuple[str, str], list[Verdict]]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for epochs in EPOCHS:
        for method in METHODS:
            picked = [
                v
                for (setting, m), vs in table.items()
                if m == method and setting.endswith(f"· {epochs} ep")
                for v in vs
            ]
            if not picked:
                continue
            rows[f"{method} · {epochs} ep"] = {
                "precision": mean([v.precision for v in picked]),
                "recall": mean([v.recall for v in picked]),
                "F1": mean([v.f1 for v in picked]),
                "AUROC": mean([v.auroc for v in picked]),
                "P@K": mean([v.p_at_k for v in picked]),
            }
    return rows


def clean_rows(table: dict[tuple[str, str], list[Verdict]]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for (setting, method), verdicts in table.items():
        rows.setdefault(setting, {})[f"{method} flagged %"] = 100 * mean(
            [v.flagged_share for v in verdicts]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="digits only, 20% noise, one seed")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    seeds = list(range(1 if args.quick else args.seeds))
    datasets = ["digits"] if args.quick else list(LOADERS)
    res = Results()
    print("label noise", flush=True)
    label_noise(res, datasets, ("uniform", "pair"), (0.2,) if args.quick else RATES, seeds)
    print("clean control", flush=True)
    clean_control(res, datasets, seeds)
    print("corrupted inputs", flush=True)
    corrupted_inputs(res, datasets, seeds)
    print("spikes", flush=True)
    spikes(res, seeds)
    print("overhead", flush=True)
    overhead(res, rounds=3 if args.quick else 5, steps_at_128=LOG_ENTRIES // 128)
    elapsed = time.perf_counter() - began

    tables = {
        "Label noise, per setting (mean of seeds; flags P/R/F1, AUROC of scores)": per_setting(
            res.label
        ),
        "Label noise, averaged over settings": averaged(res.label),
        "Clean control: share of samples flagged": clean_rows(res.clean),
        "Corrupted inputs, correct labels (flags: any reason)": per_setting(res.corrupt),
        "Corrupted inputs, averaged": averaged(res.corrupt),
        "Spikes: planted batches": res.spikes,
        "Per-step cost": res.overhead,
    }
    for title, rows in tables.items():
        print_table(title, rows)
    per_10k = res.false_alarms / max(res.clean_steps, 1) * 10_000
    noisy_per_10k = res.problem_spikes / max(res.problem_steps, 1) * 10_000
    planted_share = res.planted_drivers / max(res.drivers, 1)
    print(
        f"\nfalse alarms in runs without planted problems: {res.false_alarms} in "
        f"{res.clean_steps} steps ({per_10k:.2f} per 10k steps), not counting "
        f"{res.aftermath} in the {AFTERMATH} steps after a planted batch\n"
        f"spikes in label-noise and corrupted-input runs: {res.problem_spikes} in "
        f"{res.problem_steps} steps ({noisy_per_10k:.2f} per 10k steps); "
        f"{planted_share:.0%} of their {res.drivers} reported samples are flipped or corrupted"
    )
    print(f"took {elapsed:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "tables": tables,
                    "false_alarms": res.false_alarms,
                    "false_alarm_steps": res.clean_steps,
                    "aftermath_spikes": res.aftermath,
                    "false_alarms_per_10k_steps": per_10k,
                    "problem_run_spikes": res.problem_spikes,
                    "problem_run_steps": res.problem_steps,
                    "problem_run_spike_samples": res.drivers,
                    "problem_run_spike_samples_planted": res.planted_drivers,
                    "seconds": elapsed,
                    "quick": args.quick,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
