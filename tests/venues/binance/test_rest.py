"""REST against the simulator: chunked history, weights, 429/418, check()."""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import pytest

from venuefeed import metrics
from venuefeed.config import ConfigError, Settings, VenueSettings
from venuefeed.models import BookSnapshot, Candle, Trade
from venuefeed.preflight import check_venue_options
from venuefeed.sim.base import Faults
from venuefeed.venues.binance import Adapter, Simulator, rest

from .conftest import make_adapter

S = 1_000_000_000


async def _trades(adapter: Adapter, start: int, end: int) -> list[Trade]:
    return [t async for t in adapter.fetch_trades("BTCUSDT", start, end)]


async def _candles(adapter: Adapter, interval: str, start: int, end: int) -> list[Candle]:
    return [c async for c in adapter.fetch_candles("BTCUSDT", interval, start, end)]


def _key(events: list[Trade] | list[Candle]) -> list[tuple[object, ...]]:
    """Everything but the receive time, which differs between fetches by nature."""
    return [tuple(v for k, v in _fields(e) if k != "ts_recv") for e in events]


def _fields(event: Trade | Candle) -> list[tuple[str, object]]:
    return [(name, getattr(event, name)) for name in event.__struct_fields__]


async def test_trades_in_two_halves_equal_the_whole(
    adapter: Adapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ten-minute windows instead of an hour keep the test small; each is still 6 pages deep.
    monkeypatch.setattr(rest, "AGG_TRADES_WINDOW_MS", 600_000)
    end = (time.time_ns() // S - 7200) * S + 123_456_789  # not on a millisecond boundary
    start = end - 25 * 60 * S  # three windows, the last one partial
    middle = start + 731 * S + 500_000
    whole = await _trades(adapter, start, end)
    halves = await _trades(adapter, start, middle) + await _trades(adapter, middle, end)
    assert len(whole) > 3 * 1000
    assert _key(halves) == _key(whole)
    ids = [t.trade_id for t in whole]
    assert len(set(ids)) == len(ids)
    assert all(t.trade_id.startswith("a") for t in whole)
    times = [t.ts_venue for t in whole]
    assert times == sorted(times) and start <= times[0] and times[-1] < end
    # Nothing missing at the edges: the slots just outside the range are outside it.
    before = await _trades(adapter, start - 2 * S, start)
    assert before and before[-1].ts_venue < start
    assert int(before[-1].trade_id[1:]) + 1 == int(whole[0].trade_id[1:])


async def test_candles_in_two_halves_equal_the_whole(adapter: Adapter) -> None:
    end = time.time_ns() - 3600 * S  # closed bars only: the open one changes as time passes
    start = end - 3 * 86_400 * S  # 4320 one-minute bars: five chunks of 1000
    middle = start + 1234 * 60 * S + 17
    whole = await _candles(adapter, "1m", start, end)
    halves = await _candles(adapter, "1m", start, middle) + await _candles(
        adapter, "1m", middle, end
    )
    assert _key(halves) == _key(whole)
    opens = [c.open_time for c in whole]
    assert len(set(opens)) == len(opens) >= 4319
    assert all(b - a == 60 * S for a, b in itertools.pairwise(opens))
    assert start <= opens[0] < start + 60 * S
    assert all(c.closed for c in whole) and opens[-1] < end


async def test_unknown_interval_is_refused(adapter: Adapter) -> None:
    with pytest.raises(ValueError, match="interval"):
        await _candles(adapter, "7m", 0, S)


async def test_429_with_retry_after_is_honoured() -> None:
    sim = Simulator(seed=3, faults=Faults(http_429_rate=0.5, retry_after_seconds=1))
    await sim.start()
    adapter = make_adapter(sim)
    try:
        started = time.monotonic()
        snap = await adapter.fetch_book("BTCUSDT", 10)
        waited = time.monotonic() - started
    finally:
        await adapter.close()
        await sim.stop()
    refused = [e for e in sim.truth.events if e["kind"] == "http_429"]
    assert refused, "the seed should have produced at least one 429"
    assert waited >= 0.9 * len(refused)
    assert len(snap.bids) == len(snap.asks) == 10
    assert not [e for e in sim.truth.events if e["kind"] == "http_418"]


async def test_418_ban_is_waited_out_and_retried() -> None:
    sim = Simulator(seed=3, weight_limit=100, weight_window_seconds=1, ban_seconds=1)
    await sim.start()
    adapter = make_adapter(sim)
    banned = metrics.HTTP_REQUESTS.labels("binance", "depth", "418")
    before = banned._value.get()
    try:
        async with aiohttp.ClientSession(base_url=sim.base_url) as http:
            # A careless other client on the same IP: over the limit, then ignores the 429.
            async with http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5000}) as r:
                assert r.status == 429
            async with http.get("/api/v3/time") as r:
                assert r.status == 418 and r.headers["Retry-After"] == "1"
        snap = await adapter.fetch_book("BTCUSDT", 10)
    finally:
        await adapter.close()
        await sim.stop()
    assert snap.sequence is not None
    assert banned._value.get() > before


