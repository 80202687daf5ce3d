"""Kalshi's historical tier: back-fill reads ``/historical/trades`` for what is older than the
cutoff and ``/markets/trades`` for the rest -- every trade once, none lost at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.venues.kalshi.kalshi_support import ANCHOR, kalshi_settings
from venuefeed.venues.kalshi import Adapter, Simulator
from venuefeed.venues.kalshi.parse import parse_cutoffs
from venuefeed.venues.rejects import Rejects

DAY = 86_400
CUTOFF = ANCHOR - 10 * DAY


@pytest.fixture
async def tiered() -> AsyncIterator[Simulator]:
    sim = Simulator(seed=9, markets=400, anchor_ts=ANCHOR, trading_markets=0,
                    historical_cutoff_ts=CUTOFF)  # fmt: skip
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def straddling(sim: Simulator) -> str:
    """A market whose trades lie on both sides of the cutoff."""
    for i in range(sim.universe.n_markets):
        ticker = sim.universe.market_ticker(i)
        times = [t["ts_ms"] // 1000 for t in sim._history(ticker)]
        if any(t < CUTOFF for t in times) and any(t >= CUTOFF for t in times):
            return ticker
    raise AssertionError("no market straddles the cutoff")


def adapter_for(sim: Simulator, **options: object) -> Adapter:
    extra = {f"venues.kalshi.options.{key}": value for key, value in options.items()}
    cfg = kalshi_settings(sim.urls()["rest"], **extra)
    return Adapter(cfg.venues["kalshi"], cfg)


async def test_a_window_across_the_cutoff_is_back_filled_from_both_tiers(
    tiered: Simulator,
) -> None:
    ticker = straddling(tiered)
    truth = {t["trade_id"] for t in tiered._history(ticker)}
    start, end = (ANCHOR - 30 * DAY) * 10**9, ANCHOR * 10**9
    async with adapter_for(tiered) as adapter:
        got = [t.trade_id async for t in adapter.fetch_trade_window([ticker], start, end)]
    assert sorted(got) == sorted(truth)  # every trade, once
    assert tiered.requests["/trade-api/v2/historical/cutoff"] == 1
    assert tiered.requests["/trade-api/v2/historical/trades"] >= 1
    assert tiered.requests["/trade-api/v2/markets/trades"] >= 1


async def test_without_the_historical_tier_the_old_trades_are_missing(tiered: Simulator) -> None:
    ticker = straddling(tiered)
    old = {t["trade_id"] for t in tiered._history(ticker) if t["ts_ms"] // 1000 < CUTOFF}
    start, end = (ANCHOR - 30 * DAY) * 10**9, ANCHOR * 10**9
    async with adapter_for(tiered, historical_tier=False) as adapter:
        got = {t.trade_id async for t in adapter.fetch_trade_window([ticker], start, end)}
    assert old and not (old & got)


async def test_a_window_entirely_after_the_cutoff_asks_the_live_tier_only(
    tiered: Simulator,
) -> None:
    ticker = straddling(tiered)
    async with adapter_for(tiered) as adapter:
        got = [t async for t in adapter.fetch_trades(ticker, CUTOFF * 10**9, ANCHOR * 10**9)]
    assert got and all(t.ts_venue >= CUTOFF * 10**9 for t in got)
    assert "/trade-api/v2/historical/trades" not in tiered.requests


def test_the_cutoff_answer_is_read_as_iso_text_or_seconds_and_refused_when_absurd() -> None:
    rejects = Rejects("kalshi")
    now = ANCHOR * 10**9
    iso = b'{"market_settled_ts":"2026-08-01T00:00:00Z","trades_created_ts":1785542400}'
    cutoffs = parse_cutoffs(iso, now, rejects)
    assert cutoffs is not None
    assert (cutoffs.markets_ns, cutoffs.trades_ns) == (1785542400 * 10**9,) * 2
    assert (
        parse_cutoffs(b'{"market_settled_ts":"soon","trades_created_ts":1}', now, rejects) is None
    )
    assert parse_cutoffs(b"[]", now, rejects) is None
    assert rejects.counts == {"invalid_timestamp": 1, "malformed_cutoff": 1}
