"""The run folder of one attempt: file names, atomic JSON records, and robust readers.

An attempt lives in ``<runs>/<run_id>/<attempt>/``::

    command.json   what to run: argv, cwd, env overrides, timeout (written by the executor)
    wrapper.lock   flock'ed by the attempt's supervisor until exit.json is written
    wrapper.log    the supervisor's messages about the attempt (absent or empty unless
                   something failed)
    cancel.request written by the executor before it stops the command (the end is a cancel)
    output.log     the command's stdout and stderr, combined, written straight by the command
    start.json     the supervisor's pid and start time, the command's process group, written
                   once the command runs
    exit.json      exit code or signal, written by the supervisor when the command is over
    metrics.jsonl  what the training script logged with ``labmind.trainers.track.log``
    outliers.jsonl samples the training script's ``SampleTracker`` flagged (see outliers_file.py)
    spikes.jsonl   loss spikes that tracker detected

JSON records are written atomically (temp file in the same folder, rename); a reader treats
a missing, half-written or malformed record as not there. This module is imported by the
wrapper, so it uses the standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

COMMAND_FILE = "command.json"
START_FILE = "start.json"
EXIT_FILE = "exit.json"
OUTPUT_LOG = "output.log"
WRAPPER_LOG = "wrapper.log"
WRAPPER_LOCK = "wrapper.lock"
CANCEL_FILE = "cancel.request"
METRICS_FILE = "metrics.jsonl"

RUN_DIR_ENV = "LABMIND_RUN_DIR"
"""Set in the command's environment to the attempt's run folder."""


def attempt_dir(runs: Path, run_id: str, attempt: int) -> Path:
    """The folder of one attempt of one run: ``<runs>/<run_id>/<attempt>``."""
    if not run_id or "/" in run_id or run_id in {".", ".."}:
        raise ValueError(f"not a usable run id: {run_id!r}")
    return runs / run_id / str(attempt)


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandRecord:
    """``command.json``: the command exactly as the wrapper will start it."""

    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    """Overrides on top of the wrapper's environment (which is the daemon's)."""
    timeout_s: float | None = None
    kill_grace_s: float = 10.0
    """Seconds between SIGTERM and SIGKILL when the command is stopped."""
    shell_command: str | None = None
    """The shell command line when ``argv`` is ``/bin/sh -c <it>`` (for display)."""

    def to_json(self) -> dict[str, Any]:
        return {**_flat(self), "argv": list(self.argv), "env": dict(self.env)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommandRecord | None:
        argv, cwd, env = data.get("argv"), data.get("cwd"), data.get("env", {})
        timeout, grace = data.get("timeout_s"), data.get("kill_grace_s", 10.0)
        shell = data.get("shell_command")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            return None
        if not isinstance(cwd, str) or not isinstance(env, dict):
            return None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            return None
        if timeout is not None and not _is_number(timeout):
            return None
        if not _is_number(grace) or (shell is not None and not isinstance(shell, str)):
            return None
        return cls(
            argv=tuple(argv),
            cwd=cwd,
            env=dict(env),
            timeout_s=None if timeout is None else float(timeout),
            kill_grace_s=float(grace),
            shell_command=shell,
        )


@dataclass(frozen=True)
class StartRecord:
    """``start.json``: who supervises the command, written by its supervisor.

    ``pid``/``start_time`` are the supervisor's (a process that may supervise other attempts
    too; this attempt is alive while its ``wrapper.lock`` is held); ``pgid`` is the command's
    own process group (``None`` when the command could not start). ``start_time`` is a
    process start time from :func:`process_start_time`.
    """

    pid: int
    start_time: int
    pgid: int | None
    child_pid: int | None
    child_start_time: int | None
    host: str
    started_at: float

    def to_json(self) -> dict[str, Any]:
        return _flat(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StartRecord | None:
        ints = ("pid", "start_time")
        optional_ints = ("pgid", "child_pid", "child_start_time")
        if not all(_is_int(data.get(k)) for k in ints):
            return None
        if not all(data.get(k) is None or _is_int(data.get(k)) for k in optional_ints):
            return None
        if not isinstance(data.get("host"), str) or not _is_number(data.get("started_at")):
            return None
        return cls(
            pid=data["pid"],
            start_time=data["start_time"],
            pgid=data.get("pgid"),
            child_pid=data.get("child_pid"),
            child_start_time=data.get("child_start_time"),
            host=data["host"],
            started_at=float(data["started_at"]),
        )


@dataclass(frozen=True)
class ExitRecord:
    """``exit.json``: how the command ended, written by the wrapper as its last act.

    Exactly one of ``exit_code`` and ``signal`` is set: a command killed by a signal has
    ``exit_code = None``. A command that could not start has ``exit_code`` 127 (not found) or
    126 (not runnable) and ``error`` saying why.
    """

    exit_code: int | None
    signal: int | None
    ended_at: float
    duration_s: float
    timed_out: bool = False
    cancelled: bool = False
    """The wrapper was told to stop (SIGTERM/SIGINT/SIGHUP) and passed it on."""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _flat(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExitRecord | None:
        code, sig, error = data.get("exit_code"), data.get("signal"), data.get("error")
        if (code is None) == (sig is None):
            return None
        if not (code is None or _is_int(code)) or not (sig is None or _is_int(sig)):
            return None
        if not (_is_number(data.get("ended_at")) and _is_number(data.get("duration_s"))):
            return None
        if not (
            isinstance(data.get("timed_out", False), bool)
            and (error is None or isinstance(error, str))
        ):
            return None
        return cls(
            exit_code=code,
            signal=sig,
            ended_at=float(data["ended_at"]),
            duration_s=float(data["duration_s"]),
            timed_out=data.get("timed_out", False),
            cancelled=bool(data.get("cancelled", False)),
            error=error,
        )


def _flat(record: object) -> dict[str, Any]:
    """A record of plain fields as a dict (``asdict`` without its deep copies)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}  # type: ignore[arg-type]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- atomic JSON -----------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file, or all of the new one.

    No fsync: these records describe processes of this machine, which a power cut ends as
    well, and the daemon copies what matters into its store as soon as a record appears; a
    record lost with the page cache reads as missing, which is what it then is. The temporary
    file is named for this process and thread (each writes its own), mode 0600.
    """
    with open_folder(path.parent) as folder:
        write_json_at(folder, path.name, data)


def write_json_at(folder: int, name: str, data: Mapping[str, Any]) -> None:
    """:func:`write_json_atomic` of the file ``name`` in the folder open as ``folder``."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    tmp = f".{name}.{os.getpid()}-{threading.get_ident()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=folder)
    try:
        try:
            os.write(fd, text)  # a regular file takes a few hundred bytes whole
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder)
        raise


