"""The Python standard library (tests left out) as a code base no one here wrote.

Measures in one run:
* retrieval: MRR@10, Recall@1/10 of lexical, semantic, hybrid on bench/data/stdlib_queries.json;
* lexical indexing time of labmind (walk, read, chunk, Tantivy, SQLite) vs a raw Tantivy
  add of the same files' text;
* embedding throughput of labmind's worker process vs raw sentence-transformers encode
  of the same chunk texts;
* query latency p50/p95 for lexical and hybrid.

    python -m bench.stdlib [--json out.json] [--embed-sample N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from .metrics import first_relevant_rank, summarize
from .report import print_table

QUERIES = Path(__file__).parent / "data" / "stdlib_queries.json"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EXCLUDE = [
    "site-packages/",
    "test/",
    "tests/",
    "idle_test/",
    "idlelib/",
    "turtledemo/",
    "ensurepip/_bundled/",
    "config-3.*/",
    "lib-dynload/",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def keep_vectors_only(home: Path) -> None:
    """Empty a kept workspace but for its vectors, so indexing is measured from scratch."""
    store = home / "labmind.sqlite3"
    if store.exists():
        with contextlib.closing(sqlite3.connect(store)) as conn:
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("DELETE FROM roots")
            conn.execute("DELETE FROM conversations")
            conn.commit()
    shutil.rmtree(home / "lexical", ignore_errors=True)
    (home / "vectors.usearch").unlink(missing_ok=True)


def main() -> None:
    # Imported here rather than at the top: the scan's worker processes are spawned and
    # import the main module, which for the daemon is the light `labmind.daemon`
    # package; at the top, these made each worker start 0.5 s later than the daemon's.
    from labmind.daemon.config import IndexConfig
    from labmind.indexers.chunk import EMBED_TEXT_CHARS
    from labmind.indexers.embedder import LocalEmbedder
    from labmind.indexers.embedder_worker import WorkerEmbedder

    from .raw_tantivy import raw_index_seconds
    from .workspace import Workspace

    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--embed-sample", type=int, default=3000)
    parser.add_argument(
        "--vectors-from",
        type=Path,
        help="Keep the index's store here and reuse its vectors on the next run "
        "(embedding throughput is then not measured).",
    )
    parser.add_argument(
        "--indexing-only", action="store_true", help="Measure lexical indexing and stop."
    )
    args = parser.parse_args()
    spec = json.loads(QUERIES.read_text())
    root = Path(spec["root"]) if Path(spec["root"]).is_dir() else Path(sys.prefix).parent
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        if args.vectors_from is not None:
            home = args.vectors_from
            keep_vectors_only(home)
        ws = Workspace(
            home,
            None if args.indexing_only else WorkerEmbedder(MODEL, nice=0),
            IndexConfig(max_file_size_mb=4.0, exclude=EXCLUDE),
        )
        times = ws.build(root)
        files = [Path(p) for r in ws.store.roots() for p in ws.store.file_states(r.id)]
        raw_s = raw_index_seconds(files, Path(tmp) / "raw")
        results["indexing"] = {
            "files": float(times.files),
            "chunks": float(times.chunks),
            "labmind_lexical_s": times.lexical_s,
            "raw_tantivy_s": raw_s,
            "ratio": times.lexical_s / raw_s,
        }
        if args.indexing_only:
            ws.close()
            print_table("lexical indexing", {"stdlib": results["indexing"]})
            return
        texts = [f"{r.header}\n{r.text}"[:EMBED_TEXT_CHARS] for r in ws.store.iter_chunks()][
            : args.embed_sample
        ]
        local = LocalEmbedder(MODEL)
        local.embed(texts[:64])
        started = time.perf_counter()
        local.embed(texts)
        raw_rate = len(texts) / (time.perf_counter() - started)
        local.close()
        results["embedding"] = {
            "unique_chunks": float(times.embedded),
            "labmind_s": times.embed_s,
            "labmind_chunks_per_s": times.embedded / times.embed_s if times.embed_s else 0.0,
            "raw_encode_chunks_per_s": raw_rate,
            "ratio": (times.embedded / times.embed_s) / raw_rate if times.embed_s else 0.0,
        }
        ranks: dict[str, dict[str, list[int | None]]] = {}
        latency: dict[str, list[float]] = {"lexical": [], "hybrid": [], "semantic": []}
        for q in spec["queries"]:
            relevant = {str(root / p) for p in q["relevant"]}
            for mode in ("lexical", "semantic", "hybrid"):
                started = time.perf_counter()
                hits = ws.search(q["query"], mode, limit=10)
                latency[mode].append((time.perf_counter() - started) * 1000)
                rank = first_relevant_rank([h.chunk.path for h in hits], relevant)
                for style in ("all", q["style"]):
                    ranks.setdefault(style, {}).setdefault(mode, []).append(rank)
        ws.close()
    for style, by_mode in ranks.items():
        rows = {mode: summarize(r) for mode, r in by_mode.items()}
        n = len(next(iter(by_mode.values())))
        print_table(f"stdlib retrieval, {style} queries ({n})", rows)
        results[f"retrieval_{style}"] = {
            f"{m}_{k}": v for m, row in rows.items() for k, v in row.items()
        }
    lat = {
        mode: {"p50_ms": percentile(v, 0.5), "p95_ms": percentile(v, 0.95)}
        for mode, v in latency.items()
    }
    print_table("query latency (warm, in-process)", lat)
    print_table("lexical indexing", {"stdlib": results["indexing"]})
    print_table("embedding throughput", {"stdlib": results["embedding"]})
    if args.json:
        args.json.write_text(json.dumps({**results, "latency": lat}, indent=2))


if __name__ == "__main__":
    main()
