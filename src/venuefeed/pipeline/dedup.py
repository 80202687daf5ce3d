"""Bounded memory of recently seen natural keys.

Sinks are idempotent, so this is not what makes storage exactly-once; it
keeps duplicates from reconnect replays and REST re-fetches off the live feed,
the bus and the writer queue, and counts them.

Bounded twice (rule 5). By time: a key is kept for ``horizon_seconds`` -- as
long as a venue can send the same record again (a polling pass asks for the
last ``quality.max_trade_age_seconds`` of trades) -- so memory follows the event
rate times the horizon instead of filling up to the count limit, which at a few
hundred events a second took most of an hour and about 80 MB (a key with its
strings is about 400 bytes). By count: never more than ``capacity`` keys, the
oldest forgotten first. A duplicate older than that is still absorbed by the
sink's unique key.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["RecentKeys"]


class RecentKeys:
    def __init__(
        self,
        capacity: int = 200_000,
        horizon_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._horizon = horizon_seconds
        self._clock = clock
        self._keys: OrderedDict[Hashable, float] = OrderedDict()
        self.duplicates = 0

    def seen(self, key: Hashable) -> bool:
        """True if ``key`` was seen recently; otherwise remember it and return False."""
        keys = self._keys
        if key in keys:
            self.duplicates += 1
            return True
        now = self._clock()
        keys[key] = now
        if len(keys) > self._capacity:
            keys.popitem(last=False)
        if self._horizon is not None:
            expired = now - self._horizon
            while next(iter(keys.values())) < expired:  # oldest first; the new key stays
                keys.popitem(last=False)
        return False

    @property
    def horizon(self) -> float | None:
        return self._horizon

    def __len__(self) -> int:
        return len(self._keys)
