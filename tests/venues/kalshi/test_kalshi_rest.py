"""The adapter's REST side against the simulator over real loopback sockets."""

from __future__ import annotations

import time

import pytest

from tests.venues.kalshi.kalshi_support import ANCHOR, kalshi_settings
from venuefeed.models import MarketStatus
from venuefeed.sim.base import Faults
from venuefeed.venues.base import MarketQuery, adapter_class, simulator_class
from venuefeed.venues.kalshi import Adapter, Simulator
from venuefeed.venues.kalshi.auth import CredentialsError, generate_test_keypair


def make_adapter(sim: Simulator, private: bytes | None = None) -> Adapter:
    cfg = kalshi_settings(sim.urls()["rest"], sim.urls()["ws"], private)
    return Adapter(cfg.venues["kalshi"], cfg)


def test_registry_finds_the_package() -> None:
    assert adapter_class("kalshi") is Adapter and simulator_class("kalshi") is Simulator
    assert Adapter.default_urls["rest"] == "https://external-api.kalshi.com/trade-api/v2"


async def test_seven_day_window_uses_close_ts_and_keeps_open_markets(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = ANCHOR + 3600
    monkeypatch.setattr(time, "time", lambda: float(now))
    async with make_adapter(sim) as adapter:
        found = [m async for m in adapter.fetch_markets(MarketQuery(max_resolution_days=7))]
    expected = {
        c.ticker
        for c in map(sim.universe.core, range(sim.universe.n_markets))
        if c.status == "active" and now <= c.close_ts <= now + 7 * 86_400
    }
    assert expected and {m.market_id for m in found} == expected
    assert all(m.status is MarketStatus.OPEN for m in found)
    assert sim.requests["/trade-api/v2/markets"] >= 1


async def test_markets_paginate_at_max_page_size(keypair: tuple[bytes, bytes]) -> None:
    async with Simulator(markets=2500, anchor_ts=ANCHOR, trading_markets=0) as sim:
        assert isinstance(sim, Simulator)
        async with make_adapter(sim) as adapter:
            query = MarketQuery(max_resolution_days=0, active_only=False)
            found = [m.market_id async for m in adapter.fetch_markets(query)]
        assert len(found) == len(set(found)) == 2500
        assert sim.requests["/trade-api/v2/markets"] == 3  # 1000 + 1000 + 500


async def test_categories_go_through_series(sim: Simulator) -> None:
    async with make_adapter(sim) as adapter:
        query = MarketQuery(max_resolution_days=0, active_only=False, categories=("Politics",))
        found = [m async for m in adapter.fetch_markets(query)]
    politics = [
        s
        for s in range(sim.universe.n_series)
        if sim.universe.series_payload(s)["category"] == "Politics"
    ]
    assert found and all(m.category == "Politics" for m in found)
    assert {m.market_id for m in found} == {
        sim.universe.market_ticker(i) for s in politics for i in sim.universe.series_markets(s)
    }


async def test_book_trades_candles(sim: Simulator) -> None:
    ticker = sim.market_tickers(1)[0]
    bids, asks = sim.canonical_book(ticker)
    async with make_adapter(sim) as adapter:
        book = await adapter.fetch_book(ticker, depth=2)
        full = await adapter.fetch_book(ticker, depth=0)
        trades = [t async for t in adapter.fetch_trades(ticker, 0, ANCHOR * 10**9)]
        candles = [
            c
            async for c in adapter.fetch_candles(
                ticker, "1h", (ANCHOR - 2 * 86_400) * 10**9, ANCHOR * 10**9
            )
        ]
    assert [(lv.price, lv.size) for lv in book.bids] == bids[:2]
    assert [(lv.price, lv.size) for lv in book.asks] == asks[:2]
    assert [(lv.price, lv.size) for lv in full.bids] == bids
    history = sim._history(ticker)
    assert [t.trade_id for t in trades] == [h["trade_id"] for h in history]
    traded = [c for c in candles if c.volume != "0"]
    assert sum(int(c.volume) for c in traded) == sum(h["count"] // 100 for h in history)


async def test_check_reports_auth_verdict(sim: Simulator, keypair: tuple[bytes, bytes]) -> None:
    async with make_adapter(sim) as anonymous:
        result = await anonymous.check()
        assert result.reachable and result.authenticated is None and result.ok
        with pytest.raises(CredentialsError, match="api_key_id"):
            anonymous.open_stream()
    async with make_adapter(sim, keypair[0]) as signed:
        result = await signed.check()
        assert result.authenticated is True and result.ok
    wrong_private, _ = generate_test_keypair()
    async with make_adapter(sim, wrong_private) as wrong:
        result = await wrong.check()
        assert result.reachable and result.authenticated is False and not result.ok
        assert "401" in result.detail


async def test_429_without_retry_after_and_5xx_are_ridden_out() -> None:
    faults = Faults(http_429_rate=0.3, http_5xx_rate=0.1, retry_after_seconds=None)
    async with Simulator(markets=1500, faults=faults, anchor_ts=ANCHOR, trading_markets=0) as sim:
        assert isinstance(sim, Simulator)
        assert "Retry-After" not in sim.rate_limited_response().headers
        async with make_adapter(sim) as adapter:
            query = MarketQuery(max_resolution_days=0, active_only=False)
            found = [m.market_id async for m in adapter.fetch_markets(query)]
        assert len(set(found)) == 1500
        assert any(e["kind"] == "http_429" for e in sim.truth.events)
