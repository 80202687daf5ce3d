"""Quality checks G1 (stale), G3 (missing size) and G5 (price divergence).

The rules are pure functions -- the pipeline's stages below and the venue
clients' one-off look-ups (``adapter.verify_price``, ``size_at_price``) call
the same code, so a rule cannot mean two things. The stages add what the
running pipeline needs: thresholds from config, recent trades to search, and
a counter per outcome. Numbers are compared exactly (``Decimal``) -- once per
trade or print, never on book levels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from venuefeed import exact
from venuefeed.book import OrderBook
from venuefeed.models import BookSnapshot, PriceUpdate, Trade

__all__ = [
    "DivergenceCheck",
    "RecentTrades",
    "SizeBackfill",
    "StaleFilter",
    "is_stale",
    "size_at_price",
    "verify_against_snapshot",
    "verify_price",
]

NS = 1_000_000_000


# -- the rules -------------------------------------------------------------------------


def is_stale(ts_venue: int, now_ns: int, max_age_seconds: float) -> bool:
    """G1: older than ``max_age_seconds`` -- history, not a live print."""
    return now_ns - ts_venue > max_age_seconds * NS


def size_at_price(
    trades: Iterable[Trade],
    price: str,
    ts_ns: int,
    *,
    tolerance: Decimal,
    max_age_seconds: float,
) -> str | None:
    """G3: the size of the trade nearest in time to ``ts_ns`` within ``tolerance`` of ``price``.

    Only trades within ``max_age_seconds`` of ``ts_ns`` count; None when none do.
    """
    target = exact.to_decimal(price)
    window = max_age_seconds * NS
    best: tuple[float, str] | None = None
    for trade in trades:
        distance = abs(trade.ts_venue - ts_ns)
        if distance > window:
            continue
        if abs(exact.to_decimal(trade.price) - target) > tolerance:
            continue
        if best is None or distance < best[0]:
            best = (distance, trade.size)
    return best[1] if best is not None else None


def verify_price(
    price: str, bid: str | None, ask: str | None, max_deviation: Decimal
) -> tuple[bool, str | None, str]:
    """G5: ``(ok, reference price, reason)`` for ``price`` against the book's best prices.

    The reference is the mid, or the only side's best price when the other is
    empty; with no price on either side the price cannot be verified (``ok``
    False, ``reference`` None).
    """
    best_bid = exact.to_decimal(bid) if bid is not None else None
    best_ask = exact.to_decimal(ask) if ask is not None else None
    if best_bid is not None and best_ask is not None:
        reference = (best_bid + best_ask) / 2
    elif best_bid is not None:
        reference = best_bid
    elif best_ask is not None:
        reference = best_ask
    else:
        return False, None, "empty_book"
    ref_text = exact.from_decimal(reference)
    deviation = abs(exact.to_decimal(price) - reference)
    if deviation > max_deviation:
        dev_text = exact.from_decimal(deviation)
        return False, ref_text, f"deviation {dev_text} > {exact.from_decimal(max_deviation)}"
    return True, ref_text, ""


def verify_against_snapshot(
    price: str, book: BookSnapshot | None, max_deviation: Decimal
) -> tuple[bool, str | None, str]:
    """:func:`verify_price` against a (best-first) REST snapshot; ``no_book`` without one."""
    if book is None:
        return False, None, "no_book"
    bid = book.bids[0].price if book.bids else None
    ask = book.asks[0].price if book.asks else None
    return verify_price(price, bid, ask, max_deviation)


# -- the pipeline's stages ----------------------------------------------------------------


@dataclass(slots=True)
class StaleFilter:
    """G1 stage: a live trade older than the limit is stored but not published as live.

    Age runs from the venue's trade time to our receive time, so a venue
    replaying history after a reconnect cannot pass old trades off as new.
    """

    max_age_seconds: float
    blocked: int = 0

    def is_stale(self, trade: Trade) -> bool:
        if trade.ts_venue and is_stale(trade.ts_venue, trade.ts_recv, self.max_age_seconds):
            self.blocked += 1
            return True
        return False


class RecentTrades:
    """Recent trades per instrument (bounded), for G3 look-ups."""

    def __init__(self, per_instrument: int = 200, max_instruments: int = 20_000) -> None:
        self._per = per_instrument
        self._max = max_instruments
        self._by_instrument: dict[str, deque[Trade]] = {}

    def add(self, trade: Trade) -> None:
        seen = self._by_instrument.get(trade.instrument)
        if seen is None:
            if len(self._by_instrument) >= self._max:
                self._by_instrument.pop(next(iter(self._by_instrument)))
            seen = self._by_instrument[trade.instrument] = deque(maxlen=self._per)
        seen.append(trade)

    def of(self, instrument: str) -> Iterable[Trade]:
        return self._by_instrument.get(instrument, ())


@dataclass(slots=True)
class SizeBackfill:
    """G3 stage: fill a price event's missing size from a recent trade at (about) that price."""

    recent: RecentTrades
    tolerance: Decimal
    max_age_seconds: float
    backfilled: int = 0
    missing: int = 0

    def fill(self, update: PriceUpdate) -> str | None:
        size = size_at_price(
            self.recent.of(update.instrument), update.price, update.ts_venue or update.ts_recv,
            tolerance=self.tolerance, max_age_seconds=self.max_age_seconds,
        )  # fmt: skip
        if size is None:
            self.missing += 1
        else:
            self.backfilled += 1
        return size


@dataclass(slots=True)
class DivergenceCheck:
    """G5 stage: flag a trade priced farther than ``max_deviation`` from the book.

    The trade is kept with the flag (it may be real: a sweep, a thin book);
    dropping it would lose data. No book, or an empty one: no verdict.
    """

    book_of: Callable[[str, str], OrderBook | None]
    max_deviation: Decimal
    flagged: int = 0

    def check(self, trade: Trade) -> tuple[bool, str | None, str]:
        book = self.book_of(trade.venue, trade.instrument)
        if book is None:
            return True, None, "no_book"
        bid, ask = book.best_bid(), book.best_ask()
        ok, reference, reason = verify_price(
            trade.price, bid.price if bid else None, ask.price if ask else None, self.max_deviation
        )
        if reference is None:
            return True, None, reason
        if not ok:
            self.flagged += 1
        return ok, reference, reason
