"""The baseline for lexical indexing: raw Tantivy adds of whole files, default tokenizer."""

from __future__ import annotations

import time
from pathlib import Path

import tantivy


def raw_index_seconds(files: list[Path], folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("path", stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=False)
    index = tantivy.Index(builder.build(), path=str(folder))
    started = time.perf_counter()
    writer = index.writer(64_000_000, 1)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        writer.add_document(tantivy.Document(path=str(path), body=text))
    writer.commit()
    writer.wait_merging_threads()
    return time.perf_counter() - started
