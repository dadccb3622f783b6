"""How a parent learns that its commands ended: blocked in ``waitid`` or woken by SIGCHLD.

N trivial commands (``/bin/sh -c '<this python> -I -S -c pass'``, as the queue runs them),
two at a time, started with ``posix_spawn`` by one Python process that waits for them:

* ``waitid``: a thread blocked in ``waitid(P_ALL, WEXITED | WNOWAIT)`` collects and starts
  the next (the run supervisor's way);
* ``SIGCHLD``: the main thread in ``select`` on the signal wake-up fd, woken by SIGCHLD
  (the supervisor's way before);
* ``waitpid``: the main thread blocked in ``waitpid(-1)`` (what ``xargs`` does).

Alternated ``--repeats`` times (default 3); prints the median wall time and the share of the
machine's cores left idle meanwhile, per way.

    python -m bench.child_wait [--json out.json] [--runs 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from .report import print_table

SLOTS = 2
SHELL = "/bin/sh"


def _spawner() -> Callable[[], int]:
    argv = [SHELL, "-c", f"{sys.executable} -I -S -c pass"]
    env = dict(os.environ)
    return lambda: os.posix_spawn(SHELL, argv, env, setpgroup=0, setsigmask=())


class _Slots:
    """The commands running, started and collected so far."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.spawn = _spawner()
        self.running: set[int] = set()
        self.started = 0
        self.done = 0

    def fill(self) -> None:
        while len(self.running) < SLOTS and self.started < self.n:
            self.running.add(self.spawn())
            self.started += 1

    def collect(self) -> None:
        """Reap every command that has ended (none blocks)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.running.discard(pid)
            self.done += 1


def by_waitid(n: int) -> None:
    slots, lock, over = _Slots(n), threading.Lock(), threading.Event()

    def reaper() -> None:
        while slots.done < n:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            with lock:
                slots.collect()
                slots.fill()
        over.set()

    with lock:
        slots.fill()
    threading.Thread(target=reaper, daemon=True).start()
    over.wait()


def by_sigchld(n: int) -> None:
    slots = _Slots(n)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    previous_fd = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    previous = signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    try:
        slots.fill()
        while slots.done < n:
            select.select([wake_r], [], [])
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
            slots.collect()
            slots.fill()
    finally:
        signal.signal(signal.SIGCHLD, previous)
        signal.set_wakeup_fd(previous_fd)
        os.close(wake_r)
        os.close(wake_w)


def by_waitpid(n: int) -> None:
    slots = _Slots(n)
    slots.fill()
    while slots.done < n:
        pid, _ = os.waitpid(-1, 0)
        slots.running.discard(pid)
        slots.done += 1
        slots.fill()


WAYS: dict[str, Callable[[int], None]] = {
    "waitid thread (the run supervisor)": by_waitid,
    "SIGCHLD wake-up fd + select (before)": by_sigchld,
    "waitpid in the main thread (as xargs)": by_waitpid,
}


def measure(way: Callable[[int], None], n: int) -> tuple[float, float]:
    """Wall seconds, and the share of the cores idle meanwhile (%)."""
    idle0 = psutil.cpu_times().idle
    began = time.perf_counter()
    way(n)
    wall = time.perf_counter() - began
    idle = psutil.cpu_times().idle - idle0
    return wall, 100 * idle / ((psutil.cpu_count() or 1) * wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in WAYS}
    for _ in range(args.repeats):
        for name, way in WAYS.items():
            results[name].append(measure(way, args.runs))
    baseline = statistics.median(
        wall for wall, _ in results["waitpid in the main thread (as xargs)"]
    )
    rows = {
        name: {
            "runs": args.runs,
            "wall_s": statistics.median(wall for wall, _ in runs),
            "x_waitpid": statistics.median(wall for wall, _ in runs) / baseline,
            "idle_pct": statistics.median(idle for _, idle in runs),
        }
        for name, runs in results.items()
    }
    print_table(
        f"{args.runs} trivial commands on {SLOTS} slots: how the parent waits "
        f"(median of {args.repeats}, alternated)",
        rows,
    )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
