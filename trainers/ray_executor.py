"""Runs attempts as Ray Jobs on a Ray cluster (the ``ray`` extra), with the run folder as record.

``start`` submits the attempt through Ray's ``JobSubmissionClient`` (the dashboard's Jobs API)
with ``submission_id = labmind-<run_id>-<attempt>``: Ray refuses a second job with the same id,
so a start repeated after a crash finds the job that is there instead of making another. Before
it submits, ``start`` writes ``ray.json`` (address, submission id, resources) atomically in the
run folder, so ``reattach`` rebuilds the handle from the folder alone; an attempt whose
``ray.json`` was written but whose job the cluster never got is reported as never started.

The command runs as ``cd <workdir> && exec <argv>``: the cluster's nodes must see the run
folder and the working directory at the same paths (a cluster on this machine, or a shared
filesystem); nothing is uploaded. The environment is the attempt's overrides plus
``LABMIND_RUN_DIR``, on top of the Ray worker's environment (not the daemon's). Ray picks the
GPUs of a run that asks for them (``CUDA_VISIBLE_DEVICES`` is left to it); a CPU run gets
``CUDA_VISIBLE_DEVICES=""`` as with the local executor.

``poll`` asks the cluster at most every ``poll_interval_s`` per attempt. While the job runs it
mirrors the job's log into ``output.log`` (complete lines, without Ray's own preamble), and once
the job has ended it writes the rest of the log and then ``exit.json``, so logs, failure
classification and later polls work from the folder without the cluster. A cluster that does
not answer leaves the attempt ``running`` for ``lost_after_s``; a cluster that answers but does
not know the job (it was restarted: Ray jobs live as long as the cluster) makes it ``lost``.
A timeout is enforced by ``poll`` (counted from submission) by stopping the job.

``fits`` tells whether a run would find its CPUs and GPUs free now: the cluster's resource
report (``/api/cluster_status``, refreshed by Ray every few seconds; node totals minus the
resources of unfinished jobs where the report is missing) less what this executor submitted
that the report cannot show yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeGuard

from . import run_dir as rd
from .executor import AttemptSpec, AttemptState, ExecutorError, Handle

RAY_RECORD = "ray.json"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
RAY_MISSING = "the Ray executor needs the 'ray' extra: pip install 'labmind[ray]'"

_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
_SUBMIT_TIMEOUT_S = 30.0
"""A fresh cluster holds a submission until its job agent is up (up to ~10 s)."""
_STOP_WAIT_S = 10.0
"""On top of ``grace_s``: Ray itself waits ``RAY_JOB_STOP_WAIT_TIME_S`` (3 s) before SIGKILL."""


class RayUnreachable(ExecutorError):
    """The Ray cluster's dashboard did not answer (or answered with a server error)."""


def submission_id(run_id: str, attempt: int) -> str:
    """The Ray submission id of one attempt: stable, so that submitting twice is harmless."""
    return f"labmind-{run_id}-{attempt}"


@dataclass(frozen=True)
class RayRecord:
    """``ray.json``: where an attempt was submitted and what it asked for."""

    address: str
    submission_id: str
    entrypoint: str
    cpus: float
    gpus: int
    timeout_s: float | None = None
    submitted_at: float | None = None
    """When the cluster accepted the job; ``None`` while it is being submitted."""
    stop: Literal["cancel", "timeout"] | None = None
    """Why labmind stopped the job, once it asked the cluster to."""

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "submission_id": self.submission_id,
            "entrypoint": self.entrypoint,
            "cpus": self.cpus,
            "gpus": self.gpus,
            "timeout_s": self.timeout_s,
            "submitted_at": self.submitted_at,
            "stop": self.stop,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RayRecord | None:
        strings = ("address", "submission_id", "entrypoint")
        if not all(isinstance(data.get(k), str) and data.get(k) for k in strings):
            return None
        cpus, gpus = data.get("cpus"), data.get("gpus")
        timeout, submitted, stop = data.get("timeout_s"), data.get("submitted_at"), data.get("stop")
        if not _number(cpus) or not (isinstance(gpus, int) and not isinstance(gpus, bool)):
            return None
        if not all(v is None or _number(v) for v in (timeout, submitted)):
            return None
        if stop not in (None, "cancel", "timeout"):
            return None
        return cls(
            address=data["address"],
            submission_id=data["submission_id"],
            entrypoint=data["entrypoint"],
            cpus=float(cpus),
            gpus=gpus,
            timeout_s=None if timeout is None else float(timeout),
            submitted_at=None if submitted is None else float(submitted),
            stop=stop,
        )