async def _burst_of_snapshots(max_in_flight: int) -> tuple[list[object], int, int]:
    """24 depth snapshots at once (weight 120) against a venue whose one-second window
    allows 50 -- however the burst straddles a window, one window overflows: the
    results, and how many 429s and 418 bans the venue gave out."""
    sim = Simulator(seed=3, weight_limit=50, weight_window_seconds=1, ban_seconds=1)
    await sim.start()
    adapter = make_adapter(sim, max_in_flight=max_in_flight)
    try:
        calls = (adapter.fetch_book("BTCUSDT", 100) for _ in range(24))
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await adapter.close()
        await sim.stop()
    return results, sim.truth.count("http_429"), sim.truth.count("http_418")


async def test_a_flood_after_a_429_is_held_back_by_the_in_flight_limit() -> None:
    # One request on the wire at a time: the 429's Retry-After reaches the rate limiter
    # before the next request is let out, so the venue never sees one inside its window.
    results, refused, banned = await _burst_of_snapshots(max_in_flight=1)
    assert refused >= 1 and banned == 0
    assert all(isinstance(r, BookSnapshot) and r.bids and r.asks for r in results)
    # All on the wire at once: the ones already sent when the 429 came earn bans.
    _, refused, banned = await _burst_of_snapshots(max_in_flight=24)
    assert refused >= 1 and banned >= 1


async def test_used_weight_header_keeps_the_client_under_the_limit() -> None:
    sim = Simulator(seed=3, weight_limit=100, weight_window_seconds=1)
    await sim.start()
    adapter = make_adapter(sim, weight_per_minute=100, weight_window_seconds=1)
    try:
        for _ in range(30):  # 30 x weight 5 = 150: more than one window's worth
            await adapter.fetch_book("BTCUSDT", 100)
        assert adapter.rest.used_weight > 0
    finally:
        await adapter.close()
        await sim.stop()
    assert not [e for e in sim.truth.events if e["kind"] in ("http_429", "http_418")]


async def test_check(adapter: Adapter) -> None:
    result = await adapter.check()
    assert result.ok and result.reachable and result.authenticated is None
    assert result.latency_ms is not None


async def test_check_reports_an_unreachable_venue(sim: Simulator) -> None:
    adapter = make_adapter(sim)
    adapter.rest.http.base_url = "http://127.0.0.1:9"
    try:
        result = await adapter.check()
    finally:
        await adapter.close()
    assert not result.ok and "127.0.0.1:9" in result.detail


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="trade_stream"):
        Adapter(VenueSettings(options={"trade_stream": "everything"}), Settings())
    with pytest.raises(ValueError, match=r"venues\.binance\.options\.depth_limt: unknown"):
        Adapter(VenueSettings(options={"depth_limt": 10}), Settings())
    # The same check at start-up, before anything connects.
    with pytest.raises(ConfigError, match=r"venues\.binance\.options\.depth_limit: must be"):
        check_venue_options(Settings(venues={"binance": VenueSettings(options={"depth_limit": 0})}))
    with pytest.raises(ValueError, match="unknown endpoint"):
        Adapter(VenueSettings(urls={"stream": "wss://x"}), Settings())
    adapter = Adapter(VenueSettings(), Settings())
    assert adapter.url("rest") == "https://api.binance.com"
    assert adapter.url("ws") == "wss://stream.binance.com:9443"
