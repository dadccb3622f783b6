"""Printing benchmark results as a table and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping


def print_table(title: str, rows: Mapping[str, Mapping[str, float]]) -> None:
    columns = list(next(iter(rows.values())).keys()) if rows else []
    print(f"\n{title}")
    print("| " + " | ".join(["", *columns]) + " |")
    print("|" + "---|" * (len(columns) + 1))
    for name, row in rows.items():
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(json.dumps({"title": title, "rows": rows}))
