"""The LLM fixer in the queue: a real run, a real HTTP endpoint on loopback, approval."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.daemon.backup.credentials import StaticCredentials
from labmind.daemon.config import ExperimentsConfig
from labmind.daemon.events import EventBus
from labmind.daemon.experiments import ExperimentService
from labmind.daemon.store import Store
from labmind.trainers.gpus import FakeInventory

from ..trainers.chat_server import ChatServer

TRAIN = (
    "import sys\n"
    "warmup = int(sys.argv[1])\n"
    "if warmup >= 500:\n"
    "    raise SystemExit('ValueError: warmup steps must be fewer than the 500 total steps')\n"
    "print('trained with warmup', warmup)\n"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.sqlite3")
    yield store
    store.close()


def spec(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(TRAIN)
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: warm\n"
        f"command: {sys.executable} train.py {{warmup}}\n"
        "params:\n  grid: {warmup: [1000]}\n"
        "retry: {max_attempts: 3, fixer: llm}\n"
    )
    return path


def settled(service: ExperimentService, sweep: str, statuses: set[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        [run] = service.runs(sweep)
        if run.status in statuses:
            return run.status
        time.sleep(0.05)
    raise AssertionError(f"run stuck: {service.runs(sweep)}")


def make(store: Store, tmp_path: Path, server: ChatServer, *, auto: bool) -> ExperimentService:
    config = ExperimentsConfig(
        llm_base_url=server.base_url, llm_model="fixer-1", llm_auto_apply=auto
    )
    host = server.base_url.split("/")[2]
    return ExperimentService(
        store,
        EventBus(),
        tmp_path / "runs",
        slots=1,
        inventory=FakeInventory(),
        config=config,
        credentials=StaticCredentials({host: "sk-test-key"}),
    )


ANSWER = json.dumps(
    {"changes": {"warmup": 100}, "command": None, "rationale": "warmup must be < 500 steps"}
)


def test_a_failure_the_rules_cannot_fix_gets_a_proposal_that_waits_for_approval(
    store: Store, tmp_path: Path
) -> None:
    with ChatServer(content=ANSWER) as server:
        service = make(store, tmp_path, server, auto=False)
        service.start()
        try:
            sweep = service.submit(str(spec(tmp_path))).sweep
            [run] = service.runs(sweep)
            deadline = time.monotonic() + 30
            while service.detail(run.id).proposal is None and time.monotonic() < deadline:
                time.sleep(0.05)
            detail = service.detail(run.id)
            assert detail.run.status == "needs_approval"
            assert detail.proposal is not None and detail.proposal["changes"] == {"warmup": 100}

            service.approve(run.id)
            assert settled(service, sweep, {"succeeded", "failed"}) == "succeeded"
        finally:
            service.stop()

    [request] = server.requests
    assert request.headers["authorization"] == "Bearer sk-test-key"
    assert request.body["model"] == "fixer-1"
    assert "warmup steps must be fewer" in json.dumps(request.body["messages"])
    [run] = service.runs(sweep)
    attempts = service.detail(run.id).attempts
    assert [a.params["warmup"] for a in attempts] == [1000, 100]
    assert "warmup must be < 500" in (attempts[1].change or "")


def test_with_auto_apply_the_proposal_is_the_next_attempt(store: Store, tmp_path: Path) -> None:
    with ChatServer(content=ANSWER) as server:
        service = make(store, tmp_path, server, auto=True)
        service.start()
        try:
            sweep = service.submit(str(spec(tmp_path))).sweep
            assert settled(service, sweep, {"succeeded"}) == "succeeded"
        finally:
            service.stop()
    [run] = service.runs(sweep)
    assert run.attempt == 2 and run.params["warmup"] == 100


def test_an_endpoint_that_fails_leaves_the_run_failed(store: Store, tmp_path: Path) -> None:
    with ChatServer(status=500) as server:
        service = make(store, tmp_path, server, auto=False)
        service.start()
        try:
            sweep = service.submit(str(spec(tmp_path))).sweep
            settled(service, sweep, {"failed"})
            deadline = time.monotonic() + 10
            while not server.requests and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            service.stop()
    [run] = service.runs(sweep)
    assert run.status == "failed" and run.attempt == 1
    assert len(server.requests) == 1
