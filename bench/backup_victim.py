"""A child process that takes snapshots of one repository in a loop, to be killed.

It prints one line per event, flushed, so that a parent can tell where it is:

- ``ready`` once imports are done (detect-secrets included) and before the first snapshot;
- ``snapshot <n> <commit id or -> <created 0|1>`` after every snapshot;
- ``concurrent <message>`` when a snapshot raised `ConcurrentSnapshotError`;
- ``error <type>: <message>`` when a snapshot raised anything else (it goes on);
- ``in-lock`` with ``--stop-in-lock``: the snapshot ref's ``.lock`` is held right now,
  and the process stops itself (SIGSTOP) there so that a SIGKILL lands inside the lock.

It exits after ``--seconds`` or ``--count`` snapshots, or when its stdout is closed.

    python -m bench.backup_victim REPO [--stop-in-lock] [--guards-off] [--seconds 120]
        [--count N]
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from pathlib import Path

import pygit2

from labmind.daemon.backup import ConcurrentSnapshotError, Guards, take_snapshot
from labmind.daemon.backup import snapshot as snapshot_module


def stop_inside_the_ref_lock() -> None:
    """Make every snapshot stop itself once it holds ``<ref>.lock``.

    `update_ref_if_unchanged` reads the ref once it holds the lock; the hook sits on that
    read. It changes no behaviour: it only announces the point and stops the process.
    """
    read_ref = snapshot_module._ref_target

    def announce_then_stop(repo: pygit2.Repository, ref: str) -> pygit2.Oid | None:
        if (Path(repo.path) / f"{ref}.lock").exists():
            print("in-lock", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        return read_ref(repo, ref)

    snapshot_module._ref_target = announce_then_stop


def warm_up() -> None:
    """Import detect-secrets now, so that a kill lands in snapshot work, not in imports."""
    for module in ("detect_secrets.core.scan", "detect_secrets.settings"):
        importlib.import_module(module)


def run(repo: Path, guards: Guards, seconds: float, count: int | None) -> None:
    deadline = time.monotonic() + seconds
    taken = 0
    print("ready", flush=True)
    while time.monotonic() < deadline and (count is None or taken < count):
        try:
            result = take_snapshot(repo, guards=guards)
        except ConcurrentSnapshotError as exc:
            print(f"concurrent {exc}".replace("\n", " "), flush=True)
            continue
        except Exception as exc:  # report and go on: the parent counts these
            print(f"error {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
            continue
        taken += 1
        commit = str(result.commit) if result.commit is not None else "-"
        print(f"snapshot {taken} {commit} {int(result.created)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("repo", type=Path)
    parser.add_argument("--stop-in-lock", action="store_true")
    parser.add_argument("--guards-off", action="store_true", help="let every file through")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    if args.stop_in_lock:
        stop_inside_the_ref_lock()
    warm_up()
    try:
        guards = Guards(allow=("*",)) if args.guards_off else Guards()
        run(args.repo, guards, args.seconds, args.count)
    except BrokenPipeError:
        sys.stderr.close()  # the parent is gone


if __name__ == "__main__":
    main()
