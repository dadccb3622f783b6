"""Importing a large ChatGPT export into a real daemon: time and peak memory.

Writes a synthetic export of about ``--mb`` megabytes (ChatGPT's classic single
``conversations.json`` in a zip, conversations of 10–60 messages with prose, code blocks,
code-interpreter cells and their output, and an edited-away branch in some), starts a
daemon with the embedder off (vectors are a separate, slower stage that runs behind at
nice 10), runs ``labmind import`` and samples the daemon's RSS every 50 ms.

    python -m bench.chat_import [--json out.json] [--mb 200]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from .daemon_latency import Daemon
from .report import print_table

WORDS = [
    "tensor",
    "gradient",
    "batch",
    "loss",
    "optimizer",
    "schedule",
    "warmup",
    "dataset",
    "loader",
    "shuffle",
    "epoch",
    "checkpoint",
    "resume",
    "evaluation",
    "metric",
    "accuracy",
    "precision",
    "recall",
    "embedding",
    "attention",
    "transformer",
    "layer",
    "norm",
    "dropout",
    "residual",
    "convolution",
    "kernel",
    "stride",
    "padding",
    "pooling",
    "sampler",
    "augmentation",
    "tokenizer",
    "vocabulary",
    "sequence",
    "mask",
    "padding",
    "logits",
    "softmax",
    "entropy",
    "divergence",
    "variance",
    "mean",
    "median",
    "quantile",
    "histogram",
    "plot",
    "figure",
    "axis",
    "legend",
    "the",
    "a",
    "of",
    "to",
    "in",
    "and",
    "with",
    "for",
    "on",
    "why",
    "how",
    "does",
    "my",
    "is",
    "not",
    "it",
    "this",
    "that",
    "when",
    "after",
    "before",
]
CODE = [
    "import torch\nfrom torch import nn\n\n\nclass {name}(nn.Module):\n"
    "    def __init__(self, dim: int = {n}) -> None:\n        super().__init__()\n"
    "        self.proj = nn.Linear(dim, dim)\n        self.norm = nn.LayerNorm(dim)\n\n"
    "    def forward(self, x):\n        return self.norm(x + self.proj(x))\n",
    "def {name}(values, window={n}):\n    out = []\n    total = 0.0\n"
    "    for i, v in enumerate(values):\n        total += v\n        if i >= window:\n"
    "            total -= values[i - window]\n        out.append(total / min(i + 1, window))\n"
    "    return out\n",
    "import numpy as np\n\nrng = np.random.default_rng({n})\nx = rng.uniform(size=10_000)\n"
    "y = rng.uniform(size=10_000)\n{name} = np.abs(x - y).mean()\nprint({name})\n",
]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _message(
    node: str, parent: str | None, role: str, content: dict[str, Any], at: float
) -> dict[str, Any]:
    return {
        "id": node,
        "parent": parent,
        "children": [],
        "message": {
            "id": node,
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": at,
            "content": content,
            "status": "finished_successfully",
            "recipient": "python" if content["content_type"] == "code" else "all",
            "metadata": {},
        },
    }


def conversation(rng: random.Random, index: int) -> dict[str, Any]:
    """One synthetic ChatGPT conversation with the fields and shapes of a real export."""
    start = 1_690_000_000 + index * 3_600.0
    mapping: dict[str, Any] = {
        "root": {"id": "root", "parent": None, "children": [], "message": None}
    }
    parent = "root"
    at = start
    for turn in range(rng.randint(5, 30)):
        at += rng.uniform(5, 120)
        node = f"c{index}-u{turn}"
        text = "\n\n".join(_words(rng, rng.randint(8, 40)) for _ in range(rng.randint(1, 3)))
        mapping[node] = _message(
            node, parent, "user", {"content_type": "text", "parts": [text]}, at
        )
        mapping[parent]["children"].append(node)
        parent = node
        at += rng.uniform(5, 60)
        node = f"c{index}-a{turn}"
        code = rng.choice(CODE).format(name=f"fn_{index}_{turn}", n=rng.randint(2, 512))
        reply = "\n\n".join(_words(rng, rng.randint(20, 90)) for _ in range(rng.randint(2, 6)))
        if rng.random() < 0.5:
            reply += f"\n\n```python\n{code}```\n\n" + _words(rng, 30)
            content = {"content_type": "text", "parts": [reply]}
        else:
            content = {"content_type": "code", "language": "python", "text": code}
        mapping[node] = _message(node, parent, "assistant", content, at)
        mapping[parent]["children"].append(node)
        parent = node
    return {
        "title": _words(rng, rng.randint(2, 6))[:-1],
        "create_time": start,
        "update_time": at,
        "mapping": mapping,
        "current_node": parent,
        "conversation_id": f"bench-{index:06d}",
        "id": f"bench-{index:06d}",
        "default_model_slug": "gpt-4o",
    }


def _conversations(seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    index = 0
    while True:
        yield conversation(rng, index)
        index += 1


def write_export(target: Path, megabytes: float, seed: int = 7) -> tuple[int, int]:
    """A zip holding conversations.json of about ``megabytes``; (conversations, bytes)."""
    limit = int(megabytes * 1_000_000)
    written = count = 0
    with (
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("conversations.json", "w", force_zip64=True) as out,
    ):
        out.write(b"[")
        for conv in _conversations(seed):
            data = json.dumps(conv).encode()
            out.write((b"," if count else b"") + data)
            written += len(data) + 1
            count += 1
            if written >= limit:
                break
        out.write(b"]")
    return count, written + 1


class RssSampler:
    """Peak resident memory of a process and its children, sampled on a thread."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self._stop.wait(self.every_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--mb", type=float, default=200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lmb-chats-") as tmp:
        export = Path(tmp) / "chatgpt-export.zip"
        started = time.perf_counter()
        conversations, size = write_export(export, args.mb)
        print(
            f"wrote {conversations} conversations, {size / 1e6:.0f} MB in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        daemon = Daemon.create("[embedder]\nenabled = false\n[chats]\nauto_import = false\n")
        try:
            daemon.start()
            idle_rss = psutil.Process(daemon.pid).memory_info().rss
            with RssSampler(daemon.pid) as sampler:
                started = time.perf_counter()
                job = json.loads(daemon.cli("import", str(export), "--json", timeout=3600))
                import_s = time.perf_counter() - started
            started = time.perf_counter()
            again = json.loads(daemon.cli("import", str(export), "--json", timeout=3600))
            reimport_s = time.perf_counter() - started
            with daemon.client() as client:
                status = client.status()
        finally:
            daemon.stop()
            daemon.kill()
    row = {
        "export_mb": size / 1e6,
        "conversations": float(job["added"]),
        "chunks": float(status.chunks),
        "import_s": import_s,
        "mb_per_s": size / 1e6 / import_s,
        "daemon_idle_rss_mb": idle_rss / 1e6,
        "daemon_peak_rss_mb": sampler.peak / 1e6,
        "reimport_s": reimport_s,
        "reimport_unchanged": float(again["unchanged"]),
    }
    print_table("chat export import (real daemon, embedder off)", {"chatgpt zip": row})
    if args.json:
        args.json.write_text(json.dumps({"import": row}, indent=2))


if __name__ == "__main__":
    main()
