"""The Polygon live stream through the real transport, against the simulator's /stocks socket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import msgspec
from prometheus_client import REGISTRY

from venuefeed.models import Candle, DataGap, Event, TopOfBook, Trade
from venuefeed.venues.polygon import Adapter, Simulator
from venuefeed.venues.polygon.feed import PolygonFeed
from venuefeed.venues.polygon.protocol import PolygonProtocol
from venuefeed.venues.pump import FeedStream

S = 1_000_000_000
MakeAdapter = Callable[..., Adapter]


async def collect(
    stream: FeedStream, until: Callable[[list[Event]], bool], within: float = 5.0
) -> list[Event]:
    events: list[Event] = []

    async def run() -> None:
        async for event in stream:
            events.append(event)
            if until(events):
                return

    await asyncio.wait_for(run(), within)
    return events


async def reaches(stream: FeedStream, state: str, within: float = 3.0) -> bool:
    """Poll the stream's state (set by the consumer task as status frames arrive)."""
    for _ in range(int(within / 0.02)):
        if stream.state == state:
            return True
        await asyncio.sleep(0.02)
    return stream.state == state


def test_protocol_frames() -> None:
    protocol = PolygonProtocol("wss://socket.massive.com/stocks", "k-1")
    assert [json.loads(f) for f in protocol.on_open()] == [{"action": "auth", "params": "k-1"}]
    assert [json.loads(f) for f in protocol.subscribe(["T.AAPL", "Q.AAPL", "AM.AAPL"], True)] == [
        {"action": "subscribe", "params": "T.AAPL,Q.AAPL,AM.AAPL"}
    ]
    assert [json.loads(f) for f in protocol.unsubscribe(["T.MSFT"])] == [
        {"action": "unsubscribe", "params": "T.MSFT"}
    ]
    assert protocol.subscribe([], False) == []


