"""REST against the simulator over real sockets: discovery, books, trades, candles, checks."""

from __future__ import annotations

import time
from decimal import Decimal

from venuefeed.models import BookLevel, BookSnapshot
from venuefeed.pipeline import quality
from venuefeed.sim.base import Faults
from venuefeed.venues.base import MarketQuery
from venuefeed.venues.polymarket import Simulator

from .helpers import make_adapter


async def test_discovery_window_pagination_and_versions() -> None:
    async with Simulator(seed=11, markets=230, events_per_second=0.001) as sim:
        assert isinstance(sim, Simulator)
        async with make_adapter(sim) as adapter:
            week = [m async for m in adapter.fetch_markets(MarketQuery())]
            everything = [
                m async for m in adapter.fetch_markets(MarketQuery(max_resolution_days=0))
            ]
            limited = [m async for m in adapter.fetch_markets(MarketQuery(limit=7))]
            sports = [m async for m in adapter.fetch_markets(MarketQuery(categories=("sports",)))]
        now = time.time_ns()
        open_markets = [m for m in sim.markets if not m.closed]
        in_window = {
            m.condition_id for m in open_markets if (m.end.timestamp() - time.time()) < 7 * 86400
        }
        # More than two Gamma pages (limit is capped at 100) were needed and read.
        assert len(everything) == len(open_markets) > 200
        assert {m.market_id for m in week} == in_window
        assert all(now < (m.close_time or 0) <= now + 7 * 86400 * 10**9 for m in week)
        assert len(limited) == 7
        assert sports and all(m.category == "Sports" for m in sports)
        assert all(m.event_id is not None and len(m.outcomes) == 2 for m in week)
        assert all(m.category for m in week)
        # Editing the rules text creates a new version (a different raw_hash).
        token = week[0].outcomes[0].token_id
        sim.edit_rules(token, "New rules.")
        async with make_adapter(sim) as adapter:
            (again,) = await adapter.rest.markets_by_tokens([token])
        assert again.rules == "New rules." and again.raw_hash != week[0].raw_hash


async def test_books_best_first_top_n_and_hash() -> None:
    async with Simulator(seed=12, markets=60, events_per_second=50) as sim:
        assert isinstance(sim, Simulator)
        tokens = sim.tokens()
        async with make_adapter(sim) as adapter:
            one = await adapter.fetch_book(tokens[0], 3)
            many = await adapter.fetch_books(tokens, 2)
            summaries = await adapter.rest.summaries(tokens[:5])
        assert len(one.bids) <= 3 and len(one.asks) <= 3
        assert [float(x.price) for x in one.bids] == sorted(
            (float(x.price) for x in one.bids), reverse=True
        )
        assert [float(x.price) for x in one.asks] == sorted(float(x.price) for x in one.asks)
        assert one.bids[0].price < one.asks[0].price and one.checksum
        # More tokens than one /books batch: all answered, in batches.
        assert len(many) == len(tokens) > 100 and sim.requests["books"] >= 3
        from venuefeed.venues.polymarket.parse import book_hash

        assert all(book_hash(s) == s.hash for s in summaries)


async def test_trades_by_market_and_wallet_with_window() -> None:
    async with Simulator(seed=13, markets=3, events_per_second=400, whale_rate=0.3) as sim:
        assert isinstance(sim, Simulator)
        start = time.time_ns()
        import asyncio

        await asyncio.sleep(0.6)
        sim.pause()
        end = time.time_ns()
        truth = sim.truth.trades
        market = truth[0]["market"]
        async with make_adapter(sim) as adapter:
            by_market = await adapter.fetch_market_trades(market, start, end)
            token = truth[0]["token_id"]
            by_token = [t async for t in adapter.fetch_trades(token, start, end)]
            wallet = sim.whale_wallets[0]
            by_wallet = await adapter.fetch_wallet_trades(wallet, start, end)
            empty = await adapter.fetch_market_trades(market, end + 10**10, end + 2 * 10**10)
        assert {t.trade_id for t in by_market} and empty == []
        assert len(by_market) == sum(1 for t in truth if t["market"] == market)
        assert len(by_token) == sum(1 for t in truth if t["token_id"] == token)
        assert len(by_wallet) == sum(1 for t in truth if t["wallet"] == wallet) > 0
        assert all(t.taker == wallet for t in by_wallet)
        assert [t.ts_venue for t in by_market] == sorted(t.ts_venue for t in by_market)


