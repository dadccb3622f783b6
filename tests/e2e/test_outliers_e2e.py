"""A real run writes a tracker's findings; the real daemon announces them and the CLI lists them."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab, wait_until

pytestmark = pytest.mark.slow

FLAGS = """
import json, os, sys, time
from pathlib import Path

def wait_for(path):
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            sys.exit(f"{path} never appeared")
        time.sleep(0.02)

def put(name, *records, tail=""):
    with open(Path(os.environ["LABMIND_RUN_DIR"]) / name, "a") as out:
        out.write("".join(json.dumps(r) + "\\n" for r in records) + tail)

def flag(sample, score, reason, step):
    return {"time": time.time(), "step": step, "epoch": 0, "sample": sample, "score": score,
            "reasons": [reason], "label": 1, "predicted": 4, "detail": {"loss": score}}

wait_for(sys.argv[1])
put("outliers.jsonl", flag(7, 3.0, "label_error", 10), flag(2, 1.5, "corrupted_input", 10))
put("spikes.jsonl",
    {"time": time.time(), "step": 12, "loss": 8.0, "baseline": 0.5, "z": 15.0, "samples": [7, 2]})
print("first findings written", flush=True)
wait_for(sys.argv[2])
put("outliers.jsonl", "not json", flag(7, 9.0, "spike", 30), flag(11, 4.0, "forgotten", 30),
    tail='{"time": 1, "step": 31, "sample"')
"""


class Events:
    """The daemon's event stream, collected on a thread."""

    def __init__(self, lab: Lab) -> None:
        self.items: list[dict[str, Any]] = []
        self._client = lab.client()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for event in self._client.events():
            self.items.append(event.model_dump())

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in list(self.items) if e["type"] == kind]


def test_a_runs_flags_are_announced_and_listed(lab: Lab, tmp_path: Path) -> None:
    lab.configure("[embedder]\nenabled = false\n")
    (tmp_path / "flags.py").write_text(FLAGS)
    first, second = tmp_path / "go-1", tmp_path / "go-2"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps(
            {
                "name": "flags",
                "command": f"{sys.executable} flags.py {{first}} {{second}}",
                "params": {"fixed": {"first": str(first), "second": str(second)}},
                "retry": {"max_attempts": 1},
            }
        )
    )
    lab.cli("start")
    events = Events(lab)
    [run] = lab.json("exp", "submit", str(spec))["runs"]
    assert wait_until(lambda: bool(events.of("experiment")), timeout=30)

    first.touch()
    assert wait_until(lambda: bool(events.of("outliers")), timeout=30)
    while_running = lab.json("outliers", run["id"])
    second.touch()
    done = json.loads(lab.cli("exp", "wait", "--json", "--timeout", "60", check=False).stdout)
    assert wait_until(lambda: sum(e["new"] for e in events.of("outliers")) >= 3, timeout=30)
    listed = lab.json("outliers", run["id"])
    table = lab.cli("outliers", run["id"][:6]).stdout
    spikes_only = lab.json("outliers", run["id"], "--reason", "spike")
    shown = lab.cli("exp", "show", run["id"]).stdout

    assert [r["status"] for r in done] == ["succeeded"]
    announced = events.of("outliers")
    assert {(e["run"], e["attempt"]) for e in announced} == {(run["id"], 1)}
    assert [e["new"] for e in announced if e["new"]] == [2, 1]
    assert next(e for e in announced if e["new"])["reasons"] == {
        "label_error": 1,
        "corrupted_input": 1,
    }
    assert sum(e["spikes"] for e in announced) == 1
    assert sum((Counter(e["reasons"]) for e in announced), Counter()) == {
        "label_error": 1,
        "corrupted_input": 1,
        "forgotten": 1,
    }
    assert [s["sample"] for s in while_running["samples"]] == [7, 2]
    assert [(s["sample"], s["score"], s["reasons"]) for s in listed["samples"]] == [
        (7, 9.0, ["label_error", "spike"]),
        (11, 4.0, ["forgotten"]),
        (2, 1.5, ["corrupted_input"]),
    ]
    assert listed["flagged"] == 3 and listed["run_dir"].endswith(f"/{run['id']}/1")
    assert [(s["step"], s["samples"]) for s in listed["spikes"]] == [(12, [7, 2])]
    assert [s["sample"] for s in spikes_only["samples"]] == [7]
    assert table.splitlines()[0].startswith(f"run {run['id']} (attempt 1): 3 samples flagged")
    assert f"3 samples flagged (labmind outliers {run['id']})" in shown
    refused = lab.cli("outliers", "no-such-run", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "labmind: no run 'no-such-run'; see `labmind exp ls`"
