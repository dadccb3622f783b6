"""Run every benchmark in turn, writing JSON results to bench/out/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "out"
BENCHMARKS = (
    "cosqa",
    "stdlib",
    "daemon_latency",
    "provenance",
    "chat_import",
    "backup",
    "backup_faults",
    "experiments",
    "child_wait",
    "experiments_stress",
    "tracker",
)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    failed = 0
    for name in BENCHMARKS:
        print(f"== bench.{name}", flush=True)
        cmd = [sys.executable, "-m", f"bench.{name}", "--json", str(OUT / f"{name}.json")]
        failed += subprocess.run(cmd, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
