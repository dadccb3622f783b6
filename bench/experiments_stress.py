"""Kill -9 the daemon while experiment runs are in flight, restart it, many times over.

A real daemon in a throwaway LABMIND_HOME (``[experiments] slots = 2``; embedder, backups
and chat auto-import off). Each cycle submits a spec of ``--runs-per-cycle`` (4) runs
with ``labmind exp submit``; each run sleeps 1-3 s and ends with a chosen outcome:

* ``ok``: exits 0 (1 attempt);
* ``fail``: exits 1, 2 or 3 with nothing a fixer knows (failed, 1 attempt);
* ``flaky``: its first attempt prints a real NCCL error and exits 1 (transient: retried
  as is), the second exits 0 (succeeded, 2 attempts).

Every attempt appends ``start <attempt> <pid>`` to the run's own file when it begins and
``end <attempt> <code>`` just before it exits. The cycle waits until one of its runs has
begun, then, at random, either waits 0-2.5 s more (a "running" kill: runs are mid-way) or
waits for the next ``end`` line of any run and 20-200 ms more (a "launch" kill: the daemon
is collecting that run and starting the next one, whose wrapper takes ~0.1 s to start);
then it ``kill -9``s the daemon (pid from its pid file), counts in the dead daemon's store
the runs ``starting`` (an attempt being launched) and ``running``, and starts the daemon
again with ``labmind start``; the next cycle does not wait for the runs.

After the last cycle it waits for the queue to drain, then checks every run:

* lost: not in ``exp ls``, recorded as ``lost``/``start_failed``, or an expected attempt
  without its ``start``/``end`` lines;
* duplicated: an attempt that began more than once, or an attempt beyond the expected;
* wrong exit status: the recorded status or exit code (of the run, or of any attempt in
  ``exp show``) differs from the one chosen;
* wrong attempts: ``attempt`` or the attempts of ``exp show`` are not the expected count;
* stuck: still queued or running when the queue should have drained.

    python -m bench.experiments_stress [--cycles 50] [--runs-per-cycle 4] [--seed 0]
        [--json out.json]

Exits 1 when any run is lost, duplicated, wrong or stuck.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from labmind.daemon.protocol import RunInfo
from labmind.trainers import run_dir as rd

from .daemon_latency import Daemon
from .report import print_table

CONFIG = (
    "[embedder]\nenabled = false\n"
    "[experiments]\nslots = 2\n"
    "[backup]\nenabled = false\n"
    "[chats]\nauto_import = false\n"
)
JOB = """
import os, sys, time

out, key, sleep, code, mode = sys.argv[1:6]
attempt = int(os.path.basename(os.environ["LABMIND_RUN_DIR"]))
code = int(code)


def note(line):
    with open(os.path.join(out, key + ".log"), "a") as handle:
        handle.write(line + "\\n")


note(f"start {attempt} {os.getpid()}")
time.sleep(float(sleep))
if mode == "flaky" and attempt == 1:
    sys.stderr.write(
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
        "ProcessGroupNCCL.cpp:2027, unhandled system error, NCCL version 2.21.5\\n"
        "ncclSystemError: System call (e.g. socket, malloc) or external library call failed "
        "or device error.\\n"
    )
    code = 1
note(f"end {attempt} {code}")
sys.exit(code)
"""
OUTCOMES = (("ok", 0), ("ok", 0), ("fail", 1), ("fail", 2), ("fail", 3), ("flaky", 0))
DONE = frozenset({"succeeded", "failed", "cancelled", "needs_approval"})
STARTED_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 600.0
KILL_DELAY_S = (0.0, 2.5)
LAUNCH_DELAY_S = (0.02, 0.2)


@dataclass
class Planned:
    """One run as the bench chose it."""

    key: str
    cycle: int
    mode: str
    code: int
    sleep: float

    @property
    def attempts(self) -> int:
        return 2 if self.mode == "flaky" else 1

    @property
    def status(self) -> str:
        return "failed" if self.mode == "fail" else "succeeded"

    @property
    def attempt_codes(self) -> list[int]:
        return [1, 0] if self.mode == "flaky" else [self.code]


@dataclass
class Cycle:
    cycle: int
    kill: str = "running"
    waited_s: float = 0.0
    delay_s: float = 0.0
    starting_at_kill: int = 0
    """Runs the dead daemon's store calls ``starting``: killed while launching them."""
    running_at_kill: int = 0
    queued_at_kill: int = 0
    in_flight_files: int = 0
    restart_s: float = 0.0


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong_exit: list[str] = field(default_factory=list)
    wrong_attempts: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.duplicated or self.wrong_exit or self.wrong_attempts or self.stuck
        )


