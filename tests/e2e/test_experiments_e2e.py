"""Experiments through the real CLI and daemon, with real run processes on CPU slots."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab, wait_until

pytestmark = pytest.mark.slow

TRAIN = """
import argparse, math, sys
from labmind.trainers.track import log

parser = argparse.ArgumentParser()
parser.add_argument("--mode")
parser.add_argument("--lr", type=float)
parser.add_argument("--batch-size", type=int)
args = parser.parse_args()

if args.mode == "oom" and args.batch_size > 32:
    print("Traceback (most recent call last):", file=sys.stderr)
    print('  File "train.py", line 41, in <module>', file=sys.stderr)
    print("    loss = model(batch).sum()", file=sys.stderr)
    print(
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
        "total capacity of 79.15 GiB of which 1.25 GiB is free. Including non-PyTorch memory, "
        "this process has 77.89 GiB memory in use. Of the allocated memory 75.10 GiB is "
        "allocated by PyTorch, and 1.36 GiB is reserved by PyTorch but unallocated.",
        file=sys.stderr,
    )
    sys.exit(1)
if args.mode == "nan" and args.lr > 0.001:
    for step in range(3):
        log(step, loss=float("nan") if step == 2 else 1.0 / (step + 1))
    print("step 2: loss is nan, stopping", file=sys.stderr)
    raise SystemExit("RuntimeError: Loss is NaN at step 2")
if args.mode == "broken":
    print("Traceback (most recent call last):", file=sys.stderr)
    print('  File "train.py", line 3, in <module>', file=sys.stderr)
    print("ModuleNotFoundError: No module named 'flash_attn'", file=sys.stderr)
    sys.exit(1)
for step in range(5):
    log(step, loss=1.0 / (step + 1), lr=args.lr)
print(f"done mode={args.mode} lr={args.lr} batch={args.batch_size}")
"""


def write_spec(folder: Path, runs: list[dict[str, Any]], **extra: Any) -> Path:
    (folder / "train.py").write_text(TRAIN)
    spec = {
        "name": "e2e",
        "command": f"{sys.executable} train.py "
        "--mode {mode} --lr {lr} --batch-size {batch_size}",
        "workdir": ".",
        "params": {"list": runs},
        "retry": {"max_attempts": 3, "batch_size_param": "batch_size", "lr_param": "lr"},
        **extra,
    }
    path = folder / "spec.yaml"
    path.write_text(json.dumps(spec))
    return path


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

    def experiment(self, kind: str) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in self.items
            if e["type"] == "experiment" and e["data"].get("event") == kind
        ]


def test_a_sweep_runs_on_two_slots_and_fixable_failures_are_retried_with_fixes(
    lab: Lab, tmp_path: Path
) -> None:
    lab.configure("[embedder]\nenabled = false\n[experiments]\nslots = 2\n")
    runs = [
        {"mode": "ok", "lr": 0.01, "batch_size": 64},
        {"mode": "ok", "lr": 0.003, "batch_size": 64},
        {"mode": "ok", "lr": 0.001, "batch_size": 64},
        {"mode": "oom", "lr": 0.0001, "batch_size": 64},
        {"mode": "nan", "lr": 0.004, "batch_size": 16},
        {"mode": "broken", "lr": 0.01, "batch_size": 8},
    ]
    spec = write_spec(tmp_path, runs)
    lab.cli("start")
    events = Events(lab)

    submitted = lab.json("exp", "submit", str(spec))
    finished = json.loads(lab.cli("exp", "wait", "--json", "--timeout", "120", check=False).stdout)

    assert len(submitted["runs"]) == 6
    by_mode = {r["params"]["mode"]: r for r in finished if r["params"]["mode"] != "ok"}
    ok = [r for r in finished if r["params"]["mode"] == "ok"]
    assert [r["status"] for r in ok] == ["succeeded"] * 3
    assert all(r["attempt"] == 1 for r in ok)
    oom = by_mode["oom"]
    assert (oom["status"], oom["attempt"], oom["params"]["batch_size"]) == ("succeeded", 2, 32)
    nan = by_mode["nan"]
    assert (nan["status"], nan["attempt"], nan["params"]["lr"]) == ("succeeded", 3, 0.001)
    broken = by_mode["broken"]
    assert (broken["status"], broken["attempt"], broken["failure"]) == (
        "failed",
        1,
        "missing_module",
    )
    detail = lab.json("exp", "show", broken["id"])
    assert "No module named 'flash_attn'" in detail["log_tail"]
    oom_detail = lab.json("exp", "show", oom["id"])
    assert [a["failure"] for a in oom_detail["attempts"]] == ["cuda_oom", None]
    assert "batch_size" in (oom_detail["attempts"][1]["change"] or "")
    ok_detail = lab.json("exp", "show", ok[0]["id"])
    assert ok_detail["metrics"]["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert wait_until(lambda: bool(events.experiment("failed")), timeout=10)
    failed = [e for e in events.experiment("failed") if e["run"] == broken["id"]]
    assert failed and "flash_attn" in failed[-1]["log_tail"]


SLOW = """
import os, sys, time
from pathlib import Path
Path(sys.argv[1]).write_text("started")
time.sleep(float(sys.argv[2]))
with open(sys.argv[3], "a") as out:
    out.write("finished\\n")
sys.exit(int(sys.argv[4]))
"""


def test_runs_survive_a_kill_9_of_the_daemon_and_are_collected_once(
    lab: Lab, tmp_path: Path
) -> None:
    lab.configure("[embedder]\nenabled = false\n[experiments]\nslots = 2\n")
    (tmp_path / "slow.py").write_text(SLOW)
    spec = tmp_path / "slow.yaml"
    spec.write_text(
        "name: slow\n"
        f"command: {sys.executable} slow.py started-{{code}} 3 finished-{{code}} {{code}}\n"
        "params:\n  grid: {code: [0, 3]}\n"
        "retry: {max_attempts: 1}\n"
    )
    lab.json("exp", "submit", str(spec))
    assert wait_until(lambda: all((tmp_path / f"started-{c}").exists() for c in (0, 3)), timeout=60)

    os.kill(lab.pid(), signal.SIGKILL)
    lab.cli("start")
    finished = json.loads(lab.cli("exp", "wait", "--json", "--timeout", "60", check=False).stdout)

    assert sorted(
        (r["params"]["code"], r["status"], r["exit_code"], r["attempt"]) for r in finished
    ) == [
        (0, "succeeded", 0, 1),
        (3, "failed", 3, 1),
    ]
    for code in (0, 3):
        assert (tmp_path / f"finished-{code}").read_text() == "finished\n"


def test_a_bad_spec_is_one_clear_line_and_the_queue_keeps_working(lab: Lab, tmp_path: Path) -> None:
    lab.configure("[embedder]\nenabled = false\n[experiments]\nslots = 2\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncommand: echo {lr}\nparams:\n  grid: {lr: 3}\n")

    refused = lab.cli("exp", "submit", str(bad), check=False)

    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1 and "line" in refused.stderr
    missing = tmp_path / "missing.yaml"
    missing.write_text(
        "name: missing\ncommand: no-such-command-here --x {x}\nparams:\n  grid: {x: [1]}\n"
    )
    [run] = lab.json("exp", "submit", str(missing))["runs"]
    done = json.loads(lab.cli("exp", "wait", "--json", "--timeout", "60", check=False).stdout)
    assert [(r["id"], r["status"], r["exit_code"]) for r in done] == [(run["id"], "failed", 127)]
