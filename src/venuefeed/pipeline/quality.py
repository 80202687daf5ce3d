"""Quality stages G1 (stale), G3 (missing size) and G5 (price divergence).

Each stage is a small object with its thresholds and a counter per outcome,
so the pipeline composes them and status/metrics can report what fired.
Numbers are compared exactly (``Decimal``) -- once per trade, which the
budget allows, and never on book levels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from venuefeed.models import PriceUpdate, Trade

__all__ = ["DivergenceCheck", "RecentTrades", "SizeBackfill", "StaleFilter"]

NS = 1_000_000_000


@dataclass(slots=True)
class StaleFilter:
    """G1: a live trade older than ``max_age_seconds`` is stored but not published as live.

    Age is measured from the venue's trade time to our receive time, so a
    venue replaying history after a reconnect cannot pass old trades off as
    new ones.
    """

    max_age_seconds: float
    blocked: int = 0

    def is_stale(self, trade: Trade) -> bool:
        if trade.ts_venue and trade.ts_recv - trade.ts_venue > self.max_age_seconds * NS:
            self.blocked += 1
            return True
        return False


@dataclass(slots=True)
class _Seen:
    ts: int
    price: Decimal
    size: str


class RecentTrades:
    """Recent trades per instrument (bounded), for G3 look-ups and REST hints."""

    def __init__(self, per_instrument: int = 200, max_instruments: int = 20_000) -> None:
        self._per = per_instrument
        self._max = max_instruments
        self._by_instrument: dict[str, deque[_Seen]] = {}

    def add(self, trade: Trade) -> None:
        seen = self._by_instrument.get(trade.instrument)
        if seen is None:
            if len(self._by_instrument) >= self._max:
                self._by_instrument.pop(next(iter(self._by_instrument)))
            seen = self._by_instrument[trade.instrument] = deque(maxlen=self._per)
        seen.append(_Seen(trade.ts_venue, Decimal(trade.price), trade.size))

    def size_near(
        self, instrument: str, price: Decimal, tolerance: Decimal, since: int
    ) -> str | None:
        """Size of the newest trade at ``price ± tolerance`` no older than ``since`` (ns)."""
        for seen in reversed(self._by_instrument.get(instrument, ())):
            if seen.ts < since:
                return None
            if abs(seen.price - price) <= tolerance:
                return seen.size
        return None


@dataclass(slots=True)
class SizeBackfill:
    """G3: fill a price event's missing size from a recent trade at (about) that price."""

    recent: RecentTrades
    tolerance: Decimal
    max_age_seconds: float
    backfilled: int = 0
    missing: int = 0

    def fill(self, update: PriceUpdate) -> str | None:
        ref = update.ts_venue or update.ts_recv
        size = self.recent.size_near(
            update.instrument, Decimal(update.price), self.tolerance,
            ref - int(self.max_age_seconds * NS),
        )  # fmt: skip
        if size is None:
            self.missing += 1
        else:
            self.backfilled += 1
        return size


@dataclass(slots=True)
class DivergenceCheck:
    """G5: flag a trade priced farther than ``max_deviation`` from the book mid.

    The trade is kept with the flag (it may be real: a sweep, a thin book);
    dropping it would lose data. No mid (empty side, no book yet) -> no verdict.
    """

    mid_of: Callable[[str, str], Decimal | None]
    max_deviation: Decimal
    flagged: int = 0
    last_reference: dict[str, Decimal] = field(default_factory=dict)

    def check(self, trade: Trade) -> tuple[bool, Decimal | None, str]:
        """(ok, reference mid, reason) -- the shape venue clients also return for G5."""
        mid = self.mid_of(trade.venue, trade.instrument)
        if mid is None:
            return True, None, "no book"
        deviation = abs(Decimal(trade.price) - mid)
        if deviation > self.max_deviation:
            self.flagged += 1
            return False, mid, f"price {trade.price} is {deviation} from mid {mid}"
        return True, mid, "within deviation"
