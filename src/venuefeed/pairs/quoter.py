"""Quote every confirmed pair from the live books, as often as configured.

The books are the ones the venue streams already keep (gap-checked, resynced
on inconsistency), read through the service's book lookup; nothing is
fetched for quoting. A quote is emitted only when it differs from the pair's
previous one in a price or an edge, so a quiet pair costs nothing in storage
and on the bus, and the stored ``pair_quotes`` series has one row per change.
A pair whose book is not there yet (the stream has not subscribed it, or a
side is being resynced) is skipped until it is -- "nothing dies silently":
it shows in :meth:`PairQuoter.view` as waiting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from decimal import Decimal

import msgspec

from venuefeed.book import OrderBook
from venuefeed.config import PairsSettings
from venuefeed.metrics import ARB_BEST_EDGE, ARB_CONFIRMED_PAIRS, ARB_CROSSED_PAIRS
from venuefeed.models import PairQuote
from venuefeed.pairs.quote import FeeSchedule, Top, pair_quote
from venuefeed.pairs.store import ConfirmedPair

__all__ = ["PairQuoter"]

BookLookup = Callable[[str, str], OrderBook | None]


def _top(book: OrderBook | None) -> Top | None:
    if book is None or book.depth() == (0, 0):
        return None
    bid, ask = book.best_bid(), book.best_ask()
    return (bid.price if bid else None, ask.price if ask else None)


class PairQuoter:
    """Confirmed pairs -> :class:`PairQuote` changes, from the books the streams keep."""

    def __init__(self, settings: PairsSettings, book_of: BookLookup) -> None:
        self.fees = FeeSchedule(
            settings.kalshi_taker_rate, settings.polymarket_taker_rate, settings.contracts
        )
        self._book_of = book_of
        self.pairs: list[ConfirmedPair] = []
        self.last: dict[str, PairQuote] = {}
        self.waiting: set[str] = set()

    def set_pairs(self, pairs: Iterable[ConfirmedPair]) -> None:
        """The confirmed pairs now; a pair no longer confirmed leaves the gauges."""
        self.pairs = list(pairs)
        current = {p.pair_id for p in self.pairs}
        for gone in set(self.last) - current:
            del self.last[gone]
        self.waiting &= current
        ARB_CONFIRMED_PAIRS.set(len(self.pairs))
        self._gauge()

    def instruments(self) -> dict[str, set[str]]:
        """Per venue, the instruments the confirmed pairs need streamed."""
        return {
            "kalshi": {p.kalshi_market for p in self.pairs},
            "polymarket": {p.polymarket_token for p in self.pairs},
        }

    def quote(self, now_ns: int) -> list[PairQuote]:
        """The quotes that changed since the last call."""
        changed: list[PairQuote] = []
        for pair in self.pairs:
            kalshi = _top(self._book_of("kalshi", pair.kalshi_market))
            poly = _top(self._book_of("polymarket", pair.polymarket_token))
            if kalshi is None or poly is None:
                self.waiting.add(pair.pair_id)
                continue
            self.waiting.discard(pair.pair_id)
            quote = pair_quote(pair, kalshi, poly, self.fees, now_ns)
            before = self.last.get(pair.pair_id)
            if before is not None and _same(before, quote):
                continue
            self.last[pair.pair_id] = quote
            changed.append(quote)
        if changed:
            self._gauge()
        return changed

    def _gauge(self) -> None:
        """Metric labels stay bounded (no pair ids): the best edge and how many pairs cross."""
        edges = [Decimal(q.best_edge) for q in self.last.values() if q.best_edge is not None]
        ARB_BEST_EDGE.set(float(max(edges)) if edges else math.nan)
        ARB_CROSSED_PAIRS.set(sum(1 for e in edges if e > 0))

    def view(self) -> dict[str, object]:
        """For status and the dashboard: the latest quote of every confirmed pair."""
        return {
            "confirmed": len(self.pairs),
            "waiting_for_books": sorted(self.waiting),
            "quotes": [msgspec.to_builtins(q) for q in self.last.values()],
        }


def _same(a: PairQuote, b: PairQuote) -> bool:
    return msgspec.structs.replace(a, ts_venue=0, ts_recv=0) == msgspec.structs.replace(
        b, ts_venue=0, ts_recv=0
    )
