"""``labmind.trainers.track.log`` from real processes, and the daemon-side reader."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.trainers import run_dir as rd
from labmind.trainers.track import log, metrics


@pytest.fixture(autouse=True)
def _fresh_sink() -> Iterator[None]:
    metrics._sink.close()
    yield
    metrics._sink.close()


def run_python(code: str, run_dir: Path | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != rd.RUN_DIR_ENV}
    if run_dir is not None:
        env[rd.RUN_DIR_ENV] = str(run_dir)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def strict_lines(path: Path) -> list[dict[str, object]]:
    """Every line, parsed as strict JSON (no NaN or Infinity literals)."""

    def refuse(name: str) -> object:
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_log_from_a_training_process(tmp_path: Path) -> None:
    code = """
import numpy as np
from labmind.trainers.track import log
class Scalar:
    def __float__(self): return 0.125
log(0, loss=np.float32(0.5), acc=1)
log(1, loss=float("nan"), grad=float("inf"), neg=float("-inf"))
log(2, loss=Scalar())
"""
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = strict_lines(tmp_path / rd.METRICS_FILE)
    assert [line["step"] for line in lines] == [0, 1, 2]
    assert lines[0]["loss"] == 0.5
    assert lines[0]["acc"] == 1.0
    assert (lines[1]["loss"], lines[1]["grad"], lines[1]["neg"]) == ("nan", "inf", "-inf")
    assert all(isinstance(line["time"], float) for line in lines)

    records, offset = rd.read_metrics(tmp_path / rd.METRICS_FILE)
    assert offset == (tmp_path / rd.METRICS_FILE).stat().st_size
    assert math.isnan(records[1]["loss"])
    assert records[1]["grad"] == math.inf
    assert records[1]["neg"] == -math.inf
    assert records[2]["loss"] == 0.125


def test_the_client_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import sys; from labmind.trainers.track import log; log(1, x=2.0); "
        "print(sorted(m for m in ('numpy', 'torch', 'labmind.daemon') if m in sys.modules))"
    )
    done = run_python(code, tmp_path)
    assert done.stdout.strip() == "[]", done.stderr


def test_without_a_run_folder_nothing_happens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(rd.RUN_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    log(1, loss=1.0)
    assert list(tmp_path.iterdir()) == []
    done = run_python("from labmind.trainers.track import log; log(3, loss=1.0)", None)
    assert (done.returncode, done.stderr) == (0, "")


def test_a_new_run_folder_gets_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.setenv(rd.RUN_DIR_ENV, str(first))
    log(1, loss=1.0)
    monkeypatch.setenv(rd.RUN_DIR_ENV, str(second))
    log(2, loss=2.0)
    assert [r["step"] for r in strict_lines(first / rd.METRICS_FILE)] == [1]
    assert [r["step"] for r in strict_lines(second / rd.METRICS_FILE)] == [2]


def test_reserved_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rd.RUN_DIR_ENV, raising=False)
    with pytest.raises(ValueError, match="reserved"):
        log(1, time=3.0)


def test_a_missing_run_folder_warns_once_and_training_goes_on(tmp_path: Path) -> None:
    code = "from labmind.trainers.track import log\nfor i in range(3): log(i, loss=1.0)"
    done = run_python(code, tmp_path / "gone")
    assert done.returncode == 0
    assert done.stderr.count("cannot write metrics") == 1


def test_concurrent_writers_never_split_a_line(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom labmind.trainers.track import log\n"
        "for i in range(400): log(i, **{f'metric_{k}_' + sys.argv[1]: k * 0.5 for k in range(20)})"
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", code, tag],
            env={**os.environ, rd.RUN_DIR_ENV: str(tmp_path)},
        )
        for tag in ("a", "b")
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    lines = strict_lines(tmp_path / rd.METRICS_FILE)
    assert len(lines) == 800
    assert all(len(line) == 22 for line in lines)


def test_read_metrics_leaves_a_partial_last_line_for_later(tmp_path: Path) -> None:
    path = tmp_path / rd.METRICS_FILE
    path.write_bytes(b'{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    records, offset = rd.read_metrics(path, 0)
    assert records == [{"step": 1, "loss": 0.5}]
    assert offset == len(b'{"step": 1, "loss": 0.5}\n')
    assert rd.read_metrics(path, offset) == ([], offset)
    with path.open("ab") as handle:
        handle.write(b'ss": 0.25}\n')
    records, offset = rd.read_metrics(path, offset)
    assert records == [{"step": 2, "loss": 0.25}]
    assert offset == path.stat().st_size


def test_read_metrics_skips_bad_lines_and_follows_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / rd.METRICS_FILE
    assert rd.read_metrics(path, 7) == ([], 7)  # not there yet
    path.write_bytes(b'garbage\n{"loss": 1}\n[1]\n{"step": 3, "loss": "NaN?", "ok": 2}\n')
    records, offset = rd.read_metrics(path)
    assert records == [{"step": 3, "ok": 2}]
    path.write_bytes(b'{"step": 9}\n')  # shorter than the offset: a new file
    assert rd.read_metrics(path, offset) == ([{"step": 9}], len(b'{"step": 9}\n'))


def test_read_metrics_reads_in_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / rd.METRICS_FILE
    path.write_bytes(b"".join(b'{"step": %d}\n' % i for i in range(100)))
    seen: list[float] = []
    offset = 0
    while True:
        records, offset = rd.read_metrics(path, offset, max_bytes=64)
        if not records:
            break
        seen += [r["step"] for r in records]
    assert seen == list(range(100))
    assert offset == path.stat().st_size
