"""A fake D-Bus service served from a thread of its own, for tests on a private bus.

Subclasses implement `_serve` (connect to `address`, export, own a name) and set `_bus`;
entering starts the thread and waits until the service is up, leaving disconnects it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self

from dbus_fast.aio import MessageBus

WAIT_S = 10.0


class BusService:
    def __init__(self, address: str) -> None:
        self.address = address
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._bus: MessageBus | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        self._run(self._serve())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bus is not None:
            self._loop.call_soon_threadsafe(self._bus.disconnect)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT_S)
        self._loop.close()

    async def _serve(self) -> None:
        raise NotImplementedError

    def _run(self, work: Any) -> Any:
        """Run the coroutine ``work`` on the service's loop; its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(work, self._loop)
        return future.result(WAIT_S)