@contextlib.contextmanager
def open_folder(path: Path) -> Iterator[int]:
    """An fd of the folder ``path`` for the ``*_at`` functions (raises ``OSError``)."""
    folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield folder
    finally:
        os.close(folder)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing, unreadable or malformed."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return _json_object(raw)


def read_json_at(folder: int, name: str) -> dict[str, Any] | None:
    """:func:`read_json` of the file ``name`` in the folder open as ``folder``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _json_object(b"".join(chunks))


def exists_at(folder: int, name: str) -> bool:
    """Whether the folder open as ``folder`` has an entry ``name``."""
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return False
    return True


def write_command(run_dir: Path, record: CommandRecord) -> None:
    write_json_atomic(run_dir / COMMAND_FILE, record.to_json())


def read_command(run_dir: Path) -> CommandRecord | None:
    data = read_json(run_dir / COMMAND_FILE)
    return None if data is None else CommandRecord.from_json(data)


def read_command_at(folder: int) -> CommandRecord | None:
    data = read_json_at(folder, COMMAND_FILE)
    return None if data is None else CommandRecord.from_json(data)


def read_start(run_dir: Path) -> StartRecord | None:
    data = read_json(run_dir / START_FILE)
    return None if data is None else StartRecord.from_json(data)


def read_exit(run_dir: Path) -> ExitRecord | None:
    data = read_json(run_dir / EXIT_FILE)
    return None if data is None else ExitRecord.from_json(data)


# --- processes -------------------------------------------------------------------------------

_PROC = Path("/proc")


def process_start_time(pid: int, *, zombies: bool = False) -> int | None:
    """When ``pid`` started, as an opaque integer; ``None`` if it is gone or (unless
    ``zombies``) a zombie.

    Linux: field 22 of ``/proc/<pid>/stat`` (clock ticks since boot). Elsewhere: ``ps``'s
    elapsed-time based start, in seconds since the epoch. Together with the pid it names one
    process for good: a reused pid has a different start time.
    """
    if pid <= 0:
        return None
    if _has_proc():
        try:
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            raw = os.read(fd, 4096)  # one line, well under a page
        except OSError:
            return None
        finally:
            os.close(fd)
        # The command name (field 2) is in parentheses and may hold spaces or parentheses.
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) < 20 or (fields[0] in {b"Z", b"X"} and not zombies):
            return None
        return int(fields[19])
    return _ps_start_time(pid, zombies=zombies)


@functools.cache
def _has_proc() -> bool:
    """Whether this system has Linux's ``/proc/<pid>/stat`` (looked at once)."""
    return _PROC.joinpath("self", "stat").exists()


