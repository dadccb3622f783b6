"""Rate limiting with coalescing, per group key, on an injectable clock.

The first item of a group goes out at once and opens a window of ``interval_s``. Items
that arrive while the window is open are held; when it closes, everything the burst
held so far comes out as one `Release` (its ``count`` is the whole burst, the first item
included), and a new window opens. A group whose window closes with nothing held is
idle again: its next item goes out at once. So a sweep whose runs fail one after
another shows its first failure, then at most one summary per window, each counting
the whole burst.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

KEPT_PER_BURST = 20
"""The newest items a burst keeps for its summary (``count`` still counts them all)."""


@dataclass(frozen=True)
class Release(Generic[T]):
    """What to show for a group now: one item, or a burst of ``count`` items."""

    key: str
    items: tuple[T, ...]
    """The burst's newest items, oldest first (at most `KEPT_PER_BURST`)."""
    count: int
    total: int
    """The burst's items weighed by the throttle's ``amount`` (``count`` when unweighed)."""

    @property
    def latest(self) -> T:
        return self.items[-1]

    @property
    def single(self) -> bool:
        return self.count == 1


@dataclass
class _Group(Generic[T]):
    window_start: float
    burst: list[T] = field(default_factory=list)
    count: int = 0
    total: int = 0
    held: int = 0


class Throttle(Generic[T]):
    """At most one release per group key per ``interval_s`` (0: no limit); ``amount``
    weighs an item for a release's ``total``."""

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float],
        amount: Callable[[T], int] = lambda _item: 1,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._amount = amount
        self._groups: dict[str, _Group[T]] = {}

    def offer(self, key: str, item: T) -> Release[T] | None:
        """The release to show now, or ``None`` when ``item`` is held for a summary."""
        now = self._clock()
        group = self._groups.get(key)
        if group is None or self._idle(group, now):
            total = self._amount(item)
            self._groups[key] = _Group(window_start=now, burst=[item], count=1, total=total)
            return Release(key, (item,), 1, total)
        group.burst.append(item)
        del group.burst[:-KEPT_PER_BURST]
        group.count += 1
        group.total += self._amount(item)
        group.held += 1
        return None

    def due(self) -> list[Release[T]]:
        """Summaries whose window has closed; forgets groups that went idle."""
        now = self._clock()
        released: list[Release[T]] = []
        for key, group in list(self._groups.items()):
            if now < group.window_start + self.interval_s:
                continue
            if group.held:
                released.append(Release(key, tuple(group.burst), group.count, group.total))
                group.window_start = now
                group.held = 0
            else:
                del self._groups[key]
        return released

    def next_due(self) -> float | None:
        """When `due` next has something to release (clock time), if anything is held."""
        times = [g.window_start + self.interval_s for g in self._groups.values() if g.held]
        return min(times, default=None)

    def clear(self) -> None:
        """Forget every group and everything held."""
        self._groups.clear()

    def _idle(self, group: _Group[T], now: float) -> bool:
        return not group.held and now >= group.window_start + self.interval_s