async def test_trades_and_quotes_match_ground_truth_and_history(
    sim: Simulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter()
    async with adapter.open_stream(frozenset({"trades", "quotes"})) as stream:
        await stream.subscribe(["AAPL", "MSFT"])
        events = await collect(stream, lambda ev: sum(isinstance(e, Trade) for e in ev) >= 40)
        assert stream.state == "connected"
    trades = [e for e in events if isinstance(e, Trade)]
    assert {e.instrument for e in trades} == {"AAPL", "MSFT"}
    assert any(isinstance(e, TopOfBook) for e in events)
    sent = {(t["instrument"], t["trade_id"]): t for t in sim.truth.trades}
    for trade in trades:
        truth = sent[(trade.instrument, trade.trade_id)]
        assert (trade.price, trade.size, trade.ts_venue // 10**6) == (
            truth["price"],
            truth["size"],
            truth["ts_venue"] // 10**6,
        )
        assert trade.ts_recv >= truth["sent_ns"]
    # the simulator's live feed is its history: REST has the same trades under the same ids,
    # and the live ones are one unbroken run of it (WS times are ms, so the edges may differ)
    aapl = [t.trade_id for t in trades if t.instrument == "AAPL"]
    first, last = (t.ts_venue for t in (trades[0], trades[-1]))
    history = [t.trade_id async for t in adapter.fetch_trades("AAPL", first, last + 10**6)]
    positions = [history.index(trade_id) for trade_id in aapl]
    assert positions == list(range(positions[0], positions[0] + len(aapl)))


async def test_forced_disconnect_reports_a_gap_and_resumes(
    sim: Simulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter()
    async with adapter.open_stream(frozenset({"trades"})) as stream:
        await stream.subscribe(["AAPL", "MSFT"])
        before = await collect(stream, lambda ev: len(ev) >= 5)
        await sim.disconnect_all()
        after = await collect(
            stream,
            lambda ev: sum(isinstance(e, DataGap) for e in ev) == 1 and isinstance(ev[-1], Trade),
        )
        assert stream.reconnects == stream.stats()["reconnects"] == 1  # what status shows
    gaps = [e for e in after if isinstance(e, DataGap)]
    assert [(g.instrument, g.instruments) for g in gaps] == [("conn:0", ("AAPL", "MSFT"))]
    assert all(g.cause == "disconnect" and g.start <= g.end for g in gaps)
    assert sum(e["kind"] == "ws_open" for e in sim.truth.events) == 2
    # Polygon ids are unique per ticker (and exchange), not across tickers.
    ids = [(e.instrument, e.trade_id) for e in before + after if isinstance(e, Trade)]
    assert len(ids) == len(set(ids))
    forced = REGISTRY.get_sample_value(
        "market_data_ingestion_errors_total", {"venue": "polygon", "kind": "ws_force_disconnect"}
    )
    assert forced is not None and forced >= 1


async def test_wrong_key_is_an_error_state_with_paced_retries(
    sim: Simulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(key="wrong-key", backoff_base=0.2)
    before = (
        REGISTRY.get_sample_value(
            "market_data_ingestion_errors_total", {"venue": "polygon", "kind": "ws_auth_failed"}
        )
        or 0
    )
    stream = adapter.open_stream(frozenset({"trades"}))
    async with stream:
        await stream.subscribe(["AAPL"])
        consumer = asyncio.ensure_future(collect(stream, lambda ev: False, within=10))
        assert await reaches(stream, "auth_failed")
        assert isinstance(stream.feed, PolygonFeed)
        assert stream.feed.error == "auth_failed: authentication failed"
        await asyncio.sleep(1.0)
        consumer.cancel()
    attempts = sum(e["kind"] == "ws_open" for e in sim.truth.events)
    assert 1 <= attempts <= 8  # backoff paces the retries; a hot loop would make hundreds
    after = REGISTRY.get_sample_value(
        "market_data_ingestion_errors_total", {"venue": "polygon", "kind": "ws_auth_failed"}
    )
    assert after is not None and after >= before + 1


async def test_second_connection_hits_max_connections(
    sim: Simulator, make_adapter: MakeAdapter
) -> None:
    first, second = make_adapter(), make_adapter()
    async with (
        first.open_stream(frozenset({"trades"})) as one,
        second.open_stream(frozenset({"trades"})) as two,
    ):
        await one.subscribe(["AAPL"])
        await collect(one, lambda ev: len(ev) >= 1)
        await two.subscribe(["AAPL"])
        consumer = asyncio.ensure_future(collect(two, lambda ev: False, within=10))
        assert await reaches(two, "max_connections")
        consumer.cancel()
        error = two.feed.error  # type: ignore[attr-defined]
        assert error is not None and "Maximum number of websocket connections" in error
        assert one.state == "connected"


async def test_minute_bars_arrive_when_the_minute_closes(
    adapter_for: Callable[..., Adapter],
) -> None:
    minute = 60 * S
    offset = (-time.time_ns() % minute) - minute // 200  # 0.3 s before a minute boundary
    simulator = Simulator(seed=3, clock=lambda: time.time_ns() + offset)
    async with simulator:
        adapter = adapter_for(simulator)
        async with adapter.open_stream(frozenset({"candles"})) as stream:
            await stream.subscribe(["MSFT"])
            (bar,) = await collect(stream, lambda ev: len(ev) == 1, within=3)
        assert isinstance(bar, Candle)
        start = bar.open_time
        history = [c async for c in adapter.fetch_candles("MSFT", "1minute", start, start + minute)]
        await adapter.close()
    assert (bar.instrument, bar.interval, bar.close_time - bar.open_time) == (
        "MSFT",
        "1m",
        minute,
    )
    assert start % minute == 0

    # The simulator's clock runs ahead of ours here, so REST thinks the bar is still open.
    def unstamped(candle: Candle) -> Candle:
        return msgspec.structs.replace(candle, ts_recv=0, trades=None, closed=True)

    assert [unstamped(c) for c in history] == [unstamped(bar)]