def _ps_start_time(pid: int, *, zombies: bool) -> int | None:
    try:
        out = subprocess.run(
            ["ps", "-o", "stat=,etime=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(out) != 2 or (out[0].startswith("Z") and not zombies):
        return None
    days, _, clock = out[1].rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    seconds += int(days or 0) * 86400
    # etime has a one-second resolution: round so that two reads agree.
    return round(time.time() - seconds)


def process_alive(pid: int, start_time: int) -> bool:
    """Whether the process ``pid`` that started at ``start_time`` still runs (pid reuse safe)."""
    now = process_start_time(pid)
    if now is None:
        return False
    if sys.platform.startswith("linux"):
        return now == start_time
    return abs(now - start_time) <= 2


def process_group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a live member (zombies do not count: an
    orphan's zombie may linger where init does not reap)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not _has_proc():
        return True
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        try:
            raw = _PROC.joinpath(entry.name, "stat").read_bytes()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[0] not in {b"Z", b"X"} and int(fields[2]) == pgid:
            return True
    return False


def wrapper_lock_held(run_dir: Path) -> bool:
    """Whether a wrapper holds the attempt's lock, i.e. is alive (even before start.json)."""
    try:
        fd = os.open(run_dir / WRAPPER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing also drops the lock if we took it
    return False


# --- logs and metrics ------------------------------------------------------------------------


def read_log_tail(path: Path, max_bytes: int) -> str:
    """The last ``max_bytes`` of a log (from a line start where possible); ``""`` if none."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read(max_bytes)
    except OSError:
        return ""
    if start > 0:
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data = data[newline + 1 :]
    return data.decode("utf-8", errors="replace")


def read_log(run_dir: Path, offset: int, max_bytes: int) -> bytes:
    """Up to ``max_bytes`` of the attempt's ``output.log`` from byte ``offset`` on (for
    following a log: call again from ``offset + len(result)``); ``b""`` when there is none."""
    try:
        with (run_dir / OUTPUT_LOG).open("rb") as handle:
            handle.seek(offset)
            return handle.read(max_bytes)
    except OSError:
        return b""


MetricRecord = dict[str, float]
"""One line of metrics.jsonl: ``step`` (an int), ``time`` (epoch seconds) and the metrics."""

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def read_metrics(
    path: Path, offset: int = 0, *, max_bytes: int = 16 * 1024 * 1024
) -> tuple[list[MetricRecord], int]:
    """Complete lines of ``metrics.jsonl`` from ``offset`` on, and the offset to read from next.

    Read with :func:`read_json_lines`; lines without an integer ``step`` are skipped.
    ``"nan"``, ``"inf"`` and ``"-inf"`` come back as floats.
    """
    objects, offset = read_json_lines(path, offset, max_bytes=max_bytes)
    return [r for data in objects if (r := _metric(data)) is not None], offset


def read_json_lines(
    path: Path, offset: int = 0, *, max_bytes: int = 16 * 1024 * 1024
) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects on complete lines of ``path`` from ``offset`` on, and the offset to
    read from next.

    Made for following a file that is being appended to: a partial last line is left for the
    next call. Lines that are not a JSON object are skipped. A file shorter than ``offset``
    was replaced, so it is read from the start. At most ``max_bytes`` are read per call; call
    again while the offset moves.
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < offset:
                offset = 0
            handle.seek(offset)
            data = handle.read(max_bytes)
    except OSError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        # A single line longer than max_bytes can never be completed within it: skip it.
        skip = len(data) if len(data) >= max_bytes else 0
        return [], offset + skip
    objects = [o for line in data[:end].split(b"\n") if (o := _json_object(line)) is not None]
    return objects, offset + end + 1


def _json_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object ``line`` holds, or ``None`` when it holds anything else."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _metric(data: dict[str, Any]) -> MetricRecord | None:
    if not _is_int(data.get("step")):
        return None
    record: MetricRecord = {}
    for key, value in data.items():
        if isinstance(value, str) and value in _NON_FINITE:
            record[key] = _NON_FINITE[value]
        elif _is_number(value):
            record[key] = value
    return record
