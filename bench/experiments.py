"""The experiment queue against `xargs -P2`: throughput and scheduling latency.

A real daemon in a throwaway LABMIND_HOME with ``[experiments] slots = 2`` (embedder,
backups and chat auto-import off). The trivial run is ``<this python> -I -S -c pass <i>``
(isolated mode, no ``site``: about 12 ms here); both sides run that same command line
through ``/bin/sh -c`` (the queue runs every command so).

Measures in one run:

* **batch**: one spec with a grid of N values (``--runs``, default 500) submitted through
  the API (``DaemonClient.exp_submit``). Wall time from the submit call to the last run
  recorded as finished (``max(ended_at)`` from ``exp_runs``; the bench waits by counting
  ``exit.json`` files, then asks ``exp_runs``, so its polling costs the daemon nothing).
  Compared with the same N command lines through ``xargs -d '\\n' -n1 -P2 /bin/sh -c``,
  median of 3 (one before the batch, two after); ``xargs -n1 -P2 python ...`` without the
  shell is shown for reference. Per run, from the store and the run folders: scheduling
  latency ``started_at - submitted_at``, launch (the store's ``started_at`` to the
  wrapper's ``start.json``; 0 for a run lined up behind another, whose ``started_at`` is
  its ``start.json``'s), the command (``exit.json`` duration), collection (``exit.json``
  to the store's ``ended_at``), slot handover (a run's ``exit.json`` to the next
  ``start.json``: how long a slot stood empty); slot use (the commands' own spans), the
  daemon's CPU, and the whole machine's CPU per run next to ``xargs``'s (the supervisor is
  not the daemon's child, so only the machine's total counts them).
* **idle**: ``--idle`` (20) single-run submits into an idle queue, 0.3 s apart, each waited
  for: submit to ``started_at``, to the wrapper running (``start.json``), to recorded end.
* **profile** (``--no-profile`` skips it): start-up of the run vs a fresh wrapper
  (``python -P -m labmind.trainers.wrapper``) and its heaviest imports; ``LocalExecutor``
  without the daemon on 2 slots, woken by ``watch`` as the queue is, with attempts handed to
  the run supervisor and each under a wrapper process of its own; SQLite writes per run through
  ``ExperimentStore`` and ``write_json_atomic``.

    python -m bench.experiments [--json out.json] [--runs 500] [--idle 20] [--no-profile]
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from labmind.daemon.client import DaemonClient
from labmind.daemon.experiment_store import ExperimentStore, NewRun
from labmind.daemon.protocol import RunInfo
from labmind.daemon.store import Store
from labmind.trainers import run_dir as rd
from labmind.trainers.executor import AttemptSpec, Handle
from labmind.trainers.local_executor import LocalExecutor

from .daemon_latency import Daemon, percentile
from .report import print_table

SLOTS = 2
CONFIG = (
    "[embedder]\nenabled = false\n"
    f"[experiments]\nslots = {SLOTS}\n"
    "[backup]\nenabled = false\n"
    "[chats]\nauto_import = false\n"
)
TRIVIAL = [sys.executable, "-I", "-S", "-c", "pass"]
DONE = frozenset({"succeeded", "failed", "cancelled", "needs_approval"})
DISK_POLL_S = 0.25
IDLE_POLL_S = 0.005
IDLE_GAP_S = 0.3
XARGS_REPEATS = 3
STARTUP_REPEATS = 20
EXECUTOR_RUNS = 200
# What a slimmed, stdlib-only wrapper would have to import at least.
WRAPPER_FLOOR = "import os, sys, json, time, select, signal, fcntl, subprocess"
Row = dict[str, float]


def trivial_command(i: int | str) -> str:
    return f"{shlex.join(TRIVIAL)} {i}"


def write_spec(folder: Path, name: str, values: Sequence[int]) -> Path:
    spec = {
        "name": name,
        "command": trivial_command("{i}"),
        "workdir": str(folder),
        "params": {"grid": {"i": list(values)}},
        "retry": {"max_attempts": 1},
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(spec))
    return path


def ms(seconds: float) -> float:
    return seconds * 1000


def spread(values_s: Sequence[float]) -> Row:
    values = [ms(v) for v in values_s]
    return {
        "p50_ms": percentile(values, 0.5),
        "p95_ms": percentile(values, 0.95),
        "max_ms": max(values, default=0.0),
    }


# --- xargs --------------------------------------------------------------------------------


def xargs_wall(n: int, *, through_sh: bool) -> tuple[float, float]:
    """Seconds for ``xargs -P2`` to run the N trivial commands, and the machine's CPU seconds."""
    if through_sh:
        lines = "".join(f"{trivial_command(i)}\n" for i in range(n))
        argv = ["xargs", "-d", "\n", "-n1", f"-P{SLOTS}", "/bin/sh", "-c"]
    else:
        lines = "".join(f"{i}\n" for i in range(n))
        argv = ["xargs", "-n1", f"-P{SLOTS}", *TRIVIAL]
    started, cpu = time.perf_counter(), machine_cpu_s()
    subprocess.run(argv, input=lines.encode(), check=True)
    return time.perf_counter() - started, machine_cpu_s() - cpu


