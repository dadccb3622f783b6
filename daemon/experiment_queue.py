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

import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil

from labmind.trainers.executor import AttemptSpec, AttemptState, Executor, ExecutorError, Handle
from labmind.trainers.failures import Failure, FailureKind, classify
from labmind.trainers.fixers import Change, propose_fix
from labmind.trainers.gpu_ledger import GpuLedger, SharingPolicy
from labmind.trainers.gpus import GpuInfo, GpuInventory
from labmind.trainers.spec import RetryPolicy
from labmind.trainers.sweep import render_command

from .config import ExperimentsConfig
from .events import EventBus
from .experiment_store import AttemptRow, ExperimentStore, NextAttempt, RunRow

log = logging.getLogger("labmind.experiments")

TICK_S = 0.05
"""How often running attempts are polled and free slots filled while there is work."""
IDLE_TICK_S = 5.0
"""With nothing running the thread sleeps this long (a submit or a retry wakes it)."""
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
    ) -> None:
        self.records = records
        self.events = events
        self.runs_dir = runs_dir
        self.slots = slots
        self.executor = executor
        self.inventory = inventory
        self.sharing = sharing
        self.paused = paused
        self.ledger = GpuLedger()
        self.advisor = advisor
        self._handles: dict[str, Handle] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    def kick(self) -> None:
        self._wake.set()

    def cancel(self, run: RunRow) -> None:
        """Stop ``run`` (its process group gets SIGTERM, then SIGKILL) or take it off the queue."""
        with self._lock:
            if run.status in ("succeeded", "failed", "cancelled"):
                return
            handle = self._handles.pop(run.id, None)
            if handle is not None:
                self.executor.cancel(handle, CANCEL_GRACE_S)
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
        self._publish(run.id, "cancelled")

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
            self._wake.wait(TICK_S if busy else IDLE_TICK_S)
            self._wake.clear()

    def _tick(self) -> bool:
        """One round of collecting and starting; whether anything is running now (queued
        runs that cannot start wait for a run to finish or for a submit, which wake us)."""
        with self._lock:
            for run_id, handle in list(self._handles.items()):
                state = self.executor.poll(handle)
                if not state.running:
                    del self._handles[run_id]
                    self._collect(run_id, state)
            if self.paused:
                return bool(self._handles)
            inventory: list[GpuInfo] | None = None
            for run in self.records.queued():
                spec = self.records.sweep_spec(run.sweep_id) or {}
                if not self._ready(spec):
                    continue
                resources = dict(spec.get("resources") or {})
                count = int(resources.get("gpus") or 0)
                if count == 0:
                    if self._cpu_runs() < self.slots:
                        self._launch(run, spec, ())
                    continue
                if inventory is None:
                    inventory = self.inventory.gpus()
                self._launch_on_gpus(run, spec, count, resources, inventory)
            return bool(self._handles)

    def _cpu_runs(self) -> int:
        reserved = self.ledger.reserved()
        return sum(1 for run_id in self._handles if not reserved.get(run_id))

    def _launch_on_gpus(
        self,
        run: RunRow,
        spec: dict[str, Any],
        count: int,
        resources: dict[str, Any],
        inventory: list[GpuInfo],
    ) -> None:
        min_free_mb = int(float(resources.get("min_gpu_mem_gb") or 0) * 1024)
        never = GpuLedger.fits_ever(count, min_free_mb, inventory)
        if never is not None:
            message = f"cannot run on this machine: it {never}"
            self._fail_unstarted(run, "no_gpu", message)
            return
        uuids = self.ledger.reserve(
            run.id,
            count,
            min_free_mb=min_free_mb,
            gpus=inventory,
            own_pids=self._own_pids(),
            policy=self.sharing,
            now=time.time(),
        )
        if uuids is not None:
            self._launch(run, spec, uuids)

    def _own_pids(self) -> set[int]:
        """The processes of labmind's runs (wrappers and everything under them)."""
        pids: set[int] = set()
        for handle in self._handles.values():
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

    def _launch(self, run: RunRow, spec: dict[str, Any], gpus: Sequence[str]) -> None:
        attempt = run.attempt + 1
        run_dir = self.runs_dir / run.id / str(attempt)
        self.records.start_attempt(run.id, attempt, str(run_dir), gpus=gpus, at=time.time())
        try:
            handle = self.executor.start(
                AttemptSpec(
                    run_id=run.id,
                    attempt=attempt,
                    run_dir=run_dir,
                    command=run.command,
                    cwd=Path(str(spec.get("workdir", "."))),
                    env={str(k): str(v) for k, v in dict(spec.get("env", {})).items()},
                    timeout_s=spec.get("timeout_s"),
                    gpus=tuple(gpus),
                )
            )
        except (ExecutorError, OSError) as exc:  # an unwritable folder, a wrapper that died
            self.ledger.release(run.id)
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._fail_unstarted(run, "start_failed", message)
            return
        self._handles[run.id] = handle
        self.records.running(run.id, pid=handle.pid, pgid=handle.pgid, start_time=handle.start_time)
        self._publish(run.id, "running")

    def _fail_unstarted(self, run: RunRow, failure: str, message: str) -> None:
        self.records.finish_attempt(
            run.id,
            status="failed",
            exit_code=None,
            signal=None,
            failure=failure,
            summary=message,
            at=time.time(),
        )
        self._publish(run.id, "failed", summary=message)

    def _collect(self, run_id: str, state: AttemptState) -> None:
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
            self._publish(run_id, "failed", summary="lost", log_tail=self.log_tail(run)[-2000:])
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
            self._publish(run_id, "succeeded")
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
            self._publish(run_id, "retrying", summary=failure.summary, change=fix.reason)
        elif ask:
            self._publish(run_id, "asking", summary=failure.summary)
            self.advisor.consider(run, failure, tail)
        else:
            self._publish(run_id, "failed", summary=failure.summary, log_tail=tail[-2000:])

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
                handle = None if run.run_dir is None else self.executor.reattach(Path(run.run_dir))
                if handle is None:
                    # the wrapper never started: this attempt is launched again
                    self.records.requeue(run.id)
                    continue
                self._handles[run.id] = handle
                self.ledger.adopt(run.id, run.gpus)
                if run.status == "starting":
                    self.records.running(
                        run.id, pid=handle.pid, pgid=handle.pgid, start_time=handle.start_time
                    )

    def _publish(self, run_id: str, event: str, **extra: Any) -> None:
        self.events.publish({"type": "experiment", "event": event, "run": run_id, **extra})


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
    """The fixes so far: each failed attempt, and what the next one changed."""
    changes: list[Change] = []
    for failed, following in itertools.pairwise(attempts):
        if failed.failure not in _KINDS:
            continue
        changed = {k: v for k, v in following.params.items() if failed.params.get(k) != v}
        changes.append(
            Change(failed.attempt, FailureKind(failed.failure), changed, following.change or "")
        )
    return changes


def _retry_policy(spec: dict[str, Any]) -> RetryPolicy | None:
    data = spec.get("retry")
    return None if data is None else RetryPolicy.model_validate(data)
