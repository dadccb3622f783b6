from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import pytest

from labmind.daemon.events import SSE_KEEPALIVE, EventBus, format_sse

T = TypeVar("T")
TIMEOUT_S = 10


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro, TIMEOUT_S)

    return asyncio.run(main())


async def take(events: AsyncIterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return [await anext(events) for _ in range(n)]


def test_publish_from_a_thread_reaches_an_async_subscriber() -> None:
    async def main() -> list[dict[str, Any]]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        events = bus.subscribe()

        def worker() -> None:
            for i in range(3):
                bus.publish({"type": "indexed", "path": f"f{i}.py"})

        thread = threading.Thread(target=worker)
        thread.start()
        received = await take(events, 3)
        thread.join()
        return received

    received = run(main())
    assert [e["path"] for e in received] == ["f0.py", "f1.py", "f2.py"]
    assert [e["seq"] for e in received] == [1, 2, 3]
    assert all(e["type"] == "indexed" for e in received)
    assert all(abs(e["time"] - time.time()) < 60 for e in received)


def test_many_threads_get_unique_increasing_seqs() -> None:
    threads, per_thread = 8, 50

    async def main() -> list[dict[str, Any]]:
        bus = EventBus(queue_size=threads * per_thread)
        bus.bind(asyncio.get_running_loop())
        events = bus.subscribe()

        def worker(n: int) -> None:
            for i in range(per_thread):
                bus.publish({"type": "tick", "thread": n, "i": i})

        workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for t in workers:
            t.start()
        received = await take(events, threads * per_thread)
        for t in workers:
            t.join()
        return received

    received = run(main())
    assert [e["seq"] for e in received] == list(range(1, threads * per_thread + 1))
    for n in range(threads):
        assert [e["i"] for e in received if e["thread"] == n] == list(range(per_thread))


def test_every_subscriber_gets_every_event() -> None:
    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        first, second = bus.subscribe(), bus.subscribe()
        assert bus.subscriber_count == 2
        bus.publish({"type": "a"})
        bus.publish({"type": "b"})
        return await take(first, 2), await take(second, 2)

    first, second = run(main())
    assert [e["type"] for e in first] == ["a", "b"]
    assert first == second


def test_slow_subscriber_gets_a_dropped_notice() -> None:
    async def main() -> list[dict[str, Any]]:
        bus = EventBus(queue_size=3)
        bus.bind(asyncio.get_running_loop())
        slow = bus.subscribe()
        for i in range(10):
            bus.publish({"type": "tick", "i": i})
        received = await take(slow, 4)
        bus.publish({"type": "tick", "i": 10})
        received.append(await anext(slow))
        return received

    received = run(main())
    assert received[0]["type"] == "dropped"
    assert received[0]["count"] == 7
    assert [e["i"] for e in received[1:]] == [7, 8, 9, 10]
    assert [e["seq"] for e in received[1:]] == [8, 9, 10, 11]


def test_publishing_never_waits_for_a_slow_subscriber() -> None:
    async def main() -> int:
        bus = EventBus(queue_size=2)
        bus.bind(asyncio.get_running_loop())
        _never_read = bus.subscribe()
        done = threading.Event()

        def worker() -> None:
            for i in range(10_000):
                bus.publish({"type": "tick", "i": i})
            done.set()

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert done.is_set()
        fast = bus.subscribe()
        bus.publish({"type": "last"})
        last = await anext(fast)
        return int(last["seq"])

    assert run(main()) == 10_001


def test_subscriber_only_sees_events_after_subscribing() -> None:
    async def main() -> dict[str, Any]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        bus.publish({"type": "before"})
        events = bus.subscribe()
        bus.publish({"type": "after"})
        return await anext(events)

    assert run(main())["type"] == "after"


def test_close_ends_subscriptions_after_queued_events() -> None:
    async def main() -> tuple[list[str], list[str]]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        events = bus.subscribe()
        bus.publish({"type": "a"})
        bus.close()
        bus.publish({"type": "ignored"})
        drained = [e["type"] async for e in events]
        late = [e["type"] async for e in bus.subscribe()]
        return drained, late

    assert run(main()) == (["a"], [])


def test_leaving_the_loop_unsubscribes() -> None:
    async def main() -> int:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        bus.publish({"type": "x"})
        events = bus.subscribe()
        bus.publish({"type": "y"})
        async for _ in events:
            break
        await events.aclose()
        return bus.subscriber_count

    assert run(main()) == 0


def test_an_iterator_that_is_never_started_does_not_stay_subscribed() -> None:
    async def main() -> int:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        events = bus.subscribe()
        assert bus.subscriber_count == 1
        del events
        gc.collect()
        return bus.subscriber_count

    assert run(main()) == 0


def test_publish_before_bind_or_after_the_loop_is_gone_is_dropped() -> None:
    bus = EventBus()
    bus.publish({"type": "early"})
    loop = asyncio.new_event_loop()
    bus.bind(loop)
    loop.close()
    bus.publish({"type": "late"})
    assert bus.last_seq == 0


def test_close_before_bind_ends_later_subscriptions() -> None:
    async def main() -> list[dict[str, Any]]:
        bus = EventBus()
        bus.close()
        return [e async for e in bus.subscribe()]

    assert run(main()) == []


def test_event_needs_a_type() -> None:
    with pytest.raises(ValueError, match="type"):
        EventBus().publish({"path": "x"})


def test_format_sse() -> None:
    event = {"type": "indexed", "seq": 7, "time": 1.5, "path": "a\nb.py", "n": "ü"}
    raw = format_sse(event)
    assert raw.endswith(b"\n\n")
    lines = raw.decode().rstrip("\n").split("\n")
    assert lines[0] == "id: 7"
    assert lines[1] == "event: indexed"
    assert lines[2].startswith("data: ")
    assert json.loads(lines[2].removeprefix("data: ")) == event
    assert len(lines) == 3


def test_format_sse_without_seq_and_with_odd_values() -> None:
    raw = format_sse({"type": "dropped\nevil", "count": 3, "when": object})
    lines = raw.decode().rstrip("\n").split("\n")
    assert lines[0] == "event: dropped evil"
    assert lines[1].startswith("data: ")
    assert len(lines) == 2
    assert SSE_KEEPALIVE.startswith(b":")


def test_events_published_just_before_close_arrive_before_the_end() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        events = bus.subscribe()

        def worker() -> None:
            for i in range(5):  # one burst: the last ones wait for the burst window
                bus.publish({"type": "indexed", "path": f"f{i}.py"})
            bus.close()

        thread = threading.Thread(target=worker)
        thread.start()
        received = [e["path"] async for e in events]
        thread.join()
        return received

    assert run(main()) == [f"f{i}.py" for i in range(5)]
