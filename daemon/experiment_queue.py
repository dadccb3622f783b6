"""The experiment queue's thread: start what fits, watch what runs, retry what can be fixed.

Each tick collects finished attempts (exit status from the wrapper's ``exit.json``),
classifies failures from the log tail, applies a rule fix (a smaller batch, a lower
learning rate, a plain retry for transient errors) as the next attempt — recorded in
the same transaction as the failure — and starts queued runs by priority, then first
come: CPU runs while slots are free, GPU runs on GPUs the ledger reserves for them, once
the sweeps they depend on have succeeded. Runs are separate sessions started through
the wrapper, so they outlive the daemon: on start-up the runs the store calls running
are reattached from their folders and collected with their real exit status.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from labmind.trainers.executor import (
    AttemptSpec,
    AttemptState,
    ClusterExecutor,
    Executor,
    ExecutorError,
    Handle,
    LiningUp,
)
from labmind.trainers.failures import Failure, FailureKind, classify
from labmind.trainers.fixers import Change, propose_fix
from labmind.trainers.gpu_ledger import GpuLedger, SharingPolicy
from labmind.trainers.gpus import GpuInfo, GpuInventory
from labmind.trainers.ray_executor import RAY_RECORD
from labmind.trainers.spec import RetryPolicy
from labmind.trainers.sweep import render_command

from .config import ExperimentsConfig
from .events import EventBus
from .experiment_store import AttemptRow, ExperimentStore, NextAttempt, RunRow

log = logging.getLogger("labmind.experiments")

TICK_S = 0.05
"""How often running attempts are polled while there is work, when the executor cannot
tell when they end."""
WATCHED_TICK_S = 1.0
"""The same when the executor wakes the queue as attempts end: only a safety net."""
IDLE_TICK_S = 5.0
"""With nothing running the thread sleeps this long (a submit or a retry wakes it)."""
_ENDED = frozenset({"succeeded", "failed", "cancelled"})
LOG_TAIL_BYTES = 16_384
CANCEL_GRACE_S = 10.0
_KINDS = frozenset(k.value for k in FailureKind)


class Advisor(Protocol):
    """Something that may propose a fix the rules had none for (`LlmAdvisor`)."""

    def available(self) -> bool: ...
    def consider(self, run: RunRow, failure: Failure, log_tail: str) -> bool: ...


class ExperimentQueue:
    """The thread that owns the running attempts, the GPU ledger and the queue's order."""

    def __init__(
        self,
        records: ExperimentStore,
        events: EventBus,
        runs_dir: Path,
        *,
        slots: int,
        executor: Executor,
        inventory: GpuInventory,
        sharing: SharingPolicy,
        paused: bool,
        advisor: Advisor,
        cluster: Callable[[], ClusterExecutor] | None = None,
        default_executor: str = "local",
    ) -> None:
        self.records = records
        self.events = events
        self.runs_dir = runs_dir
        self.slots = slots
        self.executor = executor
        self.default_executor = default_executor
        self._cluster_factory = cluster
        self._cluster: ClusterExecutor | None = None
        self._cluster_silent = False
        self.inventory = inventory
        self.sharing = sharing
        self.paused = paused
        self.ledger = GpuLedger()
        self.advisor = advisor
        self._handles: dict[str, Handle] = {}
        self._behind: dict[str, str] = {}
        """Runs lined up (not started yet) -> the run whose end starts them."""
        self._sweep_of: dict[str, str] = {}
        """Run -> its sweep, for the runs handed over (pruned to ``_handles`` when read)."""
        self._liner = executor if isinstance(executor, LiningUp) else None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cluster_queued: bool | None = None
        self._tick_s = WATCHED_TICK_S if executor.watch(self._wake.set) else TICK_S

    def start(self) -> None:
        self._reattach()
        self._thread = threading.Thread(target=self._loop, name="labmind-experiments", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising; the runs go on and are reattached at the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.executor.close()
        if self._cluster is not None:
            self._cluster.close()

    def kick(self) -> None:
        """Look at the queue now (runs were submitted, retried or approved)."""
        self._cluster_queued = None
        self._wake.set()

    def expect(self) -> None:
        """Runs are about to be queued: the executor gets ready for them meanwhile (the run
        supervisor starts up while a spec is read and its runs stored)."""
        if self._liner is not None and not self.paused:
            self._liner.prepare()

    def cancel(self, run: RunRow) -> None:
        """Stop ``run`` (its process group gets SIGTERM, then SIGKILL) or take it off the queue."""
        done = _Round()
        with self._lock:
            if run.status in ("succeeded", "failed", "cancelled"):
                return
            handle = self._handles.pop(run.id, None)
            self._behind.pop(run.id, None)
            if handle is not None:
                self._executor_of(handle).cancel(handle, CANCEL_GRACE_S)
            self.ledger.release(run.id)
            self.records.finish_attempt(
                run.id,
                status="cancelled",
                exit_code=None,
                signal=None,
                failure=None,
                summary="cancelled by the user",
                at=time.time(),
            )
            done.event(run.id, "cancelled")
            self._sweep_progress(run.sweep_id, done)
        self.events.publish_all(done.events)

    def log_tail(self, run: RunRow, max_bytes: int = LOG_TAIL_BYTES) -> str:
        if run.run_dir is None:
            return ""
        return self.executor.log_tail(Path(run.run_dir), max_bytes)

    # -- the queue thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = True
            try:
                busy = self._tick()
            except Exception:
                log.exception("experiment queue tick failed")
            self._wake.wait(self._tick_s if busy else IDLE_TICK_S)
            self._wake.clear()

    def _tick(self) -> bool:
        """One round of collecting and starting; whether anything is running now (queued
        runs that cannot start wait for a run to finish or for a submit, which wake us).

        What the round records (the ends, the starts of attempts lined up behind them, the
        launches) is one transaction; the attempts are handed over and the events published
        once it is committed."""
        with self._lock:
            ended = []
            for run_id, handle in list(self._handles.items()):
                if run_id in self._behind:
                    continue  # lined up: it starts when the attempt before it is over
                state = self._executor_of(handle).poll(handle)
                if not state.running:
                    del self._handles[run_id]
                    ended.append((run_id, state))
            done = _Round()
            with self.records.batch():
                for run_id, state in ended:
                    self._collect(run_id, state, done)
                self._take_over(done)
                if self.paused:
                    self._withdraw_lined_up(done)
                else:
                    self._plan(done)
            for launch in done.launches:
                self._hand_over(launch, done)
            for sweep_id in dict.fromkeys(done.sweeps):
                self._sweep_progress(sweep_id, done)
            if done.running:
                with self.records.batch():
                    for run_id, handle in done.running:
                        self.records.running(
                            run_id, pid=handle.pid, pgid=handle.pgid, start_time=handle.start_time
                        )
            self.events.publish_all(done.events)
            for then in done.after:
                then()
            return bool(self._handles)

    def _plan(self, done: _Round) -> None:
        """Choose the queued runs to start now (their attempts are recorded as starting, and
        handed over once that is committed): CPU runs while slots are free, then one lined
        up behind each running CPU run, GPU runs on GPUs the ledger reserves."""
        inventory: list[GpuInfo] | None = None
        only_local: bool | None = None
        cpu_runs = self._cpu_runs()
        queued = self.records.queued()
        while True:
            cpu_free = cpu_runs < self.slots
            behind = None if cpu_free else self._line_up_behind(done)
            if not cpu_free and behind is None:
                if inventory is None:
                    inventory = self.inventory.gpus()
                if only_local is None:
                    only_local = not self._cluster_runs_queued()
                if not inventory and only_local:
                    break  # only CPU runs can start here, and no slot is free
            run = next(queued, None)
            if run is None:
                break
            spec = self.records.sweep_spec(run.sweep_id) or {}
            if not self._ready(spec):
                continue
            resources = dict(spec.get("resources") or {})
            count = int(resources.get("gpus") or 0)
            if self._where(spec) != "local":
                self._submit_to_cluster(run, spec, resources, done)
                continue
            if count == 0:
                if cpu_free:
                    self._launch(run, spec, (), done)
                    cpu_runs += 1
                elif behind is not None:
                    self._launch(run, spec, (), done, behind=behind)
                continue
            if inventory is None:
                inventory = self.inventory.gpus()
            self._launch_on_gpus(run, spec, count, resources, inventory, done)

    def _line_up_behind(self, done: _Round) -> str | None:
        """A CPU run of this machine's supervisor with nothing lined up behind it yet."""
        if self._liner is None:
            return None
        taken = set(self._behind.values())
        taken.update(launch.behind for launch in done.launches if launch.behind is not None)
        reserved = self.ledger.reserved()
        for run_id, handle in self._handles.items():
            if (
                run_id not in taken
                and run_id not in self._behind
                and handle.job is None
                and not reserved.get(run_id)
                and self._liner.can_line_up(handle)
            ):
                return run_id
        return None

    def _take_over(self, done: _Round) -> None:
        """The attempts lined up behind attempts that are over have started (or, if their
        supervisor went away first, go back to the queue)."""
        assert self._liner is not None or not self._behind
        for run_id, before in list(self._behind.items()):
            if before in self._handles:
                continue
            del self._behind[run_id]
            handle = self._handles[run_id]
            try:
                started = self._liner.take_over(handle) if self._liner is not None else None
            except ExecutorError as exc:
                del self._handles[run_id]
                run = self.records.run(run_id)
                if run is not None:
                    self._fail_unstarted(run, "start_failed", str(exc).splitlines()[0], done)
                continue
            if started is None:
                del self._handles[run_id]
                self.records.requeue(run_id)
                continue
            full, started_at = started
            self._handles[run_id] = full
            self.records.running(
                run_id,
                pid=full.pid,
                pgid=full.pgid,
                start_time=full.start_time,
                started_at=started_at,
            )
            done.event(run_id, "running")

    def _withdraw_lined_up(self, done: _Round) -> None:
        """Paused: the attempts lined up that have not started go back to the queue."""
        if self._liner is None:
            return
        for run_id in list(self._behind):
            if self._liner.withdraw(self._handles[run_id]):
                del self._behind[run_id]
                del self._handles[run_id]
                self.records.requeue(run_id)

    def _cpu_runs(self) -> int:
        """CPU slots taken (an attempt lined up behind another takes none yet)."""
        reserved = self.ledger.reserved()
        return sum(
            1
            for run_id, handle in self._handles.items()
            if handle.job is None and not reserved.get(run_id) and run_id not in self._behind
        )

    def _where(self, spec: dict[str, Any]) -> str:
        return str(spec.get("executor") or self.default_executor)

    def _cluster_runs_queued(self) -> bool:
        """Whether a queued run goes to the cluster (remembered until the next `kick`: only
        a submit, retry or approval queues runs)."""
        if self._cluster_queued is None:
            self._cluster_queued = any(
                self._where(self.records.sweep_spec(sweep) or {}) != "local"
                for sweep in self.records.queued_sweeps()
            )
        return self._cluster_queued

    def _executor_of(self, handle: Handle) -> Executor:
        """The executor that started ``handle``: the cluster's for a job, else this machine's."""
        if handle.job is None:
            return self.executor
        return self._cluster_executor()

    def _cluster_executor(self) -> ClusterExecutor:
        """The cluster executor, made on first use; raises :class:`ExecutorError` when there
        is none (no Ray installed, none configured)."""
        if self._cluster is None:
            if self._cluster_factory is None:
                raise ExecutorError("no cluster executor is configured")
            self._cluster = self._cluster_factory()
        return self._cluster

    def _submit_to_cluster(
        self, run: RunRow, spec: dict[str, Any], resources: dict[str, Any], done: _Round
    ) -> None:
        """Submit ``run`` when the cluster has room for it now; it waits in the queue else."""
        try:
            cluster = self._cluster_executor()
        except ExecutorError as exc:
            self._fail_unstarted(run, "start_failed", str(exc).splitlines()[0], done)
            return
        cpus = float(resources.get("cpus") or 1)
        gpus = int(resources.get("gpus") or 0)
        if cluster.fits(cpus, gpus):
            self._cluster_silent = False
            self._launch(run, spec, (), done, cluster=(cluster, cpus, gpus))
        elif (never := cluster.never_fits(cpus, gpus)) is not None:
            self._fail_unstarted(
                run, "no_gpu" if gpus else "start_failed", f"cannot run: it {never}", done
            )
        elif not self._cluster_silent and not cluster.available():
            self._cluster_silent = True
            done.events.append(
                {
                    "type": "alert",
                    "message": "the Ray cluster does not answer; its runs wait in the queue",
                }
            )

    def _launch_on_gpus(
        self,
        run: RunRow,
        spec: dict[str, Any],
        count: int,
        resources: dict[str, Any],
        inventory: list[GpuInfo],
        done: _Round,
    ) -> None:
        min_free_mb = int(float(resources.get("min_gpu_mem_gb") or 0) * 1024)
        never = GpuLedger.fits_ever(count, min_free_mb, inventory)
        if never is not None:
            message = f"cannot run on this machine: it {never}"
            self._fail_unstarted(run, "no_gpu", message, done)
            return
        before = self.records.attempts(run.id) if run.attempt else []
        outgrown = _outgrown_mb(run, before, inventory)
        candidates = [gpu for gpu in inventory if gpu.memory_total_mb > outgrown]
        if len(candidates) < count:
            message = (
                f"ran out of GPU memory on a {outgrown} MiB GPU and this machine has no "
                f"{'larger GPU' if count == 1 else f'{count} larger GPUs'} to move it to"
            )
            self._fail_unstarted(run, "no_gpu", message, done)
            return
        # A retry goes to other GPUs than the failed attempt's when enough are free.
        failed_on = {u for a in before if a.attempt == run.attempt for u in a.gpus}
        elsewhere = [gpu for gpu in candidates if gpu.uuid not in failed_on]
        uuids = None
        for choice in (elsewhere, candidates) if failed_on else (candidates,):
            uuids = self.ledger.reserve(
                run.id,
                count,
                min_free_mb=min_free_mb,
                gpus=choice,
                own_pids=self._own_pids(),
                policy=self.sharing,
                now=time.time(),
            )
            if uuids is not None:
                break
        if uuids is not None:
            self._launch(run, spec, uuids, done)

    def _own_pids(self) -> set[int]:
        """The processes of labmind's runs (wrappers and everything under them)."""
        pids: set[int] = set()
        for handle in self._handles.values():
            if handle.pid <= 0:  # an attempt that runs elsewhere (a Ray job)
                continue
            try:
                wrapper = psutil.Process(handle.pid)
                pids.add(wrapper.pid)
                pids.update(child.pid for child in wrapper.children(recursive=True))
            except psutil.Error:
                continue
        return pids

    def _ready(self, spec: dict[str, Any]) -> bool:
        depends = [str(d) for d in spec.get("depends_on", [])]
        return not depends or self.records.sweep_names_done(depends)

    def _launch(
        self,
        run: RunRow,
        spec: dict[str, Any],
        gpus: Sequence[str],
        done: _Round,
        *,
        cluster: tuple[ClusterExecutor, float, int] | None = None,
        behind: str | None = None,
    ) -> None:
        """Record the next attempt of ``run`` as starting, to be handed over once that is
        committed: here on ``gpus`` (none: a CPU slot, or lined up ``behind`` a run), or on
        ``cluster`` (its executor, CPUs and GPUs to ask for)."""
        attempt = run.attempt + 1
        run_dir = self.runs_dir / run.id / str(attempt)
        self.records.start_attempt(run.id, attempt, str(run_dir), gpus=gpus, at=time.time())
        what = AttemptSpec(
            run_id=run.id,
            attempt=attempt,
            run_dir=run_dir,
            command=run.command,
            cwd=Path(str(spec.get("workdir", "."))),
            env={str(k): str(v) for k, v in dict(spec.get("env", {})).items()},
            timeout_s=spec.get("timeout_s"),
            gpus=tuple(gpus),
        )
        done.launches.append(_Launch(run, what, cluster, behind))

    def _hand_over(self, launch: _Launch, done: _Round) -> None:
        """Start an attempt recorded as starting (a committed record: a daemon that dies
        now finds it starting, and its folder says whether it was)."""
        run, what = launch.run, launch.attempt
        try:
            if launch.behind is not None:
                before = self._handles.get(launch.behind)
                lined = None
                if before is not None and self._liner is not None:
                    lined = self._liner.line_up(what, before)
                if lined is None:  # its slot is not this supervisor's (any more): later
                    self.records.requeue(run.id)
                    return
                self._handles[run.id] = lined
                self._sweep_of[run.id] = run.sweep_id
                self._behind[run.id] = launch.behind
                return
            if launch.cluster is None:
                handle = self.executor.start(what)
            else:
                executor, cpus, count = launch.cluster
                handle = executor.start(what, cpus=cpus, gpus=count)
        except (ExecutorError, OSError) as exc:  # an unwritable folder, a wrapper that died
            self.ledger.release(run.id)
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._fail_unstarted(run, "start_failed", message, done)
            return
        self._handles[run.id] = handle
        self._sweep_of[run.id] = run.sweep_id
        done.running.append((run.id, handle))
        done.event(run.id, "running")

    def _fail_unstarted(self, run: RunRow, failure: str, message: str, done: _Round) -> None:
        self.records.finish_attempt(
            run.id,
            status="failed",
            exit_code=None,
            signal=None,
            failure=failure,
            summary=message,
            at=time.time(),
        )
        done.event(run.id, "failed", summary=message)
        done.sweeps.append(run.sweep_id)

    def _collect(self, run_id: str, state: AttemptState, done: _Round) -> None:
        self.ledger.release(run_id)
        run = self.records.run(run_id)
        if run is None or run.status == "cancelled":
            return
        now = time.time()
        if state.status == "lost":
            self.records.finish_attempt(
                run_id,
                status="failed",
                exit_code=None,
                signal=None,
                failure="lost",
                summary=state.error or "the run's wrapper went away without an exit status",
                at=now,
            )
            done.event(run_id, "failed", summary="lost", log_tail=self.log_tail(run)[-2000:])
            done.sweeps.append(run.sweep_id)
            return
        exit_code, signal = state.exit_code, state.signal
        if state.succeeded:
            self.records.finish_attempt(
                run_id,
                status="succeeded",
                exit_code=0,
                signal=None,
                failure=None,
                summary=None,
                at=now,
            )
            done.event(run_id, "succeeded")
            done.sweeps.append(run.sweep_id)
            return
        tail = self.log_tail(run)
        failure = classify(exit_code, signal, tail, timed_out=state.timed_out)
        fix = None
        retry = _retry_policy(self.records.sweep_spec(run.sweep_id) or {})
        if retry is not None:
            history = _lineage(self.records.attempts(run_id))
            fix = propose_fix(failure, run.params, retry, attempt=run.attempt, history=history)
        then = None
        if fix is not None:
            params = {**run.params, **fix.changes}
            then = NextAttempt(params, self.command_for(run, params), fix.reason)
            self._cluster_queued = None  # the retry is queued again, maybe for the cluster
        ask = (
            fix is None
            and retry is not None
            and retry.fixer == "llm"
            and run.attempt < retry.max_attempts
            and self.advisor.available()
        )
        self.records.finish_attempt(
            run_id,
            status="needs_approval" if ask else "failed",
            exit_code=exit_code,
            signal=signal,
            failure=str(failure.kind),
            summary=failure.summary,
            at=now,
            then=then,
        )
        if fix is not None:
            done.event(run_id, "retrying", summary=failure.summary, change=fix.reason)
        elif ask:
            done.event(run_id, "asking", summary=failure.summary)
            done.after.append(functools.partial(self.advisor.consider, run, failure, tail))
        else:
            done.event(run_id, "failed", summary=failure.summary, log_tail=tail[-2000:])
            done.sweeps.append(run.sweep_id)

    def command_for(self, run: RunRow, params: dict[str, Any]) -> str:
        spec = self.records.sweep_spec(run.sweep_id) or {}
        template = spec.get("command")
        return render_command(str(template), params) if template else run.command

    def _reattach(self) -> None:
        """Take back the runs that were going when the daemon stopped (or died)."""
        with self._lock:
            for run in self.records.runs(statuses=("needs_approval",)):
                if run.proposal is None:
                    self.records.give_up_waiting(
                        run.id, f"{run.summary}; the daemon stopped before the LLM fixer answered"
                    )
            for run in self.records.runs(statuses=("starting", "running")):
                handle = None if run.run_dir is None else self._reattach_one(Path(run.run_dir))
                if handle is None:
                    # the wrapper never started: this attempt is launched again
                    self.records.requeue(run.id)
                    continue
                self._handles[run.id] = handle
                self._sweep_of[run.id] = run.sweep_id
                self.ledger.adopt(run.id, run.gpus)
                if run.status == "starting":
                    self.records.running(
                        run.id, pid=handle.pid, pgid=handle.pgid, start_time=handle.start_time
                    )

    def _reattach_one(self, run_dir: Path) -> Handle | None:
        if not (run_dir / RAY_RECORD).exists():
            return self.executor.reattach(run_dir)
        try:
            return self._cluster_executor().reattach(run_dir)
        except ExecutorError as exc:
            log.warning("cannot reattach %s: %s", run_dir, exc)
            return None

    def _sweep_progress(self, sweep_id: str, done: _Round) -> None:
        """Announce a sweep of several runs once the last of them has ended."""
        self._sweep_of = {r: s for r, s in self._sweep_of.items() if r in self._handles}
        if sweep_id in self._sweep_of.values() or self.records.sweep_pending(sweep_id):
            return  # a run of it is still in hand, or waits
        counts = self.records.sweep_counts(sweep_id)
        if sum(counts.values()) < 2:
            return
        spec = self.records.sweep_spec(sweep_id) or {}
        done.events.append(
            {
                "type": "experiment",
                "event": "sweep_finished",
                "sweep": sweep_id,
                "name": str(spec.get("name") or sweep_id),
                **{status: counts.get(status, 0) for status in sorted(_ENDED)},
            }
        )


@dataclass(frozen=True, slots=True)
class _Launch:
    """An attempt recorded as starting, to hand over once that is committed."""

    run: RunRow
    attempt: AttemptSpec
    cluster: tuple[ClusterExecutor, float, int] | None
    behind: str | None
    """The run it is lined up behind (it starts when that one is over), if any."""


@dataclass
class _Round:
    """What one round of the queue leaves to do once its records are committed."""

    launches: list[_Launch] = field(default_factory=list)
    running: list[tuple[str, Handle]] = field(default_factory=list)
    """Attempts handed over and started: record them as running."""
    events: list[dict[str, Any]] = field(default_factory=list)
    sweeps: list[str] = field(default_factory=list)
    """Sweeps a run of which ended: announce those that are over."""
    after: list[Callable[[], object]] = field(default_factory=list)

    def event(self, run_id: str, event: str, **extra: Any) -> None:
        self.events.append({"type": "experiment", "event": event, "run": run_id, **extra})


def default_slots() -> int:
    """CPU runs at once when the config says 0: half the cores, at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


def sharing_policy(config: ExperimentsConfig) -> SharingPolicy:
    return SharingPolicy(
        allow_foreign=config.share_gpus,
        max_foreign_used_mb=config.share_max_used_mb,
        max_utilization_pct=config.share_max_utilization_pct,
    )


def _lineage(attempts: Sequence[AttemptRow]) -> list[Change]:
    """The fixes so far: each failed attempt, and what the next one changed. A CUDA
    out-of-memory followed by the same parameters is the fixer's move to a larger GPU (the
    only fix for it that changes none)."""
    changes: list[Change] = []
    for failed, following in itertools.pairwise(attempts):
        if failed.failure not in _KINDS:
            continue
        cause = FailureKind(failed.failure)
        changed = {k: v for k, v in following.params.items() if failed.params.get(k) != v}
        moved = cause is FailureKind.CUDA_OOM and not changed
        changes.append(
            Change(failed.attempt, cause, changed, following.change or "", move_gpu=moved)
        )
    return changes


def _outgrown_mb(run: RunRow, attempts: Sequence[AttemptRow], gpus: Sequence[GpuInfo]) -> int:
    """After a CUDA out-of-memory that the fixer answered by moving the run, the memory
    (MiB) of the largest GPU that attempt had: the next one needs more. 0 otherwise."""
    lineage = _lineage(attempts)
    if not lineage or not lineage[-1].move_gpu or lineage[-1].attempt != run.attempt:
        return 0
    sizes = {gpu.uuid: gpu.memory_total_mb for gpu in gpus}
    failed = [a for a in attempts if a.attempt == run.attempt]
    return max((sizes.get(uuid, 0) for a in failed for uuid in a.gpus), default=0)


def _retry_policy(spec: dict[str, Any]) -> RetryPolicy | None:
    data = spec.get("retry")
    return None if data is None else RetryPolicy.model_validate(data)
