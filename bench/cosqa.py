"""CoSQA dev: MRR@10 and Recall@1/10 of lexical, semantic, hybrid and plain-RRF search.

Every `code` of the dev split is written to its own file and indexed by labmind's own
pipeline; each `doc` with label 1 is a query whose answer is its code.

    python -m bench.cosqa [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from labmind.indexers.embedder import LocalEmbedder
from labmind.indexers.fusion import rrf

from .metrics import first_relevant_rank, summarize
from .report import print_table
from .workspace import Workspace

DATA = Path(__file__).parent / "data" / "cosqa" / "cosqa-dev.json"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def load(folder: Path) -> list[tuple[str, set[str]]]:
    pairs = json.loads(DATA.read_text())
    by_code: dict[str, list[str]] = {}
    for i, pair in enumerate(pairs):
        path = folder / f"snippet_{i:04d}.py"
        path.write_text(pair["code"] + "\n")
        by_code.setdefault(pair["code"].strip(), []).append(str(path))
    return [
        (pair["doc"], set(by_code[pair["code"].strip()])) for pair in pairs if pair["label"] == 1
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "cosqa"
        corpus.mkdir()
        queries = load(corpus)
        ws = Workspace(Path(tmp) / "home", LocalEmbedder(MODEL))
        ws.build(corpus)
        ranks: dict[str, list[int | None]] = {
            "lexical": [],
            "semantic": [],
            "hybrid": [],
            "rrf": [],
        }
        for query, relevant in queries:
            lists = {}
            for mode in ("lexical", "semantic", "hybrid"):
                hits = ws.search(query, mode, limit=100)
                lists[mode] = [h.chunk.path for h in hits]
                ranks[mode].append(first_relevant_rank(lists[mode][:10], relevant))
            fused = rrf([lists["lexical"], lists["semantic"]])
            order = sorted(fused, key=lambda p: -fused[p])
            ranks["rrf"].append(first_relevant_rank(order[:10], relevant))
        ws.close()
    rows = {name: summarize(r) for name, r in ranks.items()}
    print_table(f"CoSQA dev ({len(queries)} queries)", rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
