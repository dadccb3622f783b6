"""The queue's slots with runs lined up behind running ones: real runs, one CPU slot."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labmind.daemon.events import EventBus
from labmind.daemon.experiments import ExperimentService
from labmind.daemon.store import Store
from labmind.trainers import run_dir as rd
from labmind.trainers.gpus import FakeInventory


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ExperimentService]:
    store = Store(tmp_path / "store.sqlite3")
    service = ExperimentService(
        store, EventBus(), tmp_path / "runs", slots=1, inventory=FakeInventory([])
    )
    service.start()
    yield service
    service.stop()
    store.close()


def write_spec(tmp_path: Path, runs: int) -> Path:
    """Runs that note each start in ``ran-<i>`` and wait for ``go-<i>`` (or ``go-all``)."""
    command = (
        f"echo x >> {tmp_path}/ran-{{i}}; "
        f"while [ ! -e {tmp_path}/go-{{i}} ] && [ ! -e {tmp_path}/go-all ]; do sleep 0.02; done"
    )
    spec = tmp_path / "waits.yaml"
    spec.write_text(
        f"name: waits\ncommand: '{command}'\nworkdir: {tmp_path}\n"
        f"params:\n  grid: {{i: {list(range(runs))}}}\nretry: {{max_attempts: 1}}\n"
    )
    return spec


def until(probe: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def statuses(service: ExperimentService, sweep: str) -> list[str]:
    """The store's statuses (``starting`` included: a run lined up is starting)."""
    return [r.status for r in service.records.runs(sweep_id=sweep)]


def ran(tmp_path: Path, i: int) -> int:
    path = tmp_path / f"ran-{i}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_one_slot_hands_over_to_the_run_lined_up_behind(
    service: ExperimentService, tmp_path: Path
) -> None:
    sweep = service.submit(str(write_spec(tmp_path, 3))).sweep
    until(lambda: statuses(service, sweep) == ["running", "starting", "queued"])
    time.sleep(0.3)
    assert [ran(tmp_path, i) for i in range(3)] == [1, 0, 0]  # one slot: one run at a time
    (tmp_path / "go-all").touch()
    until(lambda: statuses(service, sweep) == ["succeeded"] * 3)
    runs = service.records.runs(sweep_id=sweep)
    assert [ran(tmp_path, i) for i in range(3)] == [1, 1, 1]
    for before, after in itertools.pairwise(runs):
        assert before.run_dir is not None and after.started_at is not None
        ended = rd.read_exit(Path(before.run_dir))
        assert ended is not None
        # The next run started once the one before it was over, not before (one slot), and
        # the store has when it really started, not when it was lined up.
        assert ended.ended_at <= after.started_at < ended.ended_at + 0.5
        [attempt] = service.records.attempts(after.id)
        assert attempt.started_at == after.started_at


def test_pausing_takes_back_the_run_lined_up(service: ExperimentService, tmp_path: Path) -> None:
    sweep = service.submit(str(write_spec(tmp_path, 3))).sweep
    until(lambda: statuses(service, sweep) == ["running", "starting", "queued"])
    service.set_paused(True)
    until(lambda: statuses(service, sweep) == ["running", "queued", "queued"])
    (tmp_path / "go-0").touch()
    until(lambda: statuses(service, sweep)[0] == "succeeded")
    time.sleep(0.5)
    assert statuses(service, sweep) == ["succeeded", "queued", "queued"]
    assert [ran(tmp_path, i) for i in range(3)] == [1, 0, 0]
    (tmp_path / "go-all").touch()
    service.set_paused(False)
    until(lambda: statuses(service, sweep) == ["succeeded"] * 3)
    assert [ran(tmp_path, i) for i in range(3)] == [1, 1, 1]
    assert [r.attempt for r in service.records.runs(sweep_id=sweep)] == [1, 1, 1]


def test_cancelling_the_run_lined_up_lets_the_next_one_take_its_place(
    service: ExperimentService, tmp_path: Path
) -> None:
    sweep = service.submit(str(write_spec(tmp_path, 3))).sweep
    until(lambda: statuses(service, sweep) == ["running", "starting", "queued"])
    [_, second, _] = service.records.runs(sweep_id=sweep)
    service.cancel(second.id)
    until(lambda: statuses(service, sweep) == ["running", "cancelled", "starting"])
    (tmp_path / "go-all").touch()
    until(lambda: statuses(service, sweep) == ["succeeded", "cancelled", "succeeded"])
    assert [ran(tmp_path, i) for i in range(3)] == [1, 0, 1]
