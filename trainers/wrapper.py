"""Supervises one attempt in a process of its own: ``python -m labmind.trainers.wrapper DIR``.

The run supervisor (:mod:`labmind.trainers.supervisor`) looks after all of a daemon's
attempts in one process; this is the same supervision (:mod:`labmind.trainers.supervision`)
for a single attempt, for when there is no run supervisor. It makes itself a session leader,
holds ``wrapper.lock`` (taken here, or inherited already held through ``--lock-fd``), starts
the command, waits for it and writes ``exit.json``; SIGTERM, SIGINT and SIGHUP sent to it are
passed on to the command's process group. Its own messages go to its stderr, which the
executor points at ``wrapper.log``.

Exit status: 0 when ``exit.json`` was written, 70 when it could not be, 75 when the attempt
is already held by another wrapper or was started before (an attempt runs once).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
from pathlib import Path

from . import run_dir as rd
from .supervision import Ending, NotStarted, StartedBefore, Supervision, say

EX_SOFTWARE = 70
EX_TEMPFAIL = 75


def supervise(run_dir: Path, lock_fd: int | None) -> int:
    """Become the attempt's supervisor: own session, ``wrapper.lock``, then run it once.

    ``lock_fd`` is an inherited fd that already holds the lock (the executor takes it before
    the wrapper exists), or ``None`` to take it here. Returns the wrapper's exit status.
    """
    _detach()
    try:
        lock = _take_lock(run_dir, lock_fd)
    except OSError as exc:
        say(f"cannot lock {run_dir / rd.WRAPPER_LOCK}: {exc.strerror}")
        return EX_SOFTWARE
    if lock is None:
        say(f"another wrapper is already running {run_dir}")
        return EX_TEMPFAIL
    ended: list[Ending] = []
    supervision = Supervision(on_end=ended.append)
    supervision.install()
    try:
        supervision.start(run_dir, lock)
    except StartedBefore as exc:
        say(str(exc))
        return EX_TEMPFAIL
    except NotStarted as exc:
        say(str(exc))
        return EX_SOFTWARE
    supervision.run()
    return 0 if any(e.exit is not None for e in ended) else EX_SOFTWARE


def _detach() -> None:
    """Be a session leader, so that the daemon's session ending does not reach the run."""
    if os.getsid(0) != os.getpid():
        with contextlib.suppress(OSError):
            os.setsid()


def _take_lock(run_dir: Path, lock_fd: int | None) -> int | None:
    """Hold ``wrapper.lock`` for life; ``None`` when another wrapper holds it."""
    if lock_fd is not None:
        return lock_fd
    fd = os.open(run_dir / rd.WRAPPER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labmind.trainers.wrapper")
    parser.add_argument("run_dir", type=Path, help="the attempt's run folder (with command.json)")
    parser.add_argument(
        "--lock-fd", type=int, default=None, help="an inherited fd that holds wrapper.lock"
    )
    args = parser.parse_args(argv)
    return supervise(args.run_dir.absolute(), args.lock_fd)


if __name__ == "__main__":
    sys.exit(main())
