"""An embedder that runs the model in a low-priority child process.

The child is started on demand ("spawn", so it shares nothing with the daemon), loads
the model on its first request, answers requests over a pipe and exits on its own
after an idle period. Embeddings come back as raw float32 bytes plus a shape.

Wire format, parent to child: ``("embed", [texts])``, ``("dim",)``, ``("stop",)``.
Child to parent: ``("ok", shape)`` followed by the array bytes for ``embed``,
``("ok", dim)`` for ``dim``, or ``("error", message)``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from .embedder import EmbedderError, Embeddings, LocalEmbedder, set_offline_environment

_JOIN_TIMEOUT_S = 5.0


def _serve(
    conn: Connection, model_name: str, batch_size: int, idle_timeout_s: float, nice: int
) -> None:
    """Child process main loop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_offline_environment()
    if nice > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)
    embedder = LocalEmbedder(model_name, batch_size=batch_size)
    try:
        while conn.poll(idle_timeout_s):
            try:
                request: tuple[Any, ...] = conn.recv()
            except EOFError:
                return
            command = request[0]
            if command == "stop":
                return
            try:
                if command == "embed":
                    vectors = np.ascontiguousarray(embedder.embed(request[1]), dtype=np.float32)
                    conn.send(("ok", vectors.shape))
                    conn.send_bytes(vectors.data.cast("B"))
                elif command == "dim":
                    conn.send(("ok", embedder.dimension()))
                else:
                    conn.send(("error", f"unknown request {command!r}"))
            except EmbedderError as exc:
                conn.send(("error", str(exc)))
            except Exception as exc:
                conn.send(("error", f"embedding failed: {type(exc).__name__}: {exc}"))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return
    finally:
        conn.close()


def _receive_array(conn: Connection, shape: Any) -> Embeddings:
    """Read the raw float32 body that follows an ``("ok", shape)`` embed reply."""
    out = np.empty(tuple(shape), dtype=np.float32)
    received = conn.recv_bytes_into(out.reshape(-1))
    if received != out.nbytes:
        raise EmbedderError(f"embedder worker sent {received} bytes, expected {out.nbytes}")
    return out


class WorkerEmbedder:
    """``Embedder`` backed by a ``LocalEmbedder`` in a child process.

    The child is (re)started transparently by the next request after it exits on its
    own. If it dies while answering, that request raises ``EmbedderError`` and the
    next one starts a fresh child. ``close()`` stops the child; a later request
    starts a new one. Safe to call from several threads.
    """

    def __init__(
        self,
        model_name: str,
        *,
        batch_size: int = 64,
        idle_timeout_s: float = 300.0,
        nice: int = 10,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be positive")
        self._model_name = model_name
        self._batch_size = batch_size
        self._idle_timeout_s = idle_timeout_s
        self._nice = nice
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._dimension: int | None = None

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def pid(self) -> int | None:
        """The child's process id while one is running."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def is_loaded(self) -> bool:
        """Whether a child process is running (it holds the model once it has answered)."""
        process = self._process
        return process is not None and process.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the child to exit by itself (idle); True once none is running."""
        process = self._process
        if process is None:
            return True
        try:
            process.join(timeout)
            return not process.is_alive()
        except ValueError:
            return True

    def dimension(self) -> int:
        if self._dimension is None:
            with self._lock:
                reply = self._request(("dim",), None)
            if not isinstance(reply, int):
                raise EmbedderError(f"embedder worker sent a bad dimension: {reply!r}")
            self._dimension = reply
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Embeddings:
        batch = list(texts)
        if not batch:
            return np.zeros((0, self.dimension()), dtype=np.float32)
        with self._lock:
            out = self._request(("embed", batch), _receive_array)
        if not isinstance(out, np.ndarray) or out.ndim != 2 or out.shape[0] != len(batch):
            raise EmbedderError(f"embedder worker returned a bad answer for {len(batch)} texts")
        self._dimension = int(out.shape[1])
        return out

    def close(self) -> None:
        """Stop the child: ask it to exit, then terminate, then kill.

        If another thread is in the middle of a request, the child is terminated and
        that request raises ``EmbedderError``.
        """
        if self._lock.acquire(timeout=1.0):
            try:
                self._stop()
            finally:
                self._lock.release()
        else:
            process = self._process
            if process is not None:
                process.terminate()

    def _request(
        self, message: tuple[Any, ...], read_body: Callable[[Connection, Any], Any] | None
    ) -> Any:
        """Send one request and return its answer (lock held).

        A child that had already exited cleanly (idle) is replaced and the request
        sent again once; a child that dies while answering is an ``EmbedderError``.
        """
        for attempt in range(2):
            conn = self._ensure_started()
            try:
                conn.send(message)
                status, payload = conn.recv()
                if status == "ok" and read_body is not None:
                    payload = read_body(conn, payload)
            except (EOFError, OSError) as exc:
                exitcode = self._reap()
                if exitcode == 0 and attempt == 0:
                    continue
                raise EmbedderError(
                    f"embedder worker {self._model_name} died during a request "
                    f"(exit code {exitcode}); the next request starts a new one"
                ) from exc
            except BaseException:
                self._reap(kill=True)
                raise
            if status != "ok":
                raise EmbedderError(str(payload))
            return payload
        raise EmbedderError("embedder worker exited twice in a row before answering")

    def _ensure_started(self) -> Connection:
        process, conn = self._process, self._conn
        if process is not None and conn is not None and process.is_alive():
            return conn
        self._reap()
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_serve,
            args=(
                child_conn,
                self._model_name,
                self._batch_size,
                self._idle_timeout_s,
                self._nice,
            ),
            name="labmind-embedder",
            daemon=True,
        )
        process.start()
        child_conn.close()
        self._process, self._conn = process, parent_conn
        return parent_conn

    def _reap(self, *, kill: bool = False) -> int | None:
        """Forget the current child, waiting for it to end; returns its exit code."""
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if kill:
            process.kill()
        process.join(_JOIN_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join(_JOIN_TIMEOUT_S)
        exitcode = process.exitcode
        if exitcode is not None:
            process.close()
        return exitcode

    def _stop(self) -> None:
        process, conn = self._process, self._conn
        if process is None:
            return
        if conn is not None and process.is_alive():
            with contextlib.suppress(OSError):
                conn.send(("stop",))
            process.join(_JOIN_TIMEOUT_S)
        if process.is_alive():
            process.terminate()
            process.join(_JOIN_TIMEOUT_S)
        self._reap()

    def __enter__(self) -> WorkerEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