# --- the daemon ---------------------------------------------------------------------------


def runs_folder(daemon: Daemon) -> Path:
    return daemon.paths.data_dir / "runs"


def wait_done(client: DaemonClient, sweep: str, every: float, timeout: float) -> list[RunInfo]:
    deadline = time.monotonic() + timeout
    while True:
        runs = client.exp_runs(sweep)
        if runs and all(r.status in DONE for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise RuntimeError(f"sweep {sweep}: runs still going after {timeout:g} s")
        time.sleep(every)


def wait_exits_on_disk(folder: Path, ids: Sequence[str], timeout: float) -> None:
    """Until every run's first attempt has its ``exit.json`` (no request to the daemon)."""
    deadline = time.monotonic() + timeout
    left = list(ids)
    while left:
        left = [i for i in left if not (folder / i / "1" / rd.EXIT_FILE).exists()]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(left)} runs have no exit.json after {timeout:g} s")
        time.sleep(DISK_POLL_S)


def attempt_files(daemon: Daemon, run: RunInfo) -> tuple[rd.StartRecord, rd.ExitRecord]:
    folder = rd.attempt_dir(runs_folder(daemon), run.id, run.attempt)
    start, ended = rd.read_start(folder), rd.read_exit(folder)
    if start is None or ended is None:
        raise RuntimeError(f"{folder}: start.json or exit.json is missing")
    return start, ended


def cpu_s(process: psutil.Process) -> float:
    """The daemon's own CPU seconds."""
    times = process.cpu_times()
    return times.user + times.system


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent (every process: supervisor, runs, daemon)."""
    times = psutil.cpu_times()
    return times.user + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)


def queue_batch(daemon: Daemon, folder: Path, n: int, name: str) -> tuple[Row, dict[str, Row]]:
    """The batch's summary, and its per-run phases."""
    spec = write_spec(folder, name, range(n))
    process = psutil.Process(daemon.pid)
    own0, machine0 = cpu_s(process), machine_cpu_s()
    with daemon.client() as client:
        submitted_at = time.time()
        result = client.exp_submit(str(spec))
        submit_s = time.time() - submitted_at
        wait_exits_on_disk(runs_folder(daemon), [r.id for r in result.runs], 60 + n * 2.0)
        runs = wait_done(client, result.sweep, 0.05, timeout=60)
    own1, machine1 = cpu_s(process), machine_cpu_s()
    failed = [r for r in runs if r.status != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} trivial runs did not succeed, e.g. {failed[0]}")
    wall = max(r.ended_at or 0.0 for r in runs) - submitted_at
    sched, launch, command, collect, busy = [], [], [], [], 0.0
    starts, ends = [], []
    for run in runs:
        assert run.started_at is not None and run.ended_at is not None
        start, exit_record = attempt_files(daemon, run)
        sched.append(run.started_at - run.submitted_at)
        launch.append(start.started_at - run.started_at)
        command.append(exit_record.duration_s)
        collect.append(run.ended_at - exit_record.ended_at)
        busy += exit_record.ended_at - start.started_at
        starts.append(start.started_at)
        ends.append(exit_record.ended_at)
    summary = {
        "runs": len(runs),
        "wall_s": wall,
        "runs_per_s": len(runs) / wall,
        "submit_call_ms": ms(submit_s),
        "slot_busy_pct": 100 * busy / (SLOTS * wall),
        "daemon_cpu_ms_per_run": ms((own1 - own0) / n),
        "machine_cpu_ms_per_run": ms((machine1 - machine0) / n),
    }
    phases = {
        "submit -> started_at (scheduling)": spread(sched),
        "started_at -> start.json (launch)": spread(launch),
        "command (exit.json duration)": spread(command),
        "exit.json -> ended_at (collection)": spread(collect),
        "exit.json -> next start.json (slot handover)": spread(handovers(starts, ends)),
    }
    return summary, phases