async def test_candles_and_check_and_quality() -> None:
    async with Simulator(seed=14, markets=2, events_per_second=300) as sim:
        assert isinstance(sim, Simulator)
        token = sim.tokens()[0]
        now = time.time_ns()
        async with make_adapter(sim) as adapter:
            bars = [
                c async for c in adapter.fetch_candles(token, "1h", now - 6 * 3600 * 10**9, now)
            ]
            verdict = await adapter.check()
            book = await adapter.fetch_book(token, 1)
            mid = (Decimal(book.bids[0].price) + Decimal(book.asks[0].price)) / 2
            ok = await adapter.verify_price(token, str(mid))
            far = await adapter.verify_price(token, str(min(Decimal("0.99"), mid + Decimal("0.3"))))
        assert 6 <= len(bars) <= 7 and all(b.interval == "1h" for b in bars)
        assert all(Decimal(b.low) <= Decimal(b.open) <= Decimal(b.high) for b in bars)
        assert verdict.ok and verdict.authenticated is None
        assert ok[0] is True and ok[2] == ""
        assert far[0] is False and far[2].startswith("deviation")


async def test_check_reports_an_unreachable_venue() -> None:
    sim = Simulator(seed=1, markets=1)
    await sim.start()
    adapter = make_adapter(sim)
    await sim.stop()
    verdict = await adapter.check()
    await adapter.close()
    assert not verdict.ok and "clob" in verdict.detail


async def test_rest_survives_429_and_5xx() -> None:
    faults = Faults(http_429_rate=0.3, http_5xx_rate=0.2, retry_after_seconds=None)
    async with Simulator(seed=15, markets=120, events_per_second=0.001, faults=faults) as sim:
        assert isinstance(sim, Simulator)
        async with make_adapter(sim) as adapter:
            got = [m async for m in adapter.fetch_markets(MarketQuery(max_resolution_days=0))]
        assert len(got) == len([m for m in sim.markets if not m.closed])
        assert any(e["kind"] == "http_429" for e in sim.truth.events)


def test_quality_g1_g3_g5_pure() -> None:
    from venuefeed.models import Trade

    def trade(ts: int, price: str, size: str) -> Trade:
        return Trade(venue="polymarket", instrument="t", ts_venue=ts, ts_recv=0,
                     trade_id=str(ts), price=price, size=size)  # fmt: skip

    now = 1_000 * 10**9
    assert quality.is_stale(now - 301 * 10**9, now, 300) and not quality.is_stale(
        now - 299 * 10**9, now, 300
    )
    trades = [trade(now - 50 * 10**9, "0.5", "10"), trade(now - 5 * 10**9, "0.505", "20"),
              trade(now - 1 * 10**9, "0.6", "30")]  # fmt: skip
    assert (
        quality.size_at_price(trades, "0.5", now, tolerance=Decimal("0.01"), max_age_seconds=60)
        == "20"
    )
    assert (
        quality.size_at_price(trades, "0.3", now, tolerance=Decimal("0.01"), max_age_seconds=60)
        is None
    )
    book = BookSnapshot(venue="polymarket", instrument="t", ts_venue=0, ts_recv=0,
                        bids=[BookLevel("0.4", "1")], asks=[BookLevel("0.5", "1")])  # fmt: skip
    assert quality.verify_against_snapshot("0.46", book, Decimal("0.1")) == (True, "0.45", "")
    assert quality.verify_against_snapshot("0.7", book, Decimal("0.1")) == (
        False,
        "0.45",
        "deviation 0.25 > 0.1",
    )
    assert quality.verify_against_snapshot("0.7", None, Decimal("0.1")) == (False, None, "no_book")