def read_record(run_dir: Path) -> RayRecord | None:
    data = rd.read_json(run_dir / RAY_RECORD)
    return None if data is None else RayRecord.from_json(data)


def write_record(run_dir: Path, record: RayRecord) -> None:
    rd.write_json_atomic(run_dir / RAY_RECORD, record.to_json())


@dataclass(frozen=True)
class ClusterResources:
    """What a Ray cluster has (``total``) and has free (``available``), by resource name
    (``CPU``, ``GPU``, …), as of ``as_of`` (epoch seconds, the cluster's clock)."""

    total: dict[str, float]
    available: dict[str, float]
    as_of: float


# --- the cluster, as far as this module needs it -------------------------------------------


@dataclass(frozen=True)
class RayJob:
    """What the Jobs API says about one job."""

    status: str
    """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    message: str = ""
    exit_code: int | None = None
    """The entrypoint's exit status (negative: killed by that signal), when Ray knows it."""
    start_ms: int | None = None
    end_ms: int | None = None
    cpus: float = 0.0
    gpus: float = 0.0


class RayJobs(Protocol):
    """The Jobs and dashboard APIs of one cluster. Raises :class:`RayUnreachable` when the
    cluster does not answer, :class:`ExecutorError` when it refuses."""

    def submit(
        self, *, submission_id: str, entrypoint: str, env: dict[str, str], cpus: float, gpus: int
    ) -> None: ...

    def stop(self, submission_id: str) -> None:
        """Ask the job to stop (a job that is over or unknown is left alone)."""
        ...

    def job(self, submission_id: str) -> RayJob | None:
        """The job, or ``None`` when the cluster does not know it."""
        ...

    def jobs(self) -> list[RayJob]: ...

    def logs(self, submission_id: str) -> str: ...

    def get_json(self, endpoint: str) -> Any: ...


def connect(address: str, *, timeout_s: float = 10.0) -> RayJobs:
    """A client for the cluster whose dashboard is at ``address`` (``http://host:8265``).

    Imports Ray here, not at module import. Raises :class:`ExecutorError` when Ray is not
    installed and :class:`RayUnreachable` when the dashboard does not answer."""
    client_class = _client_class()
    with _translated(address):
        return _RayJobs(client_class(address, timeout_s), address)


def _client_class() -> Any:
    try:
        import requests  # noqa: F401  (Ray's client needs it: it comes with ray[default])
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise ExecutorError(RAY_MISSING) from None

    class TimedClient(JobSubmissionClient):
        """Ray's client with a timeout on every request (it has none of its own)."""

        def __init__(self, address: str, timeout_s: float) -> None:
            self.labmind_timeout_s = timeout_s
            super().__init__(address)

        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", self.labmind_timeout_s)
            return super()._do_request(method, endpoint, **kwargs)

    return TimedClient


class _RayJobs:
    def __init__(self, client: Any, address: str) -> None:
        self.client = client
        self.address = address

    def submit(
        self, *, submission_id: str, entrypoint: str, env: dict[str, str], cpus: float, gpus: int
    ) -> None:
        timeout = self.client.labmind_timeout_s
        self.client.labmind_timeout_s = max(timeout, _SUBMIT_TIMEOUT_S)
        try:
            with _translated(self.address):
                self.client.submit_job(
                    entrypoint=entrypoint,
                    submission_id=submission_id,
                    runtime_env={"env_vars": env},
                    entrypoint_num_cpus=cpus,
                    entrypoint_num_gpus=gpus,
                )
        finally:
            self.client.labmind_timeout_s = timeout

    def stop(self, submission_id: str) -> None:
        with _translated(self.address, missing_ok=True):
            self.client.stop_job(submission_id)

    def job(self, submission_id: str) -> RayJob | None:
        with _translated(self.address, missing_ok=True):
            return _job(self.client.get_job_info(submission_id))
        return None

    def jobs(self) -> list[RayJob]:
        with _translated(self.address):
            return [_job(details) for details in self.client.list_jobs()]

    def logs(self, submission_id: str) -> str:
        with _translated(self.address, missing_ok=True):
            return str(self.client.get_job_logs(submission_id))
        return ""

    def get_json(self, endpoint: str) -> Any:
        with _translated(self.address):
            response = self.client._do_request("GET", endpoint)
            if response.status_code != 200:
                self.client._raise_error(response)
            return response.json()


