"""`labmind outliers RUN` against a daemon answering the outliers route with canned models."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import HTTPException

from labmind.daemon.protocol import FlaggedSample, LossSpike, RunOutliers

from .test_cli import FakeDaemon, invoke, one_error_line, serving

SAMPLES = [
    FlaggedSample(
        sample=417,
        score=None,
        reasons=["corrupted_input"],
        label=None,
        predicted=None,
        step=90,
        epoch=1,
        time=1.0,
        detail={"loss": None},
    ),
    FlaggedSample(
        sample=12,
        score=7.25,
        reasons=["label_error", "spike"],
        label=3,
        predicted=8,
        step=120,
        epoch=2,
        time=2.0,
        detail={"margin": -2.0},
    ),
]
SPIKES = [
    LossSpike(step=77, time=1.5, loss=9.5, baseline=0.4, z=23.5, samples=list(range(10))),
]


class OutlierDaemon(FakeDaemon):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[tuple[str, int | None, str | None]] = []
        self.app.get("/exp/runs/{run_id}/outliers")(self.outliers)

    def outliers(
        self, run_id: str, limit: int | None = None, reason: str | None = None
    ) -> RunOutliers:
        self.queries.append((run_id, limit, reason))
        if run_id != "ab12-0":
            raise HTTPException(404, f"no run '{run_id}'; see `labmind exp ls`")
        return RunOutliers(
            run=run_id,
            attempt=2,
            run_dir="/runs/ab12-0/2",
            flagged=5,
            reasons={"label_error": 3, "corrupted_input": 1, "spike": 1},
            samples=SAMPLES,
            spike_count=4,
            spikes=SPIKES,
        )


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[OutlierDaemon]:
    home = Path(tempfile.mkdtemp(dir="/tmp", prefix="lm-"))
    monkeypatch.setenv("LABMIND_HOME", str(home))
    monkeypatch.setenv("LABMIND_NO_AUTOSTART", "1")
    monkeypatch.setenv("COLUMNS", "120")
    try:
        fake = OutlierDaemon()
        with serving(fake):
            yield fake
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_table_shows_samples_by_score_and_the_spikes(daemon: OutlierDaemon) -> None:
    result = invoke("outliers", "ab12-0")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "run ab12-0 (attempt 2): 5 samples flagged (label_error 3, corrupted_input 1, spike 1)"
    )
    row = next(line for line in lines if line.strip().startswith("12 "))
    assert row.split() == ["12", "7.25", "label_error,", "spike", "3", "→", "8", "120"]
    assert next(line for line in lines if line.strip().startswith("417 ")).split() == [
        "417",
        "nan",
        "corrupted_input",
        "90",
    ]
    assert "… and 3 more (--limit N shows more)" in lines
    assert "4 loss spikes (the latest 1)" in lines
    assert any(line.split()[:4] == ["77", "9.5", "0.4", "23.5"] for line in lines)
    assert "… (+2)" in result.stdout
    assert daemon.queries == [("ab12-0", 50, None)]


def test_json_is_the_whole_answer(daemon: OutlierDaemon) -> None:
    result = invoke("outliers", "ab12-0", "--json", "--limit", "2", "--reason", "label_error")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["sample"] for s in data["samples"]] == [417, 12]
    assert data["samples"][0]["score"] is None
    assert (data["run"], data["flagged"], data["spike_count"]) == ("ab12-0", 5, 4)
    assert daemon.queries == [("ab12-0", 2, "label_error")]


def test_errors_are_one_line(daemon: OutlierDaemon) -> None:
    unknown = invoke("outliers", "nope")
    bad_reason = invoke("outliers", "ab12-0", "--reason", "ugly")
    bad_limit = invoke("outliers", "ab12-0", "--limit", "0")

    assert unknown.exit_code == 1
    assert one_error_line(unknown) == "labmind: no run 'nope'; see `labmind exp ls`"
    assert bad_reason.exit_code != 0 and "--reason" in one_error_line(bad_reason)
    assert bad_limit.exit_code != 0 and "--limit" in one_error_line(bad_limit)
    assert [q[0] for q in daemon.queries] == ["nope"]
