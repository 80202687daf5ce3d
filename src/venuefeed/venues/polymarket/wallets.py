"""Whale sources: trades by watched wallets, and any trade above a notional threshold.

Polymarket publishes no real-time per-wallet feed on the public CLOB (RTDS
``activity`` is market-wide), so wallets are polled on the Data API. This
module only *finds* those trades; deciding which are whale trades, and
shaping the ``whale_trade`` event, is the pipeline's job
(:mod:`venuefeed.pipeline.whales`), the same for every venue. Each
source (one per wallet, plus ``"*"`` for market-wide large trades) keeps a
:class:`Watermark` -- the newest timestamp seen and the trade ids seen at that
timestamp -- which goes in and out of :meth:`WalletWatcher.poll`, so the
service can persist it and nothing is reported twice, even across restarts.
Trades sharing the watermark second are told apart by id, not dropped.

:func:`advance` is pure; only :meth:`WalletWatcher.poll` does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from venuefeed.models import Trade

if TYPE_CHECKING:
    from venuefeed.venues.polymarket.rest import PolymarketRest

__all__ = ["MARKET_WIDE", "WalletWatcher", "Watermark", "advance"]

MARKET_WIDE = "*"
"""Watermark key of the market-wide large-trade source."""


class Watermark(msgspec.Struct, frozen=True):
    """Newest trade time seen (ns) and the ids seen at exactly that time."""

    last_ts: int = 0
    ids: tuple[str, ...] = ()


def advance(trades: Iterable[Trade], mark: Watermark) -> tuple[list[Trade], Watermark]:
    """The trades newer than ``mark`` (oldest first) and the watermark after them."""
    fresh = sorted(
        (
            t
            for t in trades
            if t.ts_venue > mark.last_ts
            or (t.ts_venue == mark.last_ts and t.trade_id not in mark.ids)
        ),
        key=lambda t: t.ts_venue,
    )
    unique: dict[str, Trade] = {}
    for trade in fresh:
        unique.setdefault(trade.trade_id, trade)
    if not unique:
        return [], mark
    newest = max(t.ts_venue for t in unique.values())
    ids = {t.trade_id for t in unique.values() if t.ts_venue == newest}
    if newest == mark.last_ts:
        ids.update(mark.ids)
    return list(unique.values()), Watermark(newest, tuple(sorted(ids)))


class WalletWatcher:
    """Polls the Data API for watched wallets and market-wide large trades."""

    mark_type = Watermark

    def __init__(
        self,
        rest: PolymarketRest,
        wallets: Iterable[str],
        threshold: Decimal,
        *,
        lookback_seconds: float = 3600.0,
    ) -> None:
        self.rest = rest
        self.wallets = tuple(dict.fromkeys(w.lower() for w in wallets))
        self.threshold = threshold
        self.lookback_ns = int(lookback_seconds * 1e9)

    async def poll(
        self, marks: Mapping[str, Watermark]
    ) -> tuple[list[Trade], dict[str, Watermark]]:
        """One round: new trades of the sources since ``marks``, and the advanced marks.

        A source seen for the first time starts ``lookback_seconds`` back. An
        HTTP failure propagates (the transport has already retried); marks of
        sources polled before it are not returned, so the next round repeats
        them and deduplication by watermark keeps the output exact.
        """
        now = time.time_ns()
        out_marks = dict(marks)
        found: list[Trade] = []
        seen: set[str] = set()
        sources: list[tuple[str, list[Trade]]] = []
        for wallet in self.wallets:
            mark = marks.get(wallet, Watermark())
            start = mark.last_ts or now - self.lookback_ns
            sources.append((wallet, await self.rest.wallet_trades(wallet, start, now)))
        large = await self.rest.large_trades(self.threshold)
        sources.append((MARKET_WIDE, [t for t in large if t.ts_venue >= now - self.lookback_ns]))
        for key, trades in sources:
            fresh, out_marks[key] = advance(trades, marks.get(key, Watermark()))
            fresh = [t for t in fresh if t.trade_id not in seen]
            seen.update(t.trade_id for t in fresh)
            found.extend(fresh)
        return found, out_marks