def write_spec(folder: Path, out: Path, cycle: int, planned: list[Planned]) -> Path:
    job = folder / "job.py"
    command = f"{shlex.join([sys.executable, '-I', '-S', str(job), str(out)])} "
    spec = {
        "name": f"stress-{cycle}",
        "command": command + "{key} {sleep} {code} {mode}",
        "workdir": str(folder),
        "params": {
            "list": [
                {"key": p.key, "sleep": p.sleep, "code": p.code, "mode": p.mode} for p in planned
            ]
        },
        "retry": {"max_attempts": 2},
    }
    path = folder / f"stress-{cycle}.yaml"
    path.write_text(json.dumps(spec))
    return path


def lines(out: Path, key: str) -> list[list[str]]:
    path = out / f"{key}.log"
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def begun(out: Path, planned: list[Planned]) -> bool:
    return any(any(w[0] == "start" for w in lines(out, p.key)) for p in planned)


def end_lines(out: Path, planned: list[Planned]) -> int:
    return sum(w[0] == "end" for p in planned for w in lines(out, p.key))


def unfinished(out: Path, planned: list[Planned]) -> list[Planned]:
    """Runs that have not written all their ``end`` lines yet."""
    return [p for p in planned if end_lines(out, [p]) < p.attempts]


def statuses_in_store(daemon: Daemon) -> collections.Counter[str]:
    """Run statuses as the (dead) daemon's store has them."""
    uri = f"{daemon.paths.store_file.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    return collections.Counter({str(status): int(count) for status, count in rows})


def in_flight(out: Path, planned: list[Planned]) -> int:
    """Attempts that have begun and not ended, by their files."""
    count = 0
    for p in planned:
        words = lines(out, p.key)
        count += sum(w[0] == "start" for w in words) - sum(w[0] == "end" for w in words)
    return count


