"""Whale tracking: watermarks report each trade once; watched wallets and big notionals flagged."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from venuefeed.models import Trade
from venuefeed.venues.polymarket import Simulator
from venuefeed.venues.polymarket.wallets import MARKET_WIDE, Watermark, WhaleTrade, advance, detect

from .helpers import make_adapter


def trade(
    trade_id: str, ts: int, size: str = "10", price: str = "0.5", taker: str | None = None
) -> Trade:
    return Trade(venue="polymarket", instrument="tok", ts_venue=ts, ts_recv=0, trade_id=trade_id,
                 price=price, size=size, side="buy", market_id="0xm", taker=taker)  # fmt: skip


def test_watermark_reports_each_trade_once_even_within_one_second() -> None:
    first, mark = advance([trade("a", 5), trade("b", 7), trade("c", 7)], Watermark())
    assert [t.trade_id for t in first] == ["a", "b", "c"] and mark == Watermark(7, ("b", "c"))
    # Same rows again plus a late one in the same second and a newer one.
    again, mark = advance(
        [trade("a", 5), trade("b", 7), trade("c", 7), trade("d", 7), trade("e", 9)], mark
    )
    assert [t.trade_id for t in again] == ["d", "e"] and mark == Watermark(9, ("e",))
    nothing, same = advance([trade("e", 9)], mark)
    assert nothing == [] and same == mark


def test_detect_watched_wallets_and_large_notional() -> None:
    trades = [
        trade("small-known", 1, "10", "0.5", "0xAbC"),
        trade("big-unknown", 2, "30000", "0.5", "0xdef"),
        trade("small-unknown", 3, "10", "0.5", "0x999"),
        trade("big-anonymous", 4, "20000", "0.5", None),
    ]
    events = detect(trades, watched={"0xabc"}, threshold=Decimal("10000"), detected_at=99)
    assert [e.trade_id for e in events] == ["small-known", "big-unknown", "big-anonymous"]
    assert events[1] == WhaleTrade(
        trade_id="big-unknown", trader_address="0xdef", market_id="0xm", token_id="tok",
        side="buy", size="30000", price="0.5", amount="15000", timestamp=2, detected_at=99,
    )  # fmt: skip


async def test_poll_against_the_simulator_with_watermarks() -> None:
    async with Simulator(seed=31, markets=3, events_per_second=300, whale_rate=0.25) as sim:
        assert isinstance(sim, Simulator)
        async with make_adapter(sim) as adapter:
            watcher = adapter.wallet_watcher(sim.whale_wallets)
            await asyncio.sleep(0.5)
            first, marks = await watcher.poll({})
            await asyncio.sleep(0.5)
            second, marks = await watcher.poll(marks)
            sim.pause()
            await asyncio.sleep(0.1)
            third, marks = await watcher.poll(marks)
            fourth, _ = await watcher.poll(marks)
        ids = [e.trade_id for e in first + second + third]
        assert len(ids) == len(set(ids)) and fourth == []
        whales = [t for t in sim.truth.trades if t["whale"]]
        assert len(ids) == len(whales) > 0
        assert {e.trader_address for e in first + second + third} <= set(sim.whale_wallets)
        assert all(Decimal(e.amount) >= 10000 for e in first + second + third)
        assert set(marks) == {*sim.whale_wallets, MARKET_WIDE}
