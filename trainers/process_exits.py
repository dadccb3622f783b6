"""Wake-ups when processes end, for processes that are not our children (Linux pidfds).

A run's supervisor is not a child of the daemon (it runs in a session of its own, and may
have been started by an earlier daemon), so no SIGCHLD arrives when a run ends. A pidfd
(``pidfd_open``, Linux 5.3) of any process becomes readable when that process ends; one
thread waits on all of them and calls ``wake`` for each ending, which lets a queue sleep
until something happens instead of polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
from collections.abc import Callable

from . import run_dir as rd

log = logging.getLogger("labmind.experiments")


class ProcessExits:
    """Calls ``wake`` (from its own thread) when a watched process ends."""

    @staticmethod
    def supported() -> bool:
        return hasattr(os, "pidfd_open")

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._selector = selectors.DefaultSelector()
        self._poke_r, self._poke_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._poke_r, selectors.EVENT_READ)
        self._pending: list[int] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="labmind-exits", daemon=True)
        self._thread.start()

    def add(self, pid: int, start_time: int) -> None:
        """Watch the process ``pid`` that started at ``start_time``; one that has already
        ended (or whose pid now names another process) wakes at once."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            self._wake()
            return
        if not rd.process_alive(pid, start_time):
            os.close(fd)
            self._wake()
            return
        with self._lock:
            if self._closed:
                os.close(fd)
                return
            self._pending.append(fd)
            self._poke()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._poke()
        self._thread.join(timeout=5)

    def _poke(self) -> None:
        """Wake the thread; called with the lock held, while the pipe is open."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._poke_w, b"x")

    def _loop(self) -> None:
        try:
            while True:
                for key, _ in self._selector.select():
                    if key.fd == self._poke_r:
                        self._drain()
                        continue
                    self._selector.unregister(key.fd)
                    os.close(key.fd)
                    self._wake()
                with self._lock:
                    if self._closed:
                        return
                    pending, self._pending = self._pending, []
                for fd in pending:
                    self._selector.register(fd, selectors.EVENT_READ)
        except Exception:
            log.exception("the process exit watch stopped")
        finally:
            with self._lock:
                self._closed = True
                for fd in self._pending:
                    os.close(fd)
                self._pending = []
                for key in list(self._selector.get_map().values()):
                    os.close(key.fd)
                self._selector.close()
                os.close(self._poke_w)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._poke_r, 512):
                pass