def daemon_pid(daemon: Daemon) -> int:
    return int(daemon.paths.pid_file.read_text().strip())


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie counts as gone)."""
    return rd.process_start_time(pid) is None


def kill_9(daemon: Daemon) -> None:
    pid = daemon_pid(daemon)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not gone(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"daemon {pid} is still there 10 s after SIGKILL")
        time.sleep(0.01)


def run_cycle(
    daemon: Daemon,
    folder: Path,
    out: Path,
    number: int,
    rng: random.Random,
    per_cycle: int,
    earlier: list[Planned],
) -> tuple[Cycle, list[Planned]]:
    planned: list[Planned] = []
    for i in range(per_cycle):
        mode, code = rng.choice(OUTCOMES)
        planned.append(Planned(f"c{number}-r{i}", number, mode, code, round(rng.uniform(1, 3), 1)))
    spec = write_spec(folder, out, number, planned)
    cycle = Cycle(number)
    daemon.cli("exp", "submit", str(spec), "--json")
    started = time.monotonic()
    while not begun(out, planned):
        if time.monotonic() - started > STARTED_TIMEOUT_S:
            raise RuntimeError(f"cycle {number}: no run began in {STARTED_TIMEOUT_S:g} s")
        time.sleep(0.02)
    if rng.random() < 0.5:
        cycle.kill = "launch"
        watched = unfinished(out, earlier + planned)
        ended = end_lines(out, watched)
        while end_lines(out, watched) == ended:
            if time.monotonic() - started > STARTED_TIMEOUT_S:
                raise RuntimeError(f"cycle {number}: no run ended in {STARTED_TIMEOUT_S:g} s")
            time.sleep(0.005)
        cycle.delay_s = round(rng.uniform(*LAUNCH_DELAY_S), 3)
    else:
        cycle.delay_s = round(rng.uniform(*KILL_DELAY_S), 2)
    cycle.waited_s = time.monotonic() - started
    time.sleep(cycle.delay_s)
    kill_9(daemon)
    statuses = statuses_in_store(daemon)
    cycle.starting_at_kill = statuses["starting"]
    cycle.running_at_kill = statuses["running"]
    cycle.queued_at_kill = statuses["queued"]
    cycle.in_flight_files = in_flight(out, planned)
    restarted = time.monotonic()
    daemon.cli("start", timeout=120)
    cycle.restart_s = time.monotonic() - restarted
    return cycle, planned


def drain(daemon: Daemon, timeout: float) -> list[RunInfo]:
    deadline = time.monotonic() + timeout
    with daemon.client() as client:
        while True:
            runs = client.exp_runs()
            if all(r.status in DONE for r in runs) or time.monotonic() > deadline:
                return runs
            time.sleep(0.5)


def verify(daemon: Daemon, out: Path, planned: list[Planned], runs: list[RunInfo]) -> Verdict:
    verdict = Verdict()
    by_key: dict[str, list[RunInfo]] = collections.defaultdict(list)
    for run in runs:
        by_key[str(run.params.get("key"))].append(run)
    with daemon.client() as client:
        for p in planned:
            found = by_key.get(p.key, [])
            if len(found) != 1:
                (verdict.lost if not found else verdict.duplicated).append(
                    f"{p.key}: {len(found)} runs in exp ls"
                )
                continue
            run = found[0]
            if run.status not in DONE:
                verdict.stuck.append(f"{p.key} ({run.id}): {run.status}")
                continue
            if run.failure in ("lost", "start_failed"):
                verdict.lost.append(f"{p.key} ({run.id}): {run.failure}: {run.summary}")
            words = lines(out, p.key)
            starts = collections.Counter(int(w[1]) for w in words if w[0] == "start")
            ends = collections.Counter(int(w[1]) for w in words if w[0] == "end")
            for attempt in range(1, p.attempts + 1):
                if starts[attempt] == 0 or ends[attempt] == 0:
                    verdict.lost.append(
                        f"{p.key} ({run.id}) attempt {attempt}: "
                        f"{starts[attempt]} start, {ends[attempt]} end lines"
                    )
            extra = {a: c for a, c in starts.items() if c > 1 or a > p.attempts}
            if extra:
                verdict.duplicated.append(f"{p.key} ({run.id}): attempts began {dict(starts)}")
            detail = client.exp_run(run.id)
            recorded = [a.exit_code for a in detail.attempts]
            if (run.status, run.exit_code) != (p.status, p.attempt_codes[-1]) or (
                recorded != p.attempt_codes
            ):
                verdict.wrong_exit.append(
                    f"{p.key} ({run.id}): {run.status} exit {run.exit_code}, attempts {recorded}"
                    f"; chosen {p.status} {p.attempt_codes}"
                )
            if run.attempt != p.attempts or len(detail.attempts) != p.attempts:
                verdict.wrong_attempts.append(
                    f"{p.key} ({run.id}): attempt {run.attempt}, {len(detail.attempts)} "
                    f"recorded; expected {p.attempts}"
                )
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--runs-per-cycle", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="lmb-stress-", dir="/tmp"))
    out = folder / "out"
    out.mkdir()
    (folder / "job.py").write_text(JOB)
    daemon = Daemon.create(CONFIG)
    cycles: list[Cycle] = []
    planned: list[Planned] = []
    began = time.monotonic()
    try:
        daemon.start()
        for number in range(args.cycles):
            cycle, chosen = run_cycle(
                daemon, folder, out, number, rng, args.runs_per_cycle, planned
            )
            cycles.append(cycle)
            planned.extend(chosen)
            print(
                f"cycle {number}: {cycle.kill} kill after {cycle.waited_s + cycle.delay_s:.2f} s "
                f"with {cycle.starting_at_kill} starting, {cycle.running_at_kill} running, "
                f"{cycle.queued_at_kill} queued; restart {cycle.restart_s:.2f} s",
                flush=True,
            )
        drained_at = time.monotonic()
        runs = drain(daemon, DRAIN_TIMEOUT_S)
        drain_s = time.monotonic() - drained_at
        time.sleep(3.0)  # anything started late would have begun writing by now
        verdict = verify(daemon, out, planned, runs)
        daemon.stop()
    finally:
        daemon.kill()
        shutil.rmtree(folder, ignore_errors=True)
    modes = collections.Counter(p.mode for p in planned)
    summary = {
        "result": {
            "cycles": len(cycles),
            "runs": len(planned),
            "attempts": sum(p.attempts for p in planned),
            "lost": len(verdict.lost),
            "duplicated": len(verdict.duplicated),
            "wrong_exit_status": len(verdict.wrong_exit),
            "wrong_attempts": len(verdict.wrong_attempts),
            "stuck": len(verdict.stuck),
        }
    }
    kills = {
        "kills": {
            "kills": len(cycles),
            "launch_kills": sum(c.kill == "launch" for c in cycles),
            "with_a_run_starting": sum(c.starting_at_kill > 0 for c in cycles),
            "with_runs_running": sum(c.running_at_kill > 0 for c in cycles),
            "running_at_kill_mean": sum(c.running_at_kill for c in cycles) / len(cycles),
            "queued_at_kill_mean": sum(c.queued_at_kill for c in cycles) / len(cycles),
            "restart_s_mean": sum(c.restart_s for c in cycles) / len(cycles),
            "restart_s_max": max(c.restart_s for c in cycles),
            "drain_s": drain_s,
            "total_s": time.monotonic() - began,
        }
    }
    print(f"\nruns by outcome: {dict(modes)}")
    print_table(f"Kill -9 stress: {len(cycles)} cycles, {args.runs_per_cycle} runs each", summary)
    print_table("Kills", kills)
    problems = {
        "lost": verdict.lost,
        "duplicated": verdict.duplicated,
        "wrong_exit_status": verdict.wrong_exit,
        "wrong_attempts": verdict.wrong_attempts,
        "stuck": verdict.stuck,
    }
    for name, items in problems.items():
        for item in items:
            print(f"{name}: {item}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    **summary,
                    **kills,
                    "problems": problems,
                    "cycles": [asdict(c) for c in cycles],
                    "runs": [asdict(p) for p in planned],
                },
                indent=2,
            )
        )
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
