"""When a changing book is stored again: once per instrument per jittered interval.

With thousands of instruments, "every book once a second" stored a snapshot
for nearly every event, all of them due on the same second boundaries. Here
each instrument has its own due time: after a stored snapshot the next one is
due ``interval × (1 − jitter/2 + jitter × u)`` later, ``u`` uniform in [0, 1),
so snapshots of instruments that changed are spread evenly over time and, on
average, one per instrument per ``interval``. Snapshots the venue sends (first
sync, resync) are stored at once regardless; the delta log, when on, keeps
every change in between.

The draws come from a fixed seed, so the same events in the same order store
the same snapshots: a replay of a recording rebuilds the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

__all__ = ["PersistCadence"]


class PersistCadence:
    """Per-key due times for the next stored snapshot (nanoseconds)."""

    def __init__(self, interval_seconds: float, jitter: float = 0.5, *, seed: int = 0) -> None:
        self.interval_ns = int(interval_seconds * 1e9)
        self.jitter = min(max(jitter, 0.0), 1.0)
        self.next_due: dict[Hashable, int] = {}
        """Key -> when its book is next due; the pipeline reads it directly once per change
        (a method call there cost as much as the rest of the check)."""
        self._random = random.Random(seed).random

    def due(self, key: Hashable, now: int) -> bool:
        """Whether ``key``'s book should be stored at ``now`` (never stored: yes)."""
        return now >= self.next_due.get(key, 0)

    def stored(self, key: Hashable, now: int) -> None:
        """``key``'s book was stored at ``now``: schedule the next one."""
        spread = 1.0 - self.jitter / 2 + self.jitter * self._random()
        self.next_due[key] = now + int(self.interval_ns * spread)
