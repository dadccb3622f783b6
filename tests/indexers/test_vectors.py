from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from labmind.indexers.chunk import content_key
from labmind.indexers.vectors import VectorIndex, VectorIndexError, keys_checksum

DIM = 32
F16_TOLERANCE = 3e-3


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    unit: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit.astype(np.float32)


def clustered(rng: np.random.Generator, n: int, clusters: int = 40) -> npt.NDArray[np.float32]:
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    rows = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM))
    unit: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit.astype(np.float32)


def random_keys(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    keys = np.unique(rng.integers(0, 2**63 - 1, size=n * 2, dtype=np.int64))[:n]
    rng.shuffle(keys)
    assert keys.size == n
    return keys


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_empty_index(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    assert len(index) == 0
    assert index.search(unit_rows(rng, 1)[0], 5) == []
    assert index.similarities(unit_rows(rng, 1)[0], [1, 2]) == {}
    assert not index.contains(1)
    assert index.checksum() == keys_checksum([])


def test_add_and_search_finds_itself(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    keys = np.array([content_key(f"chunk {i}") for i in range(200)], dtype=np.int64)
    rows = unit_rows(rng, 200)
    index.add(keys, rows)
    assert len(index) == 200
    assert all(index.contains(int(key)) for key in keys)
    assert not index.contains(-1)
    assert not index.contains(2**63)

    hits = index.search(rows[17], 5)
    assert hits[0][0] == int(keys[17])
    assert hits[0][1] == pytest.approx(1.0, abs=F16_TOLERANCE)
    sims = [sim for _, sim in hits]
    assert sims == sorted(sims, reverse=True)
    assert all(-1.0 <= sim <= 1.0 for sim in sims)
    assert len(index.search(rows[0], 1000)) == 200
    assert index.search(rows[0], 0) == []


def test_vectors_are_compared_by_direction(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    row = unit_rows(rng, 1)
    index.add([7], row * 5.0)
    [(key, sim)] = index.search(row[0] * 0.1, 1)
    assert key == 7
    assert sim == pytest.approx(1.0, abs=F16_TOLERANCE)
    assert index.search(-row[0], 1)[0][1] == pytest.approx(-1.0, abs=F16_TOLERANCE)


def test_readding_a_key_replaces_its_vector(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    keys = random_keys(rng, 50)
    rows = unit_rows(rng, 50)
    index.add(keys, rows)
    replacement = unit_rows(rng, 1)
    index.add(keys[:1], replacement)
    index.add(keys[1:3], rows[1:3])
    assert len(index) == 50
    [(key, sim)] = index.search(replacement[0], 1)
    assert key == int(keys[0])
    assert sim == pytest.approx(1.0, abs=F16_TOLERANCE)
    sims = index.similarities(replacement[0], keys[:1])
    assert sims[int(keys[0])] == pytest.approx(1.0, abs=F16_TOLERANCE)


def test_duplicate_keys_in_one_batch_keep_the_last(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    rows = unit_rows(rng, 3)
    index.add(np.array([5, 9, 5], dtype=np.int64), rows)
    assert len(index) == 2
    assert index.similarities(rows[2], [5])[5] == pytest.approx(1.0, abs=F16_TOLERANCE)
    assert sorted(index.keys().tolist()) == [5, 9]


def test_remove(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    keys = random_keys(rng, 100)
    rows = unit_rows(rng, 100)
    index.add(keys, rows)
    assert index.remove(keys[:10]) == 10
    assert index.remove(keys[:10]) == 0
    assert index.remove([]) == 0
    assert len(index) == 90
    assert not index.contains(int(keys[0]))
    removed = {int(key) for key in keys[:10]}
    for row in rows[:10]:
        assert removed.isdisjoint(key for key, _ in index.search(row, 100))
    index.add(keys[:1], rows[:1])
    assert index.search(rows[0], 1)[0][0] == int(keys[0])


def test_exact_and_approximate_search_agree(rng: np.random.Generator) -> None:
    rows = clustered(rng, 3000)
    keys = random_keys(rng, 3000)
    exact = VectorIndex(DIM, exact_below=10**9)
    approximate = VectorIndex(DIM, exact_below=0)
    exact.add(keys, rows)
    approximate.add(keys, rows)
    queries = clustered(rng, 50)
    truth = np.argsort(-(queries @ rows.T), axis=1)[:, :10]

    exact_recall = approx_recall = 0
    for query, best in zip(queries, truth, strict=True):
        expected = {int(keys[i]) for i in best}
        exact_hits = exact.search(query, 10)
        approx_hits = approximate.search(query, 10)
        exact_recall += len(expected & {key for key, _ in exact_hits})
        approx_recall += len(expected & {key for key, _ in approx_hits})
        by_key = dict(zip(keys.tolist(), (rows @ query).tolist(), strict=True))
        for key, sim in exact_hits + approx_hits:
            assert sim == pytest.approx(by_key[key], abs=F16_TOLERANCE)
    assert exact_recall / 500 >= 0.98
    assert approx_recall / 500 >= 0.9


def test_similarities_score_given_keys_only(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    keys = random_keys(rng, 20)
    rows = unit_rows(rng, 20)
    index.add(keys, rows)
    query = unit_rows(rng, 1)[0]
    wanted = [int(keys[3]), int(keys[11]), 12345]
    sims = index.similarities(query, wanted)
    assert set(sims) == {int(keys[3]), int(keys[11])}
    assert sims[int(keys[3])] == pytest.approx(float(rows[3] @ query), abs=F16_TOLERANCE)
    assert sims[int(keys[11])] == pytest.approx(float(rows[11] @ query), abs=F16_TOLERANCE)


def test_bad_input_is_rejected(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    with pytest.raises(ValueError, match="non-negative"):
        index.add([-1], unit_rows(rng, 1))
    with pytest.raises(ValueError, match="shape"):
        index.add([1], unit_rows(rng, 1, DIM + 1))
    with pytest.raises(ValueError, match="2 keys but 1 vectors"):
        index.add([1, 2], unit_rows(rng, 1))
    with pytest.raises(ValueError, match="non-zero"):
        index.add([1], np.zeros((1, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match="query"):
        index.search(np.ones(DIM + 1, dtype=np.float32), 3)
    assert len(index) == 0


def test_checksum_tracks_contents(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    keys = random_keys(rng, 30)
    rows = unit_rows(rng, 30)
    index.add(keys[:20], rows[:20])
    before = index.checksum()
    assert before == keys_checksum(keys[:20].tolist())
    assert before == keys_checksum(reversed(keys[:20].tolist()))
    assert 0 <= before < 2**63

    index.add(keys[20:], rows[20:])
    assert index.checksum() != before
    assert index.checksum() == keys_checksum(keys)
    index.remove(keys[20:])
    assert index.checksum() == before
    index.remove(keys[:1])
    assert index.checksum() != before
    assert keys_checksum([]) != keys_checksum([0])


def test_save_and_load_roundtrip(tmp_path: Path, rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    keys = random_keys(rng, 500)
    rows = clustered(rng, 500)
    index.add(keys, rows)
    index.remove(keys[:5])
    path = tmp_path / "index" / "vectors.usearch"
    index.save(path)
    index.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["vectors.usearch"]

    loaded = VectorIndex.load(path, DIM)
    assert len(loaded) == len(index) == 495
    assert loaded.checksum() == index.checksum()
    assert sorted(loaded.keys().tolist()) == sorted(index.keys().tolist())
    for row in rows[:20]:
        assert loaded.search(row, 5) == index.search(row, 5)
    loaded.add(keys[:5], rows[:5])
    assert len(loaded) == 500


def corrupt(data: bytes, how: str) -> bytes:
    if how == "flipped byte":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        return bytes(flipped)
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "header only":
        return data[:20]
    if how == "empty":
        return b""
    return b"hello world " * 40


@pytest.mark.parametrize(
    "how", ["flipped byte", "truncated", "header only", "empty", "not an index"]
)
def test_corrupt_file_raises_vector_index_error(
    tmp_path: Path, rng: np.random.Generator, how: str
) -> None:
    index = VectorIndex(DIM)
    index.add(random_keys(rng, 100), unit_rows(rng, 100))
    good = tmp_path / "good.usearch"
    index.save(good)
    bad = tmp_path / "bad.usearch"
    bad.write_bytes(corrupt(good.read_bytes(), how))
    with pytest.raises(VectorIndexError):
        VectorIndex.load(bad, DIM)


def test_load_checks_dimension_and_existence(tmp_path: Path, rng: np.random.Generator) -> None:
    index = VectorIndex(DIM)
    index.add(random_keys(rng, 10), unit_rows(rng, 10))
    path = tmp_path / "vectors.usearch"
    index.save(path)
    with pytest.raises(VectorIndexError, match="dimension"):
        VectorIndex.load(path, DIM * 2)
    with pytest.raises(FileNotFoundError):
        VectorIndex.load(tmp_path / "missing.usearch", DIM)


def test_search_while_another_thread_adds(rng: np.random.Generator) -> None:
    index = VectorIndex(DIM, exact_below=500)
    keys = random_keys(rng, 4000)
    rows = clustered(rng, 4000)
    index.add(keys[:100], rows[:100])
    queries = clustered(rng, 20)
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for start in range(100, 4000, 100):
                index.add(keys[start : start + 100], rows[start : start + 100])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                for query in queries:
                    hits = index.search(query, 10)
                    assert len(hits) == 10
                    assert len({key for key, _ in hits}) == 10
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(index) == 4000
    assert index.checksum() == keys_checksum(keys)
