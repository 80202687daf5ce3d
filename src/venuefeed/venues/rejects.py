"""Bad venue input: counted per reason, logged once per reason, never raised.

Every venue shares this so that a malformed frame, an unknown message type or
a missing field is handled the same way everywhere: the counter
(``venue_frames_rejected_total{venue,reason}``) shows the rate, the log shows
the first example of each kind -- a venue that suddenly sends thousands of
frames of a new type a second must not flood the log -- and ingestion goes on.
"""

from __future__ import annotations

from typing import Any

from venuefeed import metrics
from venuefeed.log import get_logger

__all__ = ["Rejects"]

_MAX_LOGGED = 64
"""Distinct (reason, detail) pairs logged per venue; beyond it only counters move."""

_log = get_logger("venuefeed.rejects")


class Rejects:
    __slots__ = ("_counters", "_logged", "counts", "venue")

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.counts: dict[str, int] = {}
        self._logged: set[str] = set()
        self._counters: dict[str, Any] = {}

    def reject(self, reason: str, detail: str = "", sample: bytes | str = b"") -> None:
        """Count one rejection; log it if this reason (and detail) is new."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        counter = self._counters.get(reason)
        if counter is None:
            counter = self._counters[reason] = metrics.REJECTED_FRAMES.labels(self.venue, reason)
        counter.inc()
        key = f"{reason}:{detail}"
        if key not in self._logged and len(self._logged) < _MAX_LOGGED:
            self._logged.add(key)
            shown = sample[:200]
            _log.warning(
                "frame rejected",
                venue=self.venue,
                reason=reason,
                detail=detail[:300],
                sample=bytes(shown) if isinstance(shown, bytes | bytearray) else shown,
            )

    @property
    def total(self) -> int:
        return sum(self.counts.values())