def handovers(starts: Sequence[float], ends: Sequence[float]) -> list[float]:
    """For every start after the first ``SLOTS``: how long after the latest end before it
    (the time a slot stood empty between two runs)."""
    ordered = sorted(ends)
    gaps = []
    for started in sorted(starts)[SLOTS:]:
        i = bisect.bisect_right(ordered, started)
        if i:
            gaps.append(started - ordered[i - 1])
    return gaps


def idle_latency(daemon: Daemon, folder: Path, count: int) -> dict[str, Row]:
    spec = write_spec(folder, "single", [0])
    sched, to_wrapper, to_end, observed = [], [], [], []
    with daemon.client() as client:
        for _ in range(count):
            time.sleep(IDLE_GAP_S)
            submitted_at, started = time.time(), time.perf_counter()
            result = client.exp_submit(str(spec))
            [run] = wait_done(client, result.sweep, IDLE_POLL_S, timeout=60)
            observed.append(time.perf_counter() - started)
            assert run.started_at is not None and run.ended_at is not None
            start, _ = attempt_files(daemon, run)
            sched.append(run.started_at - run.submitted_at)
            to_wrapper.append(start.started_at - submitted_at)
            to_end.append(run.ended_at - submitted_at)
    return {
        "submit -> started_at (scheduling)": spread(sched),
        "submit -> start.json (wrapper runs)": spread(to_wrapper),
        "submit -> ended_at (recorded end)": spread(to_end),
        "submit call -> seen done (client, 5 ms poll)": spread(observed),
    }


# --- profile ------------------------------------------------------------------------------


def startup_ms(argv: Sequence[str], cwd: Path) -> float:
    """Median wall time of running ``argv`` (``STARTUP_REPEATS`` times)."""
    times = []
    for _ in range(STARTUP_REPEATS):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return ms(statistics.median(times))


def interpreter_startup(folder: Path) -> dict[str, Row]:
    python = sys.executable
    cases: dict[str, list[str]] = {
        "the run: python -I -S -c pass": TRIVIAL,
        "the run via /bin/sh -c (as queued)": ["/bin/sh", "-c", trivial_command(0)],
        "python -P -c pass (site, editable finder)": [python, "-P", "-c", "pass"],
        "python -P -c 'import ...wrapper'": [python, "-P", "-c", "import labmind.trainers.wrapper"],
        "wrapper: python -P -m ...wrapper --help": [
            python,
            "-P",
            "-m",
            "labmind.trainers.wrapper",
            "--help",
        ],
        "floor: python -I -S, the wrapper's stdlib": [python, "-I", "-S", "-c", WRAPPER_FLOOR],
    }
    return {name: {"median_ms": startup_ms(argv, folder)} for name, argv in cases.items()}


