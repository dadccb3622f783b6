"""The daemon following what the runs' sample trackers flag: store, announcements, route."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from labmind.daemon.events import EventBus
from labmind.daemon.experiment_store import ExperimentStore, NewRun
from labmind.daemon.outlier_store import OutlierStore
from labmind.daemon.outliers import OutlierService, StoreAttempts
from labmind.daemon.server import ApiError
from labmind.daemon.store import Store

DEADLINE_S = 10.0


class Recorder:
    """Collects published events (the `Publisher` the service is given)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)

    def publish(self, event: Mapping[str, Any]) -> None:
        with self.arrived:
            self.items.append(dict(event))
            self.arrived.notify_all()

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.items) >= count, DEADLINE_S), self.items
            return list(self.items)


class Lab:
    """A store with experiment runs whose attempt folders are under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store(root / "store.sqlite3")
        self.runs = ExperimentStore(self.store)
        self.events = Recorder()
        self.now = 1000.0

    def service(self, **options: Any) -> OutlierService:
        return OutlierService(
            OutlierStore(self.store),
            StoreAttempts(self.store),
            self.events,
            clock=lambda: self.now,
            **options,
        )

    def add_run(self, run_id: str) -> None:
        self.runs.add_sweep(
            run_id,
            name="sweep",
            spec_path="/spec.yaml",
            spec={},
            priority=0,
            at=self.now,
            code_commit=None,
            runs=[NewRun(run_id, 0, "sweep", {}, "train")],
        )

    def start(self, run_id: str, attempt: int = 1) -> Path:
        folder = self.root / "runs" / run_id / str(attempt)
        folder.mkdir(parents=True)
        self.runs.start_attempt(run_id, attempt, str(folder), gpus=(), at=self.now)
        self.runs.running(run_id, pid=1, pgid=1, start_time=1.0)
        return folder

    def finish(self, run_id: str) -> None:
        self.runs.finish_attempt(
            run_id,
            status="succeeded",
            exit_code=0,
            signal=None,
            failure=None,
            summary=None,
            at=self.now,
        )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    lab.store.close()


def flag(sample: int, score: float, *reasons: str, step: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "time": 1.5,
        "step": step,
        "epoch": 0,
        "sample": sample,
        "score": score,
        "reasons": list(reasons),
        "label": 1,
        "predicted": 2,
        "detail": {"loss": score},
        **extra,
    }


def spike(step: int, *samples: int, z: float = 9.0) -> dict[str, Any]:
    return {"time": 2.5, "step": step, "loss": 5.0, "baseline": 0.5, "z": z, "samples": [*samples]}


def append(path: Path, *records: dict[str, Any], tail: bytes = b"") -> None:
    with path.open("ab") as handle:
        handle.write(b"".join((json.dumps(r) + "\n").encode() for r in records) + tail)


def test_new_flags_of_a_running_attempt_are_announced_once(lab: Lab) -> None:
    lab.add_run("r1")
    folder = lab.start("r1")
    service = lab.service()
    append(
        folder / "outliers.jsonl",
        flag(3, 4.0, "label_error"),
        flag(5, 2.0, "spike"),
        flag(3, 4.5, "label_error"),
    )
    append(folder / "spikes.jsonl", spike(7, 5, 3))

    service.tick()
    service.tick()

    assert lab.events.items == [
        {
            "type": "outliers",
            "run": "r1",
            "attempt": 1,
            "new": 2,
            "reasons": {"label_error": 1, "spike": 1},
            "spikes": 1,
        }
    ]


def test_a_sample_flagged_again_is_not_new_but_gains_the_reason(lab: Lab) -> None:
    lab.add_run("r1")
    folder = lab.start("r1")
    service = lab.service()
    append(folder / "outliers.jsonl", flag(3, 4.0, "label_error"))
    service.tick()

    append(folder / "outliers.jsonl", flag(3, 6.0, "spike", step=20), flag(9, 1.0, "forgotten"))
    service.tick()

    assert [e["new"] for e in lab.events.items] == [1, 1]
    assert lab.events.items[1]["reasons"] == {"forgotten": 1}
    report = service.report("r1", limit=None, reason=None)
    assert [(s.sample, s.score, s.reasons, s.step) for s in report.samples] == [
        (3, 6.0, ["label_error", "spike"], 20),
        (9, 1.0, ["forgotten"], 10),
    ]


def test_a_line_still_being_written_is_read_once_it_is_whole(lab: Lab) -> None:
    lab.add_run("r1")
    folder = lab.start("r1")
    service = lab.service()
    line = json.dumps(flag(4, 3.0, "corrupted_input")).encode()
    append(folder / "outliers.jsonl", flag(1, 1.0, "label_error"), tail=b"garbage\n" + line[:15])

    service.tick()
    with (folder / "outliers.jsonl").open("ab") as handle:
        handle.write(line[15:] + b"\n")
    service.tick()

    assert [(e["new"], e["reasons"]) for e in lab.events.items] == [
        (1, {"label_error": 1}),
        (1, {"corrupted_input": 1}),
    ]


def test_a_restarted_daemon_announces_only_what_was_written_since(lab: Lab) -> None:
    lab.add_run("r1")
    folder = lab.start("r1")
    append(folder / "outliers.jsonl", flag(1, 1.0, "label_error"))
    append(folder / "spikes.jsonl", spike(3, 1))
    lab.service().tick()
    lab.store.close()

    lab.store = Store(lab.root / "store.sqlite3")
    append(folder / "outliers.jsonl", flag(1, 2.0, "label_error"), flag(2, 1.0, "spike"))
    restarted = lab.service()
    restarted.tick()
    restarted.tick()

    assert [(e["new"], e["spikes"]) for e in lab.events.items] == [(1, 1), (1, 0)]
    assert restarted.report("r1", limit=None, reason=None).flagged == 2


def test_an_attempt_that_ended_between_two_looks_is_read_to_its_end(lab: Lab) -> None:
    lab.add_run("r1")
    service = lab.service()
    service.tick()
    lab.now += 2
    folder = lab.start("r1")
    append(folder / "outliers.jsonl", flag(1, 1.0, "label_error"))
    lab.finish("r1")
    lab.now += 2

    service.tick()
    service.tick()

    assert [e["new"] for e in lab.events.items] == [1]


def test_nothing_is_read_while_no_run_is_going(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    lab.add_run("r1")
    folder = lab.start("r1")
    append(folder / "outliers.jsonl", flag(1, 1.0, "label_error"))
    lab.finish("r1")
    service = lab.service()
    for _ in range(2):
        service.tick()
        lab.now += 10
    reads: list[Path] = []

    def read_outliers(path: Path, offset: int, **options: Any) -> tuple[list[Any], int]:
        reads.append(path)
        return [], offset

    monkeypatch.setattr("labmind.daemon.outliers.read_outliers", read_outliers)

    service.tick()

    assert reads == []
    assert [e["new"] for e in lab.events.items] == [1]


def test_the_report_is_one_row_per_sample_by_score_with_filters_and_limits(lab: Lab) -> None:
    lab.add_run("r1")
    folder = lab.start("r1")
    append(
        folder / "outliers.jsonl",
        flag(1, 1.0, "label_error"),
        flag(2, 9.0, "corrupted_input"),
        flag(3, 5.0, "label_error", "spike"),
        flag(1, 7.0, "forgotten", step=30),
        flag(4, math.nan, "corrupted_input", detail={"loss": math.nan}),
    )
    append(folder / "spikes.jsonl", *(spike(step, step + 100) for step in (5, 9, 2)))
    service = lab.service()

    full = service.report("r", limit=None, reason=None)
    top = service.report("r1", limit=2, reason=None)
    labels = service.report("r1", limit=None, reason="label_error")

    assert (full.run, full.attempt, full.run_dir) == ("r1", 1, str(folder))
    assert [s.sample for s in full.samples] == [4, 2, 1, 3]
    assert full.samples[0].score is None and full.samples[0].detail == {"loss": None}
    assert full.samples[2].reasons == ["label_error", "forgotten"]
    assert full.flagged == 4
    assert full.reasons == {"corrupted_input": 2, "label_error": 2, "forgotten": 1, "spike": 1}
    assert [s.step for s in full.spikes] == [2, 5, 9] and full.spike_count == 3
    assert [s.sample for s in top.samples] == [4, 2]
    assert [s.step for s in top.spikes] == [5, 9]
    assert [s.sample for s in labels.samples] == [1, 3]
    assert labels.flagged == 4
    assert len(lab.events.items) == 1


def test_the_report_follows_the_latest_attempt(lab: Lab) -> None:
    lab.add_run("r1")
    first = lab.start("r1")
    append(first / "outliers.jsonl", flag(1, 1.0, "label_error"))
    service = lab.service()
    service.tick()
    lab.finish("r1")
    second = lab.start("r1", attempt=2)
    append(second / "outliers.jsonl", flag(8, 2.0, "spike"))

    report = service.report("r1", limit=None, reason=None)

    assert (report.attempt, [s.sample for s in report.samples]) == (2, [8])
    assert [(e["attempt"], e["new"]) for e in lab.events.items] == [(1, 1), (2, 1)]


def test_unknown_ambiguous_and_unstarted_runs(lab: Lab) -> None:
    lab.add_run("r1")
    lab.add_run("r2")
    service = lab.service()

    with pytest.raises(ApiError) as unknown:
        service.report("x", limit=None, reason=None)
    with pytest.raises(ApiError) as ambiguous:
        service.report("r", limit=None, reason=None)
    queued = service.report("r2", limit=None, reason=None)

    assert unknown.value.status == 404 and "labmind exp ls" in unknown.value.detail
    assert ambiguous.value.status == 409
    assert (queued.run, queued.run_dir, queued.flagged, queued.samples) == ("r2", None, 0, [])


def test_a_big_file_is_read_in_bounded_steps_and_caught_up_over_looks(lab: Lab) -> None:
    lab.add_run("r1")
    folder = lab.start("r1")
    append(folder / "outliers.jsonl", *(flag(i, float(i), "label_error") for i in range(3000)))
    service = lab.service(read_bytes=8192)

    service.tick()
    looks = 1
    while sum(e["new"] for e in lab.events.items) < 3000:
        service.tick()
        looks += 1
        assert looks < 100

    assert looks > 1
    assert sum(e["new"] for e in lab.events.items) == 3000
    assert service.report("r1", limit=1, reason=None).samples[0].sample == 2999


def test_the_thread_sleeps_until_an_experiment_event_wakes_it(lab: Lab) -> None:
    lab.add_run("r1")
    service = lab.service(interval_s=0.05, idle_s=3600)
    bus = EventBus()

    async def main() -> list[dict[str, Any]]:
        bus.bind(asyncio.get_running_loop())
        follower = asyncio.create_task(service.follow(bus))
        service.start()
        try:
            await asyncio.sleep(0)
            folder = lab.start("r1")
            append(folder / "outliers.jsonl", flag(1, 1.0, "label_error"))
            bus.publish({"type": "experiment", "event": "running", "run": "r1"})
            first = await asyncio.to_thread(lab.events.wait_for, 1)
            append(folder / "outliers.jsonl", flag(2, 1.0, "spike"))
            return first + (await asyncio.to_thread(lab.events.wait_for, 2))[1:]
        finally:
            bus.close()
            await asyncio.wait_for(follower, DEADLINE_S)
            await asyncio.to_thread(service.stop)

    started = time.monotonic()
    events = asyncio.run(main())

    assert [e["new"] for e in events] == [1, 1]
    assert time.monotonic() - started < DEADLINE_S
