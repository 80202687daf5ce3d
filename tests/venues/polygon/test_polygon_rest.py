"""Polygon REST backfills against the simulator: ranges, pagination, resume, auth, 429s."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

import msgspec
import pytest

from tests.venues.captures import load
from venuefeed.config import ConfigError, Settings, VenueSettings
from venuefeed.log import configure, get_logger
from venuefeed.models import Candle, Trade
from venuefeed.preflight import check_venue_options
from venuefeed.transport import HttpRetryExhausted, HttpStatusError
from venuefeed.venues.base import Unsupported
from venuefeed.venues.polygon import Adapter, Simulator
from venuefeed.venues.polygon.adapter import FREE_PLAN_RATE, MissingApiKeyError
from venuefeed.venues.polygon.parse import Interval, trade_id
from venuefeed.venues.polygon.rest import relative_next_url

S = 1_000_000_000
T0 = 1_700_000_000 * S  # 2023-11-14T22:13:20Z, a fixed past instant

MakeAdapter = Callable[..., Adapter]


E = TypeVar("E", Trade, Candle)


def unstamped(events: list[E]) -> list[E]:
    """Events without the receive time, which differs between fetches of the same data."""
    return [msgspec.structs.replace(e, ts_recv=0) for e in events]


async def trades(adapter: Adapter, start: int, end: int) -> list[Trade]:
    return unstamped([t async for t in adapter.fetch_trades("AAPL", start, end)])


async def candles(adapter: Adapter, interval: str, start: int, end: int) -> list[Candle]:
    return unstamped([c async for c in adapter.fetch_candles("AAPL", interval, start, end)])


def tape_ids(sim: Simulator, start: int, end: int) -> list[str]:
    """What the venue holds for [start, end), read from the tape (no REST, no paging)."""
    return [
        trade_id(r["exchange"], r.get("trf_id"), r["id"])
        for bucket in range(start // S, (end - 1) // S + 1)
        for r in sim.tape.trades_in("AAPL", bucket)
        if start <= r["sip_timestamp"] < end
    ]


async def test_trades_in_two_halves_equal_the_whole(
    sim: Simulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(page_limit=300)
    end = T0 + 90 * S
    mid = T0 + 41 * S + 123_456_789  # not on a second or page boundary
    whole = await trades(adapter, T0, end)
    halves = await trades(adapter, T0, mid) + await trades(adapter, mid, end)
    assert len(whole) > 1000  # several pages
    assert halves == whole
    ids = [t.trade_id for t in whole]
    assert len(set(ids)) == len(ids)
    assert ids == tape_ids(sim, T0, end)
    stamps = [t.ts_venue for t in whole]
    assert stamps == sorted(stamps)
    assert stamps[0] >= T0 and stamps[-1] < end


async def test_interrupted_trade_backfill_resumes_from_cursor(
    sim: Simulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(page_limit=200)
    end = T0 + 60 * S
    uninterrupted = await trades(adapter, T0, end)

    got: list[Trade] = []
    cursor: str | None = None
    sim.faults.retry_after_seconds = None
    with pytest.raises(HttpRetryExhausted):
        async for page in adapter.rest.trade_pages("AAPL", T0, end):
            got.extend(unstamped(page.items))  # "stored" ...
            cursor = page.next_cursor  # ... then the cursor recorded
            if len(got) >= 600:
                sim.faults.http_429_rate = 1.0  # the venue starts refusing mid-backfill
    assert cursor is not None and 600 <= len(got) < len(uninterrupted)

    sim.faults.http_429_rate = 0.0
    got.extend(unstamped([t async for t in adapter.fetch_trades("AAPL", T0, end, resume=cursor)]))
    assert got == uninterrupted


async def test_candles_in_two_halves_equal_the_whole(make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(page_limit=50)
    end = T0 + 3 * 3600 * S
    mid = T0 + 4567 * S
    whole = await candles(adapter, "1minute", T0, end)
    halves = await candles(adapter, "1minute", T0, mid) + await candles(
        adapter, "1minute", mid, end
    )
    assert halves == whole
    # T0 is not on a minute: the first bar opens at the next minute, and every minute follows.
    first = -(-T0 // (60 * S)) * 60 * S
    assert [c.open_time for c in whole] == list(range(first, end, 60 * S))
    assert all(c.close_time == c.open_time + 60 * S and c.interval == "1m" for c in whole)
    assert all(
        Decimal(c.low) <= min(Decimal(c.open), Decimal(c.close))
        and max(Decimal(c.open), Decimal(c.close)) <= Decimal(c.high)
        and c.closed
        for c in whole
    )


async def test_interrupted_candle_backfill_resumes_from_cursor(
    sim: Simulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(page_limit=40)
    end = T0 + 5 * 3600 * S
    uninterrupted = await candles(adapter, "5minute", T0, end)
    got: list[Candle] = []
    cursor: str | None = None
    sim.faults.retry_after_seconds = None
    with pytest.raises(HttpRetryExhausted):
        async for page in adapter.rest.candle_pages("AAPL", Interval.parse("5minute"), T0, end):
            got.extend(unstamped(page.items))
            cursor = page.next_cursor
            sim.faults.http_429_rate = 1.0
    assert cursor is not None and cursor.startswith("/v2/aggs/ticker/AAPL/range/5/minute/")
    sim.faults.http_429_rate = 0.0
    resumed = adapter.fetch_candles("AAPL", "5minute", T0, end, resume=cursor)
    got.extend(unstamped([c async for c in resumed]))
    assert got == uninterrupted
    assert len({c.open_time for c in got}) == len(got) == 60


async def test_occasional_429s_are_absorbed_by_the_transport(
    sim: Simulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(page_limit=100)
    end = T0 + 20 * S
    clean = await trades(adapter, T0, end)
    sim.faults.retry_after_seconds = None
    sim.faults.http_429_rate = 0.3
    patient = make_adapter(attempts=20, page_limit=100)
    assert await trades(patient, T0, end) == clean
    assert any(e["kind"] == "http_429" for e in sim.truth.events)


async def test_unknown_key_and_plan_limits(make_adapter: MakeAdapter) -> None:
    bad = make_adapter(key="not-the-key")
    result = await bad.check()
    assert (result.reachable, result.authenticated, result.ok) == (True, False, False)
    assert "Unknown API Key" in result.detail
    with pytest.raises(HttpStatusError) as info:
        await trades(bad, T0, T0 + S)
    assert info.value.status == 401
    assert "not-the-key" not in str(info.value)

    basic = make_adapter(key="basic-key")
    assert (await basic.check()).ok
    assert len(await candles(basic, "1hour", T0, T0 + 5 * 3600 * S)) == 5
    with pytest.raises(HttpStatusError) as info:
        await trades(basic, T0, T0 + S)
    assert info.value.status == 403
    assert info.value.message.startswith("You are not entitled to this data")


async def test_check_reports_market_and_latency(make_adapter: MakeAdapter) -> None:
    result = await make_adapter().check()
    assert result.ok and result.authenticated is True
    assert result.detail == "market open"
    assert result.latency_ms is not None and result.latency_ms >= 0


def test_next_url_becomes_a_keyless_relative_cursor() -> None:
    body = load("polygon", "clientpython_prerebrand_v3_quotes_AAPL.json")
    old = body["next_url"]
    assert old.startswith("https://api.polygon.io/")
    rel = relative_next_url(old)
    assert rel == old.removeprefix("https://api.polygon.io")
    assert relative_next_url("https://x.example/v3/trades/A?cursor=abc&apiKey=SECRET") == (
        "/v3/trades/A?cursor=abc"
    )


async def test_resume_cursor_must_continue_the_same_listing(make_adapter: MakeAdapter) -> None:
    adapter = make_adapter()
    with pytest.raises(ValueError, match="does not continue"):
        await trades_from(adapter, "/v3/trades/MSFT?cursor=abc")


async def trades_from(adapter: Adapter, cursor: str) -> list[Trade]:
    return [t async for t in adapter.fetch_trades("AAPL", T0, T0 + S, resume=cursor)]


def venue(key: str | None = None, **fields: object) -> VenueSettings:
    creds = {"api_key": key} if key else {}
    return VenueSettings(credentials=creds, **fields)  # type: ignore[arg-type]


async def test_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MASSIVE_API_KEY", "POLYGON_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingApiKeyError, match=r"credentials\.api_key"):
        Adapter(venue(), Settings())
    monkeypatch.setenv("POLYGON_API_KEY", "from-env-key")
    free = Adapter(venue(), Settings())
    assert free.rest.http.policy.rate == FREE_PLAN_RATE
    assert free.url("rest") == "https://api.massive.com"
    assert free.url("ws") == "wss://socket.massive.com/stocks"
    paid = Adapter(venue("k-123", rate_limit={"requests_per_second": 50, "burst": 50}), Settings())
    assert (paid.rest.http.policy.rate, paid.rest.http.policy.burst) == (50, 50)
    with pytest.raises(ValueError, match=r"venues\.polygon\.options\.pagelimit: unknown option"):
        Adapter(venue("k-123", options={"pagelimit": 5}), Settings())
    # WebSocket tuning is the shared websocket section, not a venue option.
    with pytest.raises(ValueError, match=r"options\.ws_idle_timeout_seconds: unknown option"):
        Adapter(venue("k-123", options={"ws_idle_timeout_seconds": 5}), Settings())
    with pytest.raises(ValueError, match="page_limit"):
        Adapter(venue("k-123", options={"page_limit": 50_001}), Settings())
    with pytest.raises(ConfigError, match=r"venues\.polygon\.options\.page_limit: must be"):
        check_venue_options(Settings(venues={"polygon": venue(options={"page_limit": 0})}))
    with pytest.raises(ValueError, match="polygon interval"):
        await candles(paid, "1fortnight", T0, T0 + S)
    with pytest.raises(Unsupported, match="no L2 order book"):
        paid.stream_books(["AAPL"])
    with pytest.raises(Unsupported):
        paid.open_stream(frozenset({"books"}))
    for adapter in (free, paid):
        await adapter.close()


async def test_api_key_is_masked_in_logs(make_adapter: MakeAdapter) -> None:
    out = io.StringIO()
    configure("INFO", "json", stream=out)
    adapter = make_adapter(key="k-unique-98765")
    with pytest.raises(HttpStatusError) as info:
        await trades(adapter, T0, T0 + S)  # the simulator does not know this key: 401
    get_logger("test").error("backfill failed", error=str(info.value), key=adapter._api_key)
    text = out.getvalue()
    assert "backfill failed" in text
    assert "k-unique-98765" not in text