@contextlib.contextmanager
def _translated(address: str, *, missing_ok: bool = False) -> Iterator[None]:
    """Ray's and requests' exceptions as one-line :class:`ExecutorError`s; with
    ``missing_ok`` a 404 is swallowed (the block's caller then returns its default)."""
    try:
        yield
    except OSError as exc:  # requests' errors, and the client's own ConnectionError
        raise RayUnreachable(f"cannot reach the Ray cluster at {address}: {_reason(exc)}") from None
    except RuntimeError as exc:
        status = _status_code(exc)
        if status == 404 and missing_ok:
            return
        if status is None or status >= 500:
            raise RayUnreachable(
                f"the Ray cluster at {address} answered with an error: {_ray_message(exc)}"
            ) from None
        raise ExecutorError(f"the Ray cluster at {address} refused: {_ray_message(exc)}") from None


def _job(details: Any) -> RayJob:
    status = details.status
    exit_code = getattr(details, "driver_exit_code", None)
    return RayJob(
        status=str(getattr(status, "value", status)),
        message=str(details.message or ""),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        start_ms=details.start_time,
        end_ms=details.end_time,
        cpus=float(getattr(details, "entrypoint_num_cpus", None) or 0),
        gpus=float(getattr(details, "entrypoint_num_gpus", None) or 0),
    )


_STATUS = re.compile(r"status code (\d{3})")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_EXCEPTION_LINE = re.compile(r"^\w+(?:Error|Exception): .+")


