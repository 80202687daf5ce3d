"""Whale sources: watermarks report each trade once; the pipeline flags the whales."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from venuefeed.models import Trade
from venuefeed.pipeline.whales import WhaleWatch
from venuefeed.venues.polymarket import Simulator
from venuefeed.venues.polymarket.wallets import MARKET_WIDE, Watermark, advance

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
        found = first + second + third
        ids = [t.trade_id for t in found]
        assert len(ids) == len(set(ids)) and fourth == []
        whales = [t for t in sim.truth.trades if t["whale"]]
        assert len(ids) == len(whales) > 0
        assert set(marks) == {*sim.whale_wallets, MARKET_WIDE}
        # The pipeline's whale watch flags every one of them: a watched wallet or a big notional.
        watch = WhaleWatch(Decimal("10000"))
        watch.update(sim.whale_wallets)
        events = [watch.inspect(t) for t in found]
        assert all(e is not None for e in events)
        assert all(e.known_whale or Decimal(e.amount) >= 10000 for e in events if e is not None)
