"""Whale tracking: trades by watched wallets, and any trade above a notional threshold.

Polymarket publishes no real-time per-wallet feed on the public CLOB (RTDS
``activity`` is market-wide), so wallets are polled on the Data API. Each
source (one per wallet, plus ``"*"`` for market-wide large trades) keeps a
:class:`Watermark` -- the newest timestamp seen and the trade ids seen at that
timestamp -- which goes in and out of :meth:`WalletWatcher.poll`, so the
service can persist it and nothing is reported twice, even across restarts.
Trades sharing the watermark second are told apart by id, not dropped.

The decision logic (:func:`advance`, :func:`detect`) is pure; only
:meth:`WalletWatcher.poll` does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from venuefeed import exact
from venuefeed.models import Trade

if TYPE_CHECKING:
    from venuefeed.venues.polymarket.rest import PolymarketRest

__all__ = ["MARKET_WIDE", "WalletWatcher", "Watermark", "WhaleTrade", "advance", "detect"]

MARKET_WIDE = "*"
"""Watermark key of the market-wide large-trade source."""


class WhaleTrade(msgspec.Struct, kw_only=True, frozen=True):
    """A whale trade as published to sinks and the dashboard.

    ``amount`` is the notional in USDC (size x price); ``timestamp`` is the
    venue's trade time and ``detected_at`` when we saw it (both ns).
    ``trader_address`` is None for a large trade whose wallet is not public
    (a WebSocket print).
    """

    event_type: str = "whale_trade"
    trade_id: str
    trader_address: str | None
    market_id: str | None
    token_id: str
    side: str
    size: str
    price: str
    amount: str
    timestamp: int
    detected_at: int


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


def notional(trade: Trade) -> Decimal:
    return exact.to_decimal(trade.size) * exact.to_decimal(trade.price)


def detect(
    trades: Iterable[Trade],
    *,
    watched: Collection[str],
    threshold: Decimal,
    detected_at: int,
) -> list[WhaleTrade]:
    """Whale events for trades by a watched wallet or with notional >= ``threshold``.

    The threshold applies to every trade, so a large trade by an unknown
    wallet (or an anonymous WebSocket print) is flagged too.
    """
    out: list[WhaleTrade] = []
    for trade in trades:
        amount = notional(trade)
        wallet = (trade.taker or trade.maker or "").lower() or None
        if (wallet is not None and wallet in watched) or amount >= threshold:
            out.append(
                WhaleTrade(
                    trade_id=trade.trade_id,
                    trader_address=wallet,
                    market_id=trade.market_id,
                    token_id=trade.instrument,
                    side=trade.side,
                    size=trade.size,
                    price=trade.price,
                    amount=exact.from_decimal(amount),
                    timestamp=trade.ts_venue,
                    detected_at=detected_at,
                )
            )
    return out


class WalletWatcher:
    """Polls the Data API for watched wallets and market-wide large trades."""

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
    ) -> tuple[list[WhaleTrade], dict[str, Watermark]]:
        """One round: new whale trades since ``marks`` and the advanced marks.

        A source seen for the first time starts ``lookback_seconds`` back. An
        HTTP failure propagates (the transport has already retried); marks of
        sources polled before it are not returned, so the next round repeats
        them and deduplication by watermark keeps the output exact.
        """
        now = time.time_ns()
        out_marks = dict(marks)
        events: list[WhaleTrade] = []
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
            events.extend(
                detect(fresh, watched=self.wallets, threshold=self.threshold, detected_at=now)
            )
        return events, out_marks