def _status_code(exc: RuntimeError) -> int | None:
    match = _STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def _ray_message(exc: RuntimeError) -> str:
    """One line of a Ray error: the last exception line of a server traceback, if any."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip().strip(".")]
    raised = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (raised or lines or [type(exc).__name__])[-1 if raised else 0]


def _reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words ("connection refused", "timed out")."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:  # Ray re-raises requests' error
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for error in chain:
        match = _ERRNO.search(str(error))
        if match:
            return match.group(1).strip().lower()
    if any("timed out" in str(error).lower() for error in chain):
        return "timed out"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- the executor ----------------------------------------------------------------------------


@dataclass
class _Submitted:
    """A job this executor submitted or reattached, until it is seen to end."""

    address: str
    cpus: float
    gpus: int
    running_seen_at: float | None = None
    """When a poll first saw it running (from then on the cluster's report can show it)."""


@dataclass
class _Seen:
    at: float
    state: AttemptState
    unreachable_since: float | None = None


@dataclass
class _Cached:
    at: float
    resources: ClusterResources


class RayExecutor:
    """An :class:`~labmind.trainers.executor.Executor` for a Ray cluster's Jobs API.

    ``cpus_per_run`` is what an attempt reserves when ``start`` is not told (Ray's
    ``entrypoint_num_cpus``); ``poll_interval_s`` how often one attempt (and ``fits``) asks
    the cluster at most; ``request_timeout_s`` bounds every request; ``lost_after_s`` is how
    long a cluster may stay silent before its attempts count as lost.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        cpus_per_run: float = 1.0,
        poll_interval_s: float = 1.0,
        request_timeout_s: float = 10.0,
        lost_after_s: float = 600.0,
    ) -> None:
        _client_class()  # fails now, in one line, when Ray is not installed
        self.address = address.rstrip("/")
        self.cpus_per_run = cpus_per_run
        self.poll_interval_s = poll_interval_s
        self.request_timeout_s = request_timeout_s
        self.lost_after_s = lost_after_s
        self._clients: dict[str, RayJobs] = {}
        self._submitted: dict[str, _Submitted] = {}
        self._seen: dict[str, _Seen] = {}
        self._resources: _Cached | None = None
        self._lock = threading.RLock()

    def _jobs(self, address: str) -> RayJobs:
        with self._lock:
            client = self._clients.get(address)
        if client is None:
            client = connect(address, timeout_s=self.request_timeout_s)
            with self._lock:
                self._clients[address] = client
        return client

    # --- the cluster -----------------------------------------------------------------------

    def available(self) -> bool:
        """Whether the cluster's Jobs API answers."""
        try:
            self._jobs(self.address).get_json("/api/version")
        except ExecutorError:
            return False
        return True

    def resources(self) -> ClusterResources:
        """The cluster's resources from its latest report (cached for ``poll_interval_s``).
        Raises :class:`ExecutorError` when the cluster does not answer."""
        with self._lock:
            cached = self._resources
        now = time.monotonic()
        if cached is not None and now - cached.at < self.poll_interval_s:
            return cached.resources
        jobs = self._jobs(self.address)
        resources = _from_report(jobs.get_json("/api/cluster_status")) or _from_nodes(jobs)
        with self._lock:
            self._resources = _Cached(now, resources)
        return resources

    def never_fits(self, cpus: float, gpus: int) -> str | None:
        """One line on why a run asking for ``cpus`` and ``gpus`` can never run on this
        cluster as it is (more than it has in all), or ``None``; ``None`` too when the
        cluster does not answer or has not reported its nodes yet (it may well have them)."""
        try:
            total = self.resources().total
        except ExecutorError:
            return None
        if not total.get("CPU"):
            return None  # no node has reported yet
        for name, wanted in (("CPU", float(cpus)), ("GPU", float(gpus))):
            has = total.get(name, 0.0)
            if wanted > has + 1e-9:
                plural = "" if wanted == 1 else "s"
                return f"asks for {wanted:g} {name}{plural} but the Ray cluster has {has:g}"
        return None

    def fits(self, cpus: float, gpus: int) -> bool:
        """Whether a run asking for ``cpus`` and ``gpus`` would find them free on the cluster
        now, counting what this executor submitted that the cluster's report cannot show yet.
        ``False`` when the cluster does not answer."""
        try:
            resources = self.resources()
        except ExecutorError:
            return False
        want_cpus, want_gpus = float(cpus), float(gpus)
        with self._lock:
            for job in self._submitted.values():
                seen = job.running_seen_at
                if job.address == self.address and (seen is None or seen > resources.as_of):
                    want_cpus += job.cpus
                    want_gpus += job.gpus
        free = resources.available
        return want_cpus <= free.get("CPU", 0.0) + 1e-9 and want_gpus <= free.get("GPU", 0.0) + 1e-9

    # --- start -----------------------------------------------------------------------------

    def start(
        self, attempt: AttemptSpec, *, cpus: float | None = None, gpus: int | None = None
    ) -> Handle:
        """Submit the attempt. ``gpus``: how many GPUs Ray should give it (default: as many
        as ``attempt.gpus`` names); ``cpus``: default ``cpus_per_run``. Returns once the cluster
        has the job, which may still be pending; a job that already exists under the attempt's
        submission id is taken as this start."""
        run_dir = attempt.run_dir.absolute()
        name = f"run {attempt.run_id} attempt {attempt.attempt}"
        sid = submission_id(attempt.run_id, attempt.attempt)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutorError(f"cannot create the run folder {run_dir}: {_why(exc)}") from None
        if (run_dir / rd.EXIT_FILE).exists():
            raise ExecutorError(f"{name} was already started in {run_dir}")
        count = len(attempt.gpus) if gpus is None else gpus
        record = RayRecord(
            address=self.address,
            submission_id=sid,
            entrypoint=_entrypoint(attempt, run_dir),
            cpus=self.cpus_per_run if cpus is None else float(cpus),
            gpus=count,
            timeout_s=attempt.timeout_s,
        )
        try:
            write_record(run_dir, record)
        except OSError as exc:
            raise ExecutorError(f"cannot write in the run folder {run_dir}: {_why(exc)}") from None
        jobs = self._jobs(self.address)
        try:
            jobs.submit(
                submission_id=sid,
                entrypoint=record.entrypoint,
                env=_environment(attempt, run_dir, count),
                cpus=record.cpus,
                gpus=count,
            )
        except ExecutorError:
            # Ray answers a second submission under the same id with a server error: if the
            # job is there, an earlier start got through.
            if not _exists(jobs, sid):
                raise
        record = replace(record, submitted_at=time.time())
        with contextlib.suppress(OSError):  # the cluster has the job; ray.json says enough
            write_record(run_dir, record)
        with self._lock:
            self._submitted[sid] = _Submitted(self.address, record.cpus, record.gpus)
        return _handle(run_dir, sid)

    def reattach(self, run_dir: Path) -> Handle | None:
        """The handle of an attempt submitted earlier; ``None`` when it never reached the
        cluster (``ray.json`` written, job unknown), so that it can be started again."""
        run_dir = run_dir.absolute()
        record = read_record(run_dir)
        if record is None:
            return None
        sid = record.submission_id
        if record.submitted_at is None and rd.read_exit(run_dir) is None:
            try:
                job = self._jobs(record.address).job(sid)
            except ExecutorError:
                pass  # cannot tell now: poll will
            else:
                if job is None:
                    return None
                with contextlib.suppress(OSError):
                    write_record(run_dir, replace(record, submitted_at=time.time()))
        if rd.read_exit(run_dir) is None:
            with self._lock:
                self._submitted.setdefault(
                    sid, _Submitted(record.address, record.cpus, record.gpus)
                )
        return _handle(run_dir, sid)

    # --- watch -----------------------------------------------------------------------------

    def watch(self, wake: Callable[[], None]) -> bool:
        """Ray tells nothing by itself: attempts must be polled."""
        return False

    def close(self) -> None:
        """Forget the clients (the jobs go on on the cluster)."""
        with self._lock:
            self._clients.clear()

    def poll(self, handle: Handle) -> AttemptState:
        run_dir = handle.run_dir
        ended = rd.read_exit(run_dir)
        if ended is not None:
            return AttemptState.exited(ended)
        record = read_record(run_dir)
        if record is None:
            return AttemptState("lost", error=f"no readable {RAY_RECORD} in {run_dir}")
        sid = handle.job or record.submission_id
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(sid)
        if seen is not None and now - seen.at < self.poll_interval_s:
            return seen.state
        try:
            job = self._jobs(record.address).job(sid)
        except ExecutorError as exc:
            since = (
                now if seen is None or seen.unreachable_since is None else seen.unreachable_since
            )
            if now - since >= self.lost_after_s:
                self._forget(sid)
                return AttemptState("lost", error=f"{exc} (for {now - since:.0f} s)")
            with self._lock:
                self._seen[sid] = _Seen(now, AttemptState("running"), since)
            return AttemptState("running")
        if job is None:
            self._forget(sid)
            return AttemptState(
                "lost",
                error=f"the Ray cluster at {record.address} does not know job {sid} "
                "(was the cluster restarted?)",
            )
        if job.status not in _TERMINAL:
            if job.status == "RUNNING":
                self._running(sid)
                self._mirror(run_dir, record, final=False)
                self._enforce_timeout(run_dir, record, job)
        else:
            finished = self._finish(run_dir, record, job)
            if finished is not None:
                return finished
        with self._lock:
            self._seen[sid] = _Seen(now, AttemptState("running"))
        return AttemptState("running")

    def log_tail(self, run_dir: Path, max_bytes: int = 16384) -> str:
        return rd.read_log_tail(run_dir / rd.OUTPUT_LOG, max_bytes)

    def _running(self, sid: str) -> None:
        with self._lock:
            job = self._submitted.get(sid)
            if job is not None and job.running_seen_at is None:
                job.running_seen_at = time.time()

    def _forget(self, sid: str) -> None:
        with self._lock:
            self._submitted.pop(sid, None)
            self._seen.pop(sid, None)

    def _enforce_timeout(self, run_dir: Path, record: RayRecord, job: RayJob) -> None:
        if record.timeout_s is None or record.stop is not None or job.start_ms is None:
            return
        if time.time() - job.start_ms / 1000 < record.timeout_s:
            return
        with contextlib.suppress(OSError):  # unrecorded, the stop reads as a cancel
            write_record(run_dir, replace(record, stop="timeout"))
        with contextlib.suppress(ExecutorError):  # tried again on the next poll
            self._jobs(record.address).stop(record.submission_id)

    def _finish(self, run_dir: Path, record: RayRecord, job: RayJob) -> AttemptState | None:
        """Mirror the rest of the log, then write ``exit.json``: the attempt is over.
        ``None`` when the log could not be fetched (the next poll tries again)."""
        if not self._mirror(run_dir, record, final=True):
            return None
        ended = _exit_record(record, job)
        with self._lock:
            if rd.read_exit(run_dir) is None:
                if job.status == "FAILED" and job.exit_code is None and job.message:
                    # Ray failed the job around the command (runtime env, a node that died):
                    # its message is the only account of why.
                    _append(run_dir, f"\n[ray] {job.message.strip()}\n".encode())
                with contextlib.suppress(OSError):  # the state below is still right
                    rd.write_json_atomic(run_dir / rd.EXIT_FILE, ended.to_json())
        self._forget(record.submission_id)
        return AttemptState.exited(ended)

    def _mirror(self, run_dir: Path, record: RayRecord, *, final: bool) -> bool:
        """Append what ``output.log`` lacks of the command's output in the job's log: complete
        lines while the job runs, everything once it has ended. ``False`` when the log could
        not be fetched."""
        try:
            text = self._jobs(record.address).logs(record.submission_id)
        except ExecutorError:
            return False
        data = _command_output(text, record).encode("utf-8", errors="replace")
        if not final:
            data = data[: max(data.rfind(b"\n"), data.rfind(b"\r")) + 1]
        with self._lock:
            _append_from(run_dir, data)
        return True

    # --- stop ------------------------------------------------------------------------------

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        """Stop the job (Ray sends SIGTERM, then SIGKILL after its own
        ``RAY_JOB_STOP_WAIT_TIME_S``) and wait, at most ``grace_s`` and a few seconds, until it
        has ended and is recorded. Raises :class:`ExecutorError` when the cluster cannot be
        told."""
        run_dir = handle.run_dir
        if rd.read_exit(run_dir) is not None:
            return
        record = read_record(run_dir)
        if record is None:
            return
        if record.stop is None:
            record = replace(record, stop="cancel")
            with contextlib.suppress(OSError):  # a stopped job reads as cancelled anyway
                write_record(run_dir, record)
        jobs = self._jobs(record.address)
        jobs.stop(record.submission_id)
        deadline = time.monotonic() + grace_s + _STOP_WAIT_S
        pause = 0.02
        while True:
            try:
                job: RayJob | None = jobs.job(record.submission_id)
            except RayUnreachable:
                job = RayJob("RUNNING")  # a hiccup: ask again until the deadline
            if job is None:
                self._forget(record.submission_id)
                return
            if job.status in _TERMINAL and self._finish(run_dir, record, job) is not None:
                return
            now = time.monotonic()
            if now >= deadline:
                return
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, 0.2)


