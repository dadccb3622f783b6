"""What an executor does with one attempt of a run, and the types it speaks in.

An executor starts an attempt (:class:`AttemptSpec`) and hands back a :class:`Handle`;
``poll`` turns a handle into an :class:`AttemptState`. After a daemon restart ``reattach``
rebuilds a handle from the run folder alone, so the run folder is the record
(:mod:`labmind.trainers.run_dir`), not the executor's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from .run_dir import ExitRecord

AttemptStatus = Literal["running", "exited", "lost"]
"""running: the supervisor is alive. exited: ``exit.json`` says how it ended.
lost: no supervisor and no ``exit.json`` (killed from outside, machine rebooted)."""


class ExecutorError(Exception):
    """An attempt could not be started; the message is one line that says why."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail
        """What the supervisor printed before it died, when there is anything."""


@dataclass(frozen=True)
class AttemptSpec:
    """One attempt of one run, as the executor needs it.

    Exactly one of ``command`` (a shell command line, run with ``/bin/sh -c``) and ``argv``.
    ``gpus`` are GPU UUIDs to expose: the command sees ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and
    ``CUDA_VISIBLE_DEVICES=<uuid,...>``, or ``CUDA_VISIBLE_DEVICES=""`` for a CPU run.
    """

    run_id: str
    attempt: int
    run_dir: Path
    command: str | None = None
    argv: Sequence[str] | None = None
    cwd: Path | None = None
    """Working directory; the run folder when ``None``."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment overrides on top of the daemon's environment."""
    timeout_s: float | None = None
    gpus: Sequence[str] = ()
    kill_grace_s: float = 10.0
    """Seconds between SIGTERM and SIGKILL on timeout, cancel, or leftovers of the command."""

    def __post_init__(self) -> None:
        if (self.command is None) == (self.argv is None):
            raise ValueError("an attempt needs exactly one of command and argv")
        if self.argv is not None and (isinstance(self.argv, str) or not self.argv):
            raise ValueError("argv must be a non-empty sequence of strings")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")

    def full_argv(self) -> tuple[str, ...]:
        if self.command is not None:
            return ("/bin/sh", "-c", self.command)
        assert self.argv is not None
        return tuple(self.argv)

    def full_env(self) -> dict[str, str]:
        """The environment overrides with the GPU selection applied."""
        env = dict(self.env)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env


@dataclass(frozen=True)
class Handle:
    """A started attempt: its supervisor (``pid`` started at ``start_time``), and the process
    group of the command (``pgid``; ``None`` when the command could not start)."""

    pid: int
    pgid: int | None
    start_time: int
    run_dir: Path
    job: str | None = None
    """The Ray Jobs submission id for attempts run on a Ray cluster (``pid`` is 0 there)."""


@dataclass(frozen=True)
class AttemptState:
    """Where an attempt stands. For ``exited``: the exit code, or the signal that killed it."""

    status: AttemptStatus
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None
    """Why the command could not start (exit code 126/127), when that is what happened."""
    duration_s: float | None = None

    @classmethod
    def exited(cls, ended: ExitRecord) -> AttemptState:
        """How an attempt ended, from its ``exit.json``."""
        return cls(
            "exited",
            exit_code=ended.exit_code,
            signal=ended.signal,
            timed_out=ended.timed_out,
            cancelled=ended.cancelled,
            error=ended.error,
            duration_s=ended.duration_s,
        )

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def finished(self) -> bool:
        return self.status != "running"

    @property
    def succeeded(self) -> bool:
        return self.status == "exited" and self.exit_code == 0


class Executor(Protocol):
    """Starts, watches and stops attempts; the run folder is the record."""

    def start(self, attempt: AttemptSpec) -> Handle:
        """Start the attempt; returns once its supervisor exists (the command may still be
        starting: ``poll`` tells). Raises :class:`ExecutorError` when it cannot be started."""
        ...

    def watch(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` (from any thread) when an attempt started or reattached from now on
        may have ended. ``False``: this executor cannot tell, and its attempts must be polled."""
        ...

    def close(self) -> None:
        """Release what the executor holds (helper processes, threads); the runs go on."""
        ...

    def poll(self, handle: Handle) -> AttemptState: ...

    def reattach(self, run_dir: Path) -> Handle | None:
        """A handle for an attempt started earlier, maybe by another process; ``None`` when
        the attempt was never started. ``poll`` it to learn whether it runs, ended or is lost."""
        ...

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        """Stop the attempt: SIGTERM to its process group, SIGKILL after ``grace_s``."""
        ...

    def log_tail(self, run_dir: Path, max_bytes: int = 16384) -> str:
        """The end of the attempt's output, for failure classification and notifications."""
        ...


class ClusterExecutor(Executor, Protocol):
    """An executor for a cluster that places runs itself (Ray): labmind asks it whether a
    run fits before it submits one, so the queue, not the cluster, holds what waits."""

    def start(
        self, attempt: AttemptSpec, *, cpus: float | None = None, gpus: int | None = None
    ) -> Handle:
        """Submit the attempt asking for ``cpus`` and ``gpus`` (the cluster picks which)."""
        ...

    def fits(self, cpus: float, gpus: int) -> bool:
        """Whether a run asking for this much would find it free now."""
        ...

    def never_fits(self, cpus: float, gpus: int) -> str | None:
        """Why a run asking for this much can never run there (one line), or ``None``."""
        ...

    def available(self) -> bool:
        """Whether the cluster answers."""
        ...


@runtime_checkable
class LiningUp(Protocol):
    """An executor that can start an attempt the moment another one it runs is over, with
    no round trip through its caller (the local run supervisor)."""

    def prepare(self) -> None:
        """Attempts are coming: have what starts them ready (never raises)."""
        ...

    def can_line_up(self, after: Handle) -> bool:
        """Whether an attempt can be lined up behind ``after`` now."""
        ...

    def line_up(self, attempt: AttemptSpec, after: Handle) -> Handle | None:
        """Hand ``attempt`` over to start once ``after`` is over; ``None`` when it cannot be
        (nothing was handed over). Raises :class:`ExecutorError` as ``start`` does."""
        ...

    def take_over(self, handle: Handle) -> tuple[Handle, float] | None:
        """Once the attempt it was lined up behind is over: the attempt's handle and when it
        started, or ``None`` when it never started (it may be started again). Raises
        :class:`ExecutorError` when it could not be started."""
        ...

    def withdraw(self, handle: Handle) -> bool:
        """Take back a lined-up attempt; whether it will not start (``False``: it started)."""
        ...
