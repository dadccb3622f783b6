"""The vector store: a usearch ANN index keyed by 63-bit chunk content hashes.

Vectors are stored L2-normalised in half precision with the cosine metric; search
is exact (brute force) while the index is small and HNSW above ``exact_below``.

File format (one file, replaced atomically on save)::

    header: magic b"LMVECT01", u32 version, u32 dim, u64 count, u64 checksum,
            32-byte blake2b digest of the payload
    payload: the usearch serialisation
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from usearch.index import Index

KEY_LIMIT = 1 << 63
_MAGIC = b"LMVECT01"
_VERSION = 1
_HEADER = struct.Struct("<8sIIQQ32s")
_DTYPE = "f16"
_COUNT_SALT = 0x9E37_79B9_7F4A_7C15

Keys = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


class VectorIndexError(Exception):
    """The vector file is unreadable, corrupt, or does not match what was asked for."""


def _mix(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser, so sums of keys do not cancel out by accident."""
    z = keys + np.uint64(0x9E37_79B9_7F4A_7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58_476D_1CE4_E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D0_49BB_1331_11EB)
    return z ^ (z >> np.uint64(31))


def keys_checksum(keys: Iterable[int] | npt.NDArray[Any]) -> int:
    """Order-independent 63-bit checksum of a set of keys and their count.

    ``VectorIndex.checksum()`` is this over the keys it holds; callers compute it over
    their own records to decide whether a saved index still matches.
    """
    array = np.unique(_as_keys(keys))
    total = int(_mix(array).sum(dtype=np.uint64)) if array.size else 0
    return (total + array.size * _COUNT_SALT) % KEY_LIMIT


def _as_keys(keys: Iterable[int] | npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    array = np.asarray(keys if isinstance(keys, np.ndarray) else list(keys))
    array = array.reshape(-1)
    if array.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"keys must be integers, not {array.dtype}")
    if np.issubdtype(array.dtype, np.signedinteger) and bool((array < 0).any()):
        raise ValueError("keys must be non-negative 63-bit integers")
    unsigned = array.astype(np.uint64)
    if bool((unsigned >= np.uint64(KEY_LIMIT)).any()):
        raise ValueError("keys must be non-negative 63-bit integers")
    return unsigned