# --- helpers ---------------------------------------------------------------------------------


def _exists(jobs: RayJobs, sid: str) -> bool:
    try:
        return jobs.job(sid) is not None
    except ExecutorError:
        return False


def _handle(run_dir: Path, sid: str) -> Handle:
    return Handle(pid=0, pgid=None, start_time=0, run_dir=run_dir, job=sid)


def _entrypoint(attempt: AttemptSpec, run_dir: Path) -> str:
    cwd = (attempt.cwd or run_dir).absolute()
    return f"cd {shlex.quote(str(cwd))} && exec {shlex.join(attempt.full_argv())}"


def _environment(attempt: AttemptSpec, run_dir: Path, gpus: int) -> dict[str, str]:
    env = attempt.full_env()
    if gpus > 0:
        del env["CUDA_VISIBLE_DEVICES"]  # Ray chooses the GPUs
    env.setdefault("PYTHONUNBUFFERED", "1")
    env[rd.RUN_DIR_ENV] = str(run_dir)
    return env


def _exit_record(record: RayRecord, job: RayJob) -> rd.ExitRecord:
    end = job.end_ms / 1000 if job.end_ms else time.time()
    start = job.start_ms / 1000 if job.start_ms else end
    duration = max(0.0, end - start)
    if job.status == "SUCCEEDED":
        return rd.ExitRecord(exit_code=0, signal=None, ended_at=end, duration_s=duration)
    if job.status == "STOPPED":
        return rd.ExitRecord(
            exit_code=None,
            signal=int(signal.SIGTERM),
            ended_at=end,
            duration_s=duration,
            timed_out=record.stop == "timeout",
            cancelled=record.stop != "timeout",
        )
    code = job.exit_code
    if code is not None and code < 0:
        return rd.ExitRecord(exit_code=None, signal=-code, ended_at=end, duration_s=duration)
    if code is not None:
        return rd.ExitRecord(exit_code=code, signal=None, ended_at=end, duration_s=duration)
    first = job.message.strip().splitlines()[:1] or ["the Ray job failed"]
    return rd.ExitRecord(
        exit_code=1, signal=None, ended_at=end, duration_s=duration, error=f"Ray: {first[0]}"
    )