def wrapper_imports(top: int = 10) -> dict[str, Row]:
    """The wrapper's heaviest imports (cumulative, ``-X importtime``), two levels deep."""
    proc = subprocess.run(
        [sys.executable, "-P", "-X", "importtime", "-c", "import labmind.trainers.wrapper"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[str, float, float]] = []
    for line in proc.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if found and len(found[3]) <= 5:
            name = "." * (len(found[3]) // 2) + found[4]
            rows.append((name, int(found[1]) / 1000, int(found[2]) / 1000))
    rows.sort(key=lambda r: -r[2])
    return {name: {"self_ms": own, "cumulative_ms": cum} for name, own, cum in rows[:top]}


def attempt_spec(folder: Path, tag: str, i: int) -> AttemptSpec:
    return AttemptSpec(
        run_id=f"{tag}-{i}",
        attempt=1,
        run_dir=folder / tag / str(i),
        command=trivial_command(i),
        cwd=folder,
    )


def slots_loop(executor: LocalExecutor, folder: Path, tag: str, n: int) -> Row:
    """N attempts on 2 slots from one loop that sleeps until ``watch`` says a wrapper ended
    (as the queue does)."""
    ended = threading.Event()
    if not executor.watch(ended.set):
        raise RuntimeError("this platform cannot watch process exits")
    running: list[tuple[Handle, float]] = []
    cycles: list[float] = []
    began, next_i = time.perf_counter(), 0
    while next_i < n or running:
        still = []
        for handle, t0 in running:
            if executor.poll(handle).running:
                still.append((handle, t0))
            else:
                cycles.append(time.perf_counter() - t0)
        running = still
        while len(running) < SLOTS and next_i < n:
            t0 = time.perf_counter()
            running.append((executor.start(attempt_spec(folder, tag, next_i)), t0))
            next_i += 1
        ended.wait(1.0)
        ended.clear()
    wall = time.perf_counter() - began
    return {"n": n, **spread(cycles), "wall_s": wall, "runs_per_s": n / wall}


def executor_alone(folder: Path, n: int, xargs_per_run_s: float) -> dict[str, Row]:
    """LocalExecutor without the daemon on 2 slots: attempts handed to the run supervisor,
    and each under a wrapper process of its own."""
    rows: dict[str, Row] = {}
    for label, supervised in (("the run supervisor", True), ("a wrapper per attempt", False)):
        executor = LocalExecutor(supervisor=supervised)
        try:
            row = slots_loop(executor, folder, "supervised" if supervised else "wrapped", n)
        finally:
            executor.close()
        row["x_xargs"] = row["wall_s"] / (n * xargs_per_run_s)
        rows[f"LocalExecutor, {label}"] = row
    return rows


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median ms of ``fn()``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return ms(statistics.median(times))


def store_writes(folder: Path, n: int) -> dict[str, Row]:
    """What the queue thread does in SQLite per run, on a fresh store."""
    store = Store(folder / "store" / "labmind.db")
    records = ExperimentStore(store)
    runs = [NewRun(f"s-{i}", i, f"t[i={i}]", {"i": i}, trivial_command(i)) for i in range(n)]
    add_ms = timed(
        lambda: records.add_sweep(
            "s",
            name="t",
            spec_path="/x",
            spec={"command": "x"},
            priority=0,
            at=time.time(),
            code_commit=None,
            runs=runs,
        ),
        1,
    )
    queued_ms = timed(records.queued, 20)
    spec_ms = timed(lambda: records.sweep_spec("s"), 200)
    per_run = []
    for i in range(n):
        began = time.perf_counter()
        records.start_attempt(f"s-{i}", 1, f"/runs/{i}", gpus=(), at=time.time())
        records.running(f"s-{i}", pid=1, pgid=1, start_time=1)
        records.finish_attempt(
            f"s-{i}",
            status="succeeded",
            exit_code=0,
            signal=None,
            failure=None,
            summary=None,
            at=time.time(),
        )
        per_run.append(time.perf_counter() - began)
    store.close()
    json_dir = folder / "json"
    json_dir.mkdir()
    atomic_ms = timed(lambda: rd.write_json_atomic(json_dir / "x.json", {"a": 1}), 50)
    return {
        f"add_sweep ({n} runs, once)": {"ms": add_ms},
        f"queued() with {n} queued (every tick)": {"ms": queued_ms},
        "sweep_spec() (per launch)": {"ms": spec_ms},
        "start+running+finish, 3 tx (per run)": {"ms": ms(statistics.median(per_run))},
        "write_json_atomic (x3 per run)": {"ms": atomic_ms},
    }


# --- main ---------------------------------------------------------------------------------


def throughput_row(n: int, wall: float, xargs_s: float) -> Row:
    return {"runs": n, "wall_s": wall, "runs_per_s": n / wall, "x_xargs": wall / xargs_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--idle", type=int, default=20)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--home-parent",
        type=Path,
        default=Path("/tmp"),
        help="Where the daemon's LABMIND_HOME (and so the run folders) is made.",
    )
    args = parser.parse_args()
    n: int = args.runs
    results: dict[str, object] = {"command": trivial_command("<i>"), "slots": SLOTS}
    folder = Path(tempfile.mkdtemp(prefix="lmb-exp-", dir="/tmp"))
    daemon: Daemon | None = None
    try:
        xargs_runs = [xargs_wall(n, through_sh=True)]
        daemon = Daemon.create(CONFIG, args.home_parent)
        daemon.start()
        batch, phases = queue_batch(daemon, folder, n, "batch")
        xargs_runs += [xargs_wall(n, through_sh=True) for _ in range(XARGS_REPEATS - 1)]
        xargs_plain = [xargs_wall(n, through_sh=False)[0] for _ in range(XARGS_REPEATS)]
        idle = idle_latency(daemon, folder, args.idle)
        daemon.stop()
        xargs_s = statistics.median(wall for wall, _ in xargs_runs)
        xargs_cpu_s = statistics.median(cpu for _, cpu in xargs_runs)
        batch["xargs_machine_cpu_ms_per_run"] = ms(xargs_cpu_s / n)
        throughput = {
            f"queue, {SLOTS} slots": throughput_row(n, batch["wall_s"], xargs_s),
            f"xargs -P{SLOTS} sh -c (median of {XARGS_REPEATS})": throughput_row(
                n, xargs_s, xargs_s
            ),
            f"xargs -P{SLOTS} python, no sh (median of {XARGS_REPEATS})": throughput_row(
                n, statistics.median(xargs_plain), xargs_s
            ),
        }
        results.update(throughput=throughput, batch=batch, phases=phases, idle=idle)
        results["xargs_s"] = {"sh": [wall for wall, _ in xargs_runs], "plain": xargs_plain}
        print(f"trivial run: {trivial_command('<i>')}  (both sides: /bin/sh -c LINE)")
        print_table(f"{n} trivial runs: queue ({SLOTS} slots) vs xargs -P{SLOTS}", throughput)
        print_table(f"Queue batch of {n}: slots and CPU", {"batch": batch})
        print_table(f"Queue batch of {n}: per-run phases", phases)
        print_table(f"First run into an idle queue ({args.idle} single-run submits)", idle)

        if not args.no_profile:
            startup = interpreter_startup(folder)
            imports = wrapper_imports()
            runs = min(n, EXECUTOR_RUNS)
            alone = executor_alone(folder / "executor", runs, xargs_s / n)
            writes = store_writes(folder, n)
            results["profile"] = {
                "startup": startup,
                "wrapper_imports": imports,
                "executor_alone": alone,
                "store": writes,
            }
            print_table(f"Profile: process start-up (median of {STARTUP_REPEATS})", startup)
            print_table("Profile: the wrapper's heaviest imports (-X importtime, ms)", imports)
            print_table(f"Profile: {runs} runs on {SLOTS} slots without the daemon", alone)
            print_table("Profile: SQLite and run-folder writes (median)", writes)
    finally:
        if daemon is not None:
            daemon.kill()
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