class VectorIndex:
    """Cosine ANN index over unit vectors, keyed by 63-bit ints. Thread-safe."""

    def __init__(self, dim: int, *, exact_below: int = 20_000) -> None:
        if dim < 1:
            raise ValueError("dim must be at least 1")
        self._dim = dim
        self._exact_below = exact_below
        self._index = Index(ndim=dim, metric="cos", dtype=_DTYPE)
        self._lock = threading.RLock()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def exact_below(self) -> int:
        return self._exact_below

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def contains(self, key: int) -> bool:
        if not 0 <= key < KEY_LIMIT:
            return False
        with self._lock:
            return bool(self._index.contains(key))

    def keys(self) -> Keys:
        """The keys held, in no particular order."""
        with self._lock:
            held = np.asarray(self._index.keys[:], dtype=np.uint64)
        return held.astype(np.int64)

    def checksum(self) -> int:
        """``keys_checksum`` of the keys held: compare with the caller's records."""
        return keys_checksum(self.keys())

    def add(self, keys: Iterable[int] | npt.NDArray[Any], vectors: npt.ArrayLike) -> None:
        """Store ``vectors`` under ``keys``; a key already present gets the new vector."""
        ukeys = _as_keys(keys)
        rows = self._as_rows(vectors)
        if rows.shape[0] != ukeys.size:
            raise ValueError(f"{ukeys.size} keys but {rows.shape[0]} vectors")
        if ukeys.size == 0:
            return
        unique, last_from_end = np.unique(ukeys[::-1], return_index=True)
        if unique.size != ukeys.size:
            picked = ukeys.size - 1 - last_from_end
            ukeys, rows = ukeys[picked], rows[picked]
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        if not bool(np.isfinite(rows).all()) or bool((norms == 0.0).any()):
            raise ValueError("vectors must be finite and non-zero")
        rows = np.ascontiguousarray(rows / norms, dtype=np.float32)
        with self._lock:
            present = np.asarray(self._index.contains(ukeys), dtype=bool).reshape(-1)
            if present.any():
                self._index.remove(ukeys[present])
            self._index.add(ukeys, rows)

    def remove(self, keys: Iterable[int] | npt.NDArray[Any]) -> int:
        """Drop ``keys`` (absent ones are ignored); returns how many were removed."""
        ukeys = np.unique(_as_keys(keys))
        if ukeys.size == 0:
            return 0
        with self._lock:
            present = np.asarray(self._index.contains(ukeys), dtype=bool).reshape(-1)
            if not present.any():
                return 0
            self._index.remove(ukeys[present])
            return int(present.sum())

    def search(self, query: npt.ArrayLike, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest keys with their cosine similarity, best first."""
        q = self._as_query(query)
        if q is None or k <= 0:
            return []
        with self._lock:
            size = len(self._index)
            if size == 0:
                return []
            matches = self._index.search(q, min(k, size), exact=size < self._exact_below)
            found = np.asarray(matches.keys, dtype=np.uint64).reshape(-1)
            distances = np.asarray(matches.distances, dtype=np.float64).reshape(-1)
        keep = np.isfinite(distances)
        similarity = np.clip(1.0 - distances[keep], -1.0, 1.0)
        return [(int(key), float(sim)) for key, sim in zip(found[keep], similarity, strict=True)]

    def similarities(
        self, query: npt.ArrayLike, keys: Iterable[int] | npt.NDArray[Any]
    ) -> dict[int, float]:
        """Cosine of ``query`` with the stored vector of each key; missing keys are left out."""
        q = self._as_query(query)
        ukeys = np.unique(_as_keys(keys))
        if q is None or ukeys.size == 0:
            return {}
        with self._lock:
            present = np.asarray(self._index.contains(ukeys), dtype=bool).reshape(-1)
            held = ukeys[present]
            if held.size == 0:
                return {}
            stored: Any = self._index.get(held, dtype="f32")
        rows = np.asarray(stored, dtype=np.float32).reshape(held.size, self._dim)
        norms = np.linalg.norm(rows, axis=1)
        norms[norms == 0.0] = 1.0
        cosines = np.clip((rows @ q) / norms, -1.0, 1.0)
        return {int(key): float(cos) for key, cos in zip(held, cosines, strict=True)}

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically (temp file, fsync, rename)."""
        with self._lock:
            serialised = self._index.save()
            count = len(self._index)
            checksum = keys_checksum(np.asarray(self._index.keys[:], dtype=np.uint64))
        if serialised is None:
            raise VectorIndexError("usearch returned no data to save")
        payload = serialised
        digest = hashlib.blake2b(payload, digest_size=32).digest()
        header = _HEADER.pack(_MAGIC, _VERSION, self._dim, count, checksum, digest)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(header)
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path, dim: int, *, exact_below: int = 20_000) -> VectorIndex:
        """Read a file written by ``save``; ``VectorIndexError`` if it is corrupt or differs.

        A missing file raises ``FileNotFoundError``.
        """
        data = Path(path).read_bytes()
        if len(data) < _HEADER.size:
            raise VectorIndexError(f"vector index {path} is truncated ({len(data)} bytes)")
        magic, version, file_dim, count, checksum, digest = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise VectorIndexError(f"{path} is not a labmind vector index")
        if version != _VERSION:
            raise VectorIndexError(f"vector index {path} has unsupported version {version}")
        if file_dim != dim:
            raise VectorIndexError(f"vector index {path} has dimension {file_dim}, expected {dim}")
        payload = memoryview(data)[_HEADER.size :]
        if hashlib.blake2b(payload, digest_size=32).digest() != digest:
            raise VectorIndexError(f"vector index {path} is corrupt (digest mismatch)")
        try:
            restored = Index.restore(payload)
        except Exception as exc:
            raise VectorIndexError(f"vector index {path} cannot be read: {exc}") from exc
        if restored is None or restored.ndim != dim or len(restored) != count:
            raise VectorIndexError(f"vector index {path} does not match its header")
        index = cls(dim, exact_below=exact_below)
        index._index = restored
        if index.checksum() != checksum:
            raise VectorIndexError(f"vector index {path} keys do not match its checksum")
        return index

    def _as_rows(self, vectors: npt.ArrayLike) -> Vectors:
        rows = np.asarray(vectors, dtype=np.float32)
        if rows.ndim == 1 and rows.size in (0, self._dim):
            rows = rows.reshape(-1, self._dim)
        if rows.ndim != 2 or rows.shape[1] != self._dim:
            raise ValueError(f"vectors must have shape (n, {self._dim}), got {rows.shape}")
        return rows

    def _as_query(self, query: npt.ArrayLike) -> Vectors | None:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.size != self._dim:
            raise ValueError(f"query must have {self._dim} values, got {q.size}")
        norm = float(np.linalg.norm(q))
        if not np.isfinite(norm) or norm == 0.0:
            return None
        return np.ascontiguousarray(q / norm, dtype=np.float32)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows opening a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
