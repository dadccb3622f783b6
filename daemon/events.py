"""In-process event bus for the daemon's event stream (server-sent events)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any, Final

DEFAULT_QUEUE_SIZE = 1000
BURST_WINDOW_S = 0.05
"""Events published from other threads within this long of a delivery go with the next one:
a stream of events (a sweep of short runs) wakes the event loop 20 times a second, not once
per round of the queue. The first event after a quiet spell goes at once."""

# A comment line: clients ignore it, and writing it finds connections that went away.
SSE_KEEPALIVE: Final = b": keepalive\n\n"


class _Closed:
    pass


_CLOSED: Final = _Closed()


class _Subscriber:
    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | _Closed] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0

    def offer(self, item: dict[str, Any] | _Closed) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)


class EventBus:
    """Fan-out of events to async subscribers.

    `publish` may be called from any thread; events are numbered (`seq`) in the order
    the event loop delivers them (from other threads, a burst at a time: `BURST_WINDOW_S`).
    Each subscriber has a bounded queue: when it falls
    behind, its oldest events are dropped and it receives one
    `{"type": "dropped", "count": n}` in their place, so a slow client never holds up
    the daemon.
    """

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: weakref.WeakSet[_Subscriber] = weakref.WeakSet()
        self._seq = 0
        self._closed = False
        self._pending: list[dict[str, Any]] = []
        """Published from other threads, waiting for the loop (under `_pending_lock`)."""
        self._pending_lock = threading.Lock()
        self._flushing = False
        """A delivery of `_pending` is due on the loop (now, or at the end of a burst window)."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on `loop` from now on; call once at start-up, before publishing."""
        self._loop = loop

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Mapping[str, Any]) -> None:
        """Queue `event` (which needs a `type`) for every subscriber; never blocks.

        Events published before `bind` or after `close` are dropped.
        """
        self.publish_all((event,))

    def publish_all(self, events: Sequence[Mapping[str, Any]]) -> None:
        """`publish` each of ``events``, in order, with one hand-over to the event loop."""
        if not events:
            return
        if any("type" not in event for event in events):
            raise ValueError("an event needs a 'type'")
        now = time.time()
        stamped = [{**event, "time": now} for event in events]
        loop = self._loop
        if loop is None:
            return
        if _running_loop() is loop:
            self._deliver_all([*self._take_pending(), *stamped])  # in the order published
            return
        with self._pending_lock:
            self._pending.extend(stamped)
            if self._flushing:
                return
            self._flushing = True
        try:
            loop.call_soon_threadsafe(self._flush)
        except RuntimeError:
            return  # the loop has been closed: the daemon is going away

    def _flush(self) -> None:
        """On the loop: deliver what other threads published, then look again at the end
        of the burst window (a quiet window ends the flushing)."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
            if not pending:
                self._flushing = False
                return
        self._deliver_all(pending)
        asyncio.get_running_loop().call_later(BURST_WINDOW_S, self._flush)

    def _take_pending(self) -> list[dict[str, Any]]:
        with self._pending_lock:
            pending, self._pending = self._pending, []
        return pending

    def subscribe(self) -> AsyncGenerator[dict[str, Any], None]:
        """Events published from now on; call on the event loop.

        Iteration ends when the bus is closed; `aclose()` (or dropping the iterator)
        unsubscribes.
        """
        # What was published before goes to the subscribers that were there (not this one).
        self._deliver_all(self._take_pending())
        subscriber = _Subscriber(self._queue_size)
        if self._closed:
            subscriber.offer(_CLOSED)
        else:
            self._subscribers.add(subscriber)
        return self._iterate(subscriber)

    def close(self) -> None:
        """End every subscription once it has read what is already queued."""
        if self._loop is None:
            self._close()
        else:
            self._on_loop(self._close)

    async def _iterate(self, subscriber: _Subscriber) -> AsyncGenerator[dict[str, Any], None]:
        try:
            while True:
                item = await subscriber.queue.get()
                if subscriber.dropped:
                    notice = {"type": "dropped", "count": subscriber.dropped, "time": time.time()}
                    subscriber.dropped = 0
                    yield notice
                if isinstance(item, _Closed):
                    return
                yield item
        finally:
            self._subscribers.discard(subscriber)

    def _on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        if _running_loop() is loop:
            callback(*args)
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The loop has been closed: the daemon is going away.
            return

    def _deliver(self, event: dict[str, Any]) -> None:
        if self._closed:
            return
        self._seq += 1
        event["seq"] = self._seq
        for subscriber in list(self._subscribers):
            subscriber.offer(event)

    def _deliver_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self._deliver(event)

    def _close(self) -> None:
        self._deliver_all(self._take_pending())
        self._closed = True
        for subscriber in list(self._subscribers):
            subscriber.offer(_CLOSED)
        self._subscribers.clear()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def format_sse(event: Mapping[str, Any]) -> bytes:
    """One server-sent event: `id:` = seq, `event:` = type, `data:` = the event as JSON."""
    lines: list[str] = []
    seq = event.get("seq")
    if seq is not None:
        lines.append(f"id: {int(seq)}")
    kind = event.get("type")
    if kind is not None:
        lines.append(f"event: {_one_line(str(kind))}")
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")