def _from_report(data: Any) -> ClusterResources | None:
    """Resources from the autoscaler's report: ``{usage: {CPU: [used, total], …}}``."""
    try:
        status = data["data"]["clusterStatus"]
        usage = status["loadMetricsReport"]["usage"]
        as_of = float(status["time"])
        pairs = {str(k): (float(v[0]), float(v[1])) for k, v in usage.items()}
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not pairs:  # the first report of a new cluster is empty
        return None
    return ClusterResources(
        total={k: total for k, (_, total) in pairs.items()},
        available={k: max(0.0, total - used) for k, (used, total) in pairs.items()},
        as_of=as_of,
    )


def _from_nodes(jobs: RayJobs) -> ClusterResources:
    """Resources without the report (autoscaler v2 clusters write none): the living nodes'
    totals, less what unfinished jobs reserved for their entrypoints."""
    as_of = time.time()
    data = jobs.get_json("/api/v0/nodes?limit=10000")
    try:
        nodes = data["data"]["result"]["result"]
        totals = [n["resources_total"] for n in nodes if n.get("state") == "ALIVE"]
    except (KeyError, TypeError):
        raise ExecutorError("the Ray cluster's node list is not in a form labmind knows") from None
    total: dict[str, float] = {}
    for node in totals:
        for name, amount in node.items():
            total[str(name)] = total.get(str(name), 0.0) + float(amount)
    used_cpus = used_gpus = 0.0
    for job in jobs.jobs():
        if job.status not in _TERMINAL:
            used_cpus += job.cpus
            used_gpus += job.gpus
    available = dict(total)
    available["CPU"] = max(0.0, total.get("CPU", 0.0) - used_cpus)
    available["GPU"] = max(0.0, total.get("GPU", 0.0) - used_gpus)
    return ClusterResources(total=total, available=available, as_of=as_of)


_RAY_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\t[A-Z]+ [\w.]+:\d+ -- [^\n]*\n")


def _command_output(log: str, record: RayRecord) -> str:
    """The command's output in a Ray job's log, which also holds Ray's own lines: those it
    logs before the command starts, and "Running entrypoint for job …", which Ray writes
    through a buffer it flushes only after starting the command, so it may land after the
    command's first output. Removing them gives the same prefix as the log grows."""
    log = log.replace(
        f"Running entrypoint for job {record.submission_id}: {record.entrypoint}\n", "", 1
    )
    start = 0
    while match := _RAY_LINE.match(log, start):
        start = match.end()
    return log[start:]


def _append_from(run_dir: Path, data: bytes) -> None:
    """Append to ``output.log`` what it lacks of ``data`` (its byte count says how much it
    has), under an exclusive lock so that two pollers never write the same bytes twice."""
    try:
        fd = os.open(run_dir / rd.OUTPUT_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if len(data) > size:
            os.write(fd, data[size:])
    except OSError:
        pass
    finally:
        os.close(fd)


def _append(run_dir: Path, data: bytes) -> None:
    with contextlib.suppress(OSError), (run_dir / rd.OUTPUT_LOG).open("ab") as log:
        log.write(data)


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
