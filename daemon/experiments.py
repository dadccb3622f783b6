"""The experiments side of the API: submitting specs, reading runs, acting on them.

The queue itself (starting, watching, retrying) lives in `ExperimentQueue`; this
service turns specs into queued runs (with a snapshot of the code they will run) and
answers the routes. Pausing the queue is remembered across restarts.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labmind.trainers.executor import Executor
from labmind.trainers.gpu_ledger import SharingPolicy
from labmind.trainers.gpus import GpuInventory, NvmlInventory
from labmind.trainers.local_executor import LocalExecutor
from labmind.trainers.ray_executor import RayExecutor
from labmind.trainers.run_dir import METRICS_FILE, read_log, read_metrics
from labmind.trainers.spec import Spec, SpecError, load_spec
from labmind.trainers.sweep import expand

from .backup.credentials import CredentialSource, KeyringCredentials
from .config import ExperimentsConfig
from .events import EventBus
from .experiment_advice import LlmAdvisor
from .experiment_queue import ExperimentQueue
from .experiment_store import ExperimentStore, NewRun, NextAttempt, RunRow
from .protocol import AttemptInfo, LogChunk, RunDetail, RunInfo, SubmitResult
from .server import ApiError
from .store import Store

PAUSED_KEY = "experiments.paused"
LOG_CHUNK = 65_536
METRIC_POINTS = 200


class ExperimentService:
    """Owns the queue and answers the experiment routes."""

    def __init__(
        self,
        store: Store,
        events: EventBus,
        runs_dir: Path,
        *,
        slots: int,
        executor: Executor | None = None,
        snapshot_code: Callable[[Path], str | None] = lambda _folder: None,
        inventory: GpuInventory | None = None,
        sharing: SharingPolicy | None = None,
        config: ExperimentsConfig | None = None,
        credentials: CredentialSource | None = None,
    ) -> None:
        self.records = ExperimentStore(store)
        self.store = store
        self.events = events
        self.snapshot_code = snapshot_code
        self.config = config if config is not None else ExperimentsConfig()
        self.credentials = credentials if credentials is not None else KeyringCredentials()
        self.advisor = LlmAdvisor(
            self.records,
            events,
            config=lambda: self.config,
            credentials=self.credentials,
            command_for=lambda run, params: self.queue.command_for(run, params),
            wake=self.kick,
        )
        self.queue = ExperimentQueue(
            self.records,
            events,
            runs_dir,
            slots=slots,
            executor=executor if executor is not None else LocalExecutor(),
            inventory=inventory if inventory is not None else NvmlInventory(),
            sharing=sharing if sharing is not None else SharingPolicy(),
            paused=store.get_meta(PAUSED_KEY) == "1",
            advisor=self.advisor,
            cluster=lambda: RayExecutor(self.config.ray_address),
            default_executor=self.config.executor,
        )

    def start(self) -> None:
        self.queue.start()

    def stop(self) -> None:
        """Stop supervising; the runs go on and are reattached at the next start."""
        self.queue.stop()
        self.advisor.join(5.0)

    def kick(self) -> None:
        self.queue.kick()

    # -- routes ------------------------------------------------------------------------------

    def submit(self, spec_path: str) -> SubmitResult:
        """Queue every run of the spec at ``spec_path``."""
        self.queue.expect()
        try:
            spec = load_spec(Path(spec_path).expanduser())
        except SpecError as exc:
            raise ApiError(400, str(exc)) from exc
        except OSError as exc:
            raise ApiError(400, f"{spec_path}: {exc.strerror or exc}") from exc
        plans = expand(spec)
        sweep_id = secrets.token_hex(4)
        runs = [
            NewRun(f"{sweep_id}-{p.index}", p.index, p.name, dict(p.params), p.command)
            for p in plans
        ]
        self.records.add_sweep(
            sweep_id,
            name=spec.name,
            spec_path=str(Path(spec_path).expanduser().resolve()),
            spec=_spec_record(spec),
            priority=spec.priority,
            at=time.time(),
            code_commit=self.snapshot_code(spec.workdir),
            runs=runs,
        )
        self.events.publish(
            {"type": "experiment", "event": "submitted", "sweep": sweep_id, "runs": len(runs)}
        )
        self.kick()
        return SubmitResult(
            sweep=sweep_id,
            runs=[run_info(r) for r in self.records.runs(sweep_id=sweep_id)],
            warnings=list(spec.warnings),
        )

    def runs(self, sweep: str | None) -> list[RunInfo]:
        return [run_info(r) for r in self.records.runs(sweep_id=sweep)]

    def detail(self, run_id: str) -> RunDetail:
        run = self.find(run_id)
        metrics: dict[str, list[float]] = {}
        if run.run_dir is not None:
            records, _ = read_metrics(Path(run.run_dir) / METRICS_FILE, 0)
            for record in records[-METRIC_POINTS:]:
                for name, value in record.items():
                    if name not in ("step", "time") and isinstance(value, int | float):
                        metrics.setdefault(name, []).append(float(value))
        return RunDetail(
            run=run_info(run),
            code_commit=self.records.sweep_code(run.sweep_id),
            attempts=[
                AttemptInfo.model_validate(a, from_attributes=True)
                for a in self.records.attempts(run.id)
            ],
            run_dir=run.run_dir,
            log_tail=self.log_tail(run),
            metrics=metrics,
            proposal=run.proposal,
        )

    def log(self, run_id: str, offset: int) -> LogChunk:
        """The latest attempt's output from byte ``offset`` on (at most ``LOG_CHUNK`` bytes)."""
        run = self.find(run_id)
        finished = run.status not in ("queued", "starting", "running")
        if run.run_dir is None:
            return LogChunk(text="", offset=0, finished=finished)
        data = read_log(Path(run.run_dir), offset, LOG_CHUNK)
        more = len(data) == LOG_CHUNK
        return LogChunk(
            text=data.decode("utf-8", "replace"),
            offset=offset + len(data),
            finished=finished and not more,
        )

    def act(self, run_id: str, action: str) -> RunInfo:
        if action == "cancel":
            return run_info(self.cancel(run_id))
        if action == "retry":
            return run_info(self.retry(run_id))
        return run_info(self.approve(run_id))

    def find(self, run_id: str) -> RunRow:
        found = self.records.find(run_id)
        if not found:
            raise ApiError(404, f"no run '{run_id}'; see `labmind exp ls`")
        if len(found) > 1:
            raise ApiError(409, f"'{run_id}' names {len(found)} runs; give more of the id")
        return found[0]

    def cancel(self, run_id: str) -> RunRow:
        run = self.find(run_id)
        self.queue.cancel(run)
        return self.find(run.id)

    def retry(self, run_id: str) -> RunRow:
        """Queue a finished (failed or cancelled) run again as a new attempt, unchanged."""
        run = self.find(run_id)
        if run.status not in ("failed", "cancelled", "needs_approval"):
            raise ApiError(409, f"run {run.id} is {run.status}; only finished runs are retried")
        self.records.retry(
            run.id,
            NextAttempt(run.params, run.command, "retried by the user"),
            attempt=run.attempt + 1,
        )
        self.kick()
        return self.find(run.id)

    def approve(self, run_id: str) -> RunRow:
        """Apply the fix a run is waiting on and queue it."""
        run = self.find(run_id)
        if run.status != "needs_approval":
            raise ApiError(409, f"run {run.id} has no proposal waiting for approval")
        if run.proposal is None:
            raise ApiError(409, f"the LLM fixer has not answered for run {run.id} yet; try again")
        params = {**run.params, **dict(run.proposal.get("changes") or {})}
        command = run.proposal.get("command") or self.queue.command_for(run, params)
        reason = f"approved: {run.proposal.get('rationale', 'the proposed fix')}"
        self.records.retry(
            run.id, NextAttempt(params, str(command), reason), attempt=run.attempt + 1
        )
        self.kick()
        return self.find(run.id)

    def set_paused(self, paused: bool) -> None:
        self.queue.paused = paused
        self.store.set_meta(PAUSED_KEY, "1" if paused else "0")
        self.kick()

    def log_tail(self, run: RunRow) -> str:
        return self.queue.log_tail(run)


def run_info(run: RunRow) -> RunInfo:
    status = "running" if run.status == "starting" else run.status
    return RunInfo(
        id=run.id,
        name=run.name,
        status=status,  # type: ignore[arg-type]
        params=run.params,
        attempt=run.attempt,
        exit_code=run.exit_code,
        sweep=run.sweep_id,
        command=run.command,
        submitted_at=run.submitted_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        failure=run.failure,
        summary=run.summary,
    )


def _spec_record(spec: Spec) -> dict[str, Any]:
    """What the queue needs of a spec later (the rest is in the spec file)."""
    return {
        "name": spec.name,
        "command": spec.command,
        "workdir": str(spec.workdir),
        "env": dict(spec.env),
        "depends_on": list(spec.depends_on),
        "timeout_s": spec.timeout_s,
        "retry": spec.retry.model_dump(),
        "resources": spec.resources.model_dump(),
        "executor": spec.executor,
    }
