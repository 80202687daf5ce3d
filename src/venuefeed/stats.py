"""Rolling counters, recent events and errors for status views and the dashboard.

Per-second buckets over a fixed window (default 5 minutes): adding is a dict
increment, reading sums at most ``window`` buckets. Everything is bounded.
A bucket is a ``defaultdict(int)``: ``bucket[name] += 1`` on it costs less than
half of the same on a ``Counter`` (a Python-level subclass), and the pipeline
does it for every event.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ErrorLog", "RollingCounters"]


class RollingCounters:
    def __init__(self, window_seconds: int = 300, clock: Callable[[], float] = time.time) -> None:
        self.window = window_seconds
        self._clock = clock
        self._buckets: deque[tuple[int, defaultdict[str, int]]] = deque()

    def add(self, name: str, amount: int = 1) -> None:
        self.current()[name] += amount

    def current(self) -> defaultdict[str, int]:
        """This second's bucket, for a batch to add to directly (one clock read per batch).

        The pipeline counts each event into it as it goes, so nothing is
        gathered per batch and folded in afterwards; what it adds is visible at
        once, in the second the batch started.
        """
        now = int(self._clock())
        buckets = self._buckets
        if not buckets or buckets[-1][0] != now:
            buckets.append((now, defaultdict(int)))
            self._expire(now)
        return buckets[-1][1]

    def observe(self, name: str, value: float) -> None:
        """Track a sum and a count, for averages (e.g. trade age)."""
        self.add(name + ".count")
        self._buckets[-1][1][name + ".sum_ms"] += int(value * 1000)

    def _expire(self, now: int) -> None:
        limit = now - self.window
        buckets = self._buckets
        while buckets and buckets[0][0] <= limit:
            buckets.popleft()

    def totals(self) -> Counter[str]:
        self._expire(int(self._clock()))
        total: Counter[str] = Counter()
        for _, bucket in self._buckets:
            total.update(bucket)
        return total

    def rate(self, name: str, seconds: int = 10) -> float:
        """Average per second over the last ``seconds`` complete seconds."""
        now = int(self._clock())
        total = sum(b.get(name, 0) for ts, b in self._buckets if now - seconds <= ts < now)
        return total / seconds

    def series(self, name: str, seconds: int = 60) -> list[tuple[int, int]]:
        now = int(self._clock())
        by_ts = {ts: b.get(name, 0) for ts, b in self._buckets if ts > now - seconds}
        return [(ts, by_ts.get(ts, 0)) for ts in range(now - seconds + 1, now + 1)]


@dataclass(slots=True)
class _Error:
    ts: float
    component: str
    kind: str
    message: str


class ErrorLog:
    """The last errors (bounded), for 'errors in the last hour' views."""

    def __init__(self, capacity: int = 500, clock: Callable[[], float] = time.time) -> None:
        self._errors: deque[_Error] = deque(maxlen=capacity)
        self._clock = clock

    def add(self, component: str, kind: str, message: str) -> None:
        self._errors.append(_Error(self._clock(), component, kind, message[:500]))

    def recent(self, seconds: float = 3600) -> list[dict[str, Any]]:
        since = self._clock() - seconds
        return [
            {"ts": e.ts, "component": e.component, "kind": e.kind, "message": e.message}
            for e in reversed(self._errors)
            if e.ts >= since
        ]
