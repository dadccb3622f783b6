"""The experiment queue with `executor = "ray"`: runs go to a real single-node Ray cluster."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.daemon.config import ExperimentsConfig
from labmind.daemon.events import EventBus
from labmind.daemon.experiments import ExperimentService
from labmind.daemon.store import Store
from labmind.trainers import ray_executor as rx

from ..trainers.ray_cluster import RayCluster, running_cluster

EXIT_AFTER = (
    "import sys, time; time.sleep(float(sys.argv[1])); print('done', sys.argv[2]); "
    "sys.exit(int(sys.argv[2]))"
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with running_cluster(num_cpus=2) as head:
        yield head


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.sqlite3")
    yield store
    store.close()


def service_on(cluster: RayCluster, store: Store, tmp_path: Path) -> ExperimentService:
    config = ExperimentsConfig(executor="ray", ray_address=cluster.address)
    return ExperimentService(store, EventBus(), tmp_path / "runs", slots=1, config=config)


def write_spec(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / "exit_after.py"
    script.write_text(EXIT_AFTER)
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\ncommand: {sys.executable} {script} {{pause}} {{code}}\n{body}")
    return spec


def wait_statuses(
    service: ExperimentService, sweep: str, wanted: set[str], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(run.status in wanted for run in service.runs(sweep)):
            return
        time.sleep(0.1)
    raise AssertionError(f"runs of {sweep} never all reached {wanted}: {service.runs(sweep)}")


def test_a_sweep_runs_as_ray_jobs_and_survives_a_daemon_restart(
    cluster: RayCluster, store: Store, tmp_path: Path
) -> None:
    spec = write_spec(
        tmp_path,
        "on-ray",
        "params: {grid: {code: [0, 3]}, fixed: {pause: 3}}\n"
        "resources: {cpus: 1}\nretry: {max_attempts: 1}\n",
    )
    first = service_on(cluster, store, tmp_path)
    first.start()
    try:
        sweep = first.submit(str(spec)).sweep
        # Both fit the cluster's 2 CPUs at once, whatever the local slots say.
        wait_statuses(first, sweep, {"running"})
    finally:
        first.stop()  # the daemon goes away; the jobs go on

    second = service_on(cluster, store, tmp_path)
    second.start()
    try:
        wait_statuses(second, sweep, {"succeeded", "failed"})
    finally:
        second.stop()

    details = {run.params["code"]: second.detail(run.id) for run in second.runs(sweep)}
    assert details[0].run.status == "succeeded"
    assert (details[3].run.status, details[3].run.exit_code) == ("failed", 3)
    assert "done 3" in details[3].log_tail
    assert [len(d.attempts) for d in details.values()] == [1, 1]
    jobs = rx.connect(cluster.address)
    assert len(jobs.jobs()) == 2  # one job per run: the restart submitted nothing again
    for detail in details.values():
        assert jobs.job(rx.submission_id(detail.run.id, 1)) is not None


def test_a_run_the_cluster_can_never_hold_fails_at_once(
    cluster: RayCluster, store: Store, tmp_path: Path
) -> None:
    spec = write_spec(
        tmp_path, "too-big", "params: {fixed: {pause: 0, code: 0}}\nresources: {gpus: 1}\n"
    )
    service = service_on(cluster, store, tmp_path)
    service.start()
    try:
        sweep = service.submit(str(spec)).sweep
        wait_statuses(service, sweep, {"failed"})
    finally:
        service.stop()

    [run] = service.runs(sweep)
    assert "asks for 1 GPU but the Ray cluster has 0" in (run.summary or "")
