"""Bounded memory of recently seen natural keys.

Sinks are idempotent, so this is not what makes storage exactly-once; it
keeps duplicates from reconnect replays off the live feed, the bus and the
writer queue, and counts them. Bounded (rule 5): the oldest keys are
forgotten first, after which a very late duplicate is still absorbed by the
sink's unique key.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["RecentKeys"]


class RecentKeys:
    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()
        self.duplicates = 0

    def seen(self, key: Hashable) -> bool:
        """True if ``key`` was seen recently; otherwise remember it and return False."""
        keys = self._keys
        if key in keys:
            self.duplicates += 1
            return True
        keys[key] = None
        if len(keys) > self._capacity:
            keys.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._keys)
