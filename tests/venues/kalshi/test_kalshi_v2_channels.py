"""``ticker_v2`` and ``market_lifecycle_v2``: partial quotes merged whole, lifecycle as status."""

from __future__ import annotations

import asyncio
import json

from tests.venues.kalshi.kalshi_support import ANCHOR, kalshi_settings, until
from venuefeed.models import Event, MarketStatus, MarketStatusChange, TopOfBook
from venuefeed.transport import Frame
from venuefeed.venues.kalshi import Adapter, Simulator
from venuefeed.venues.kalshi.feed import KalshiFeed

RECV = 1_787_155_203_000_000_000
TICKER = "KXHIGHNY-26AUG20-T90"
OTHER = "KXHIGHNY-26AUG20-T91"


def frame(kind: str, **msg: object) -> Frame:
    body = {"type": kind, "sid": 3, "msg": {"market_ticker": TICKER, **msg}}
    return Frame(json.dumps(body), RECV, 0)


def subscribed(channels: set[str], quote_channel: str = "ticker_v2") -> KalshiFeed:
    feed = KalshiFeed(channels, quote_channel=quote_channel)
    (command,) = feed.subscribe_frames([TICKER])
    assert quote_channel in json.loads(command)["params"]["channels"] or "quotes" not in channels
    return feed


def test_ticker_v2_deltas_are_merged_into_a_whole_quote_with_empty_sides_as_none() -> None:
    feed = subscribed({"quotes"})
    ts_ms = RECV // 1_000_000
    first = feed.on_frames([frame("ticker_v2", yes_bid_dollars="0.4100", yes_bid_size_fp="10.00",
                                  yes_ask_dollars="0.4400", yes_ask_size_fp="5.00",
                                  ts_ms=ts_ms)])  # fmt: skip
    second = feed.on_frames([frame("ticker_v2", yes_ask_size_fp="7.00", ts_ms=ts_ms)])
    # The bid side emptied (price 0, size 0): no bid, not a bid at 0; the ask is unchanged.
    third = feed.on_frames([frame("ticker_v2", yes_bid_dollars="0.0000", yes_bid_size_fp="0.00",
                                  price_dollars="0.4300", ts_ms=ts_ms)])  # fmt: skip
    quotes = [
        (e.bid_price, e.bid_size, e.ask_price, e.ask_size)
        for out in (first, second, third)
        for e in out.events
        if isinstance(e, TopOfBook)
    ]
    assert quotes == [
        ("0.41", "10", "0.44", "5"),
        ("0.41", "10", "0.44", "7"),
        (None, None, "0.44", "7"),
    ]
    assert [getattr(e, "price", None) for e in third.events][-1] == "0.43"


def test_a_bad_number_in_ticker_v2_is_a_counted_rejection() -> None:
    feed = subscribed({"quotes"})
    out = feed.on_frames([frame("ticker_v2", yes_bid_dollars="1.5", ts_ms=RECV // 1_000_000)])
    assert out.events == [] and feed.rejects.counts == {"invalid_price": 1}


def test_lifecycle_events_become_status_changes_of_subscribed_markets_only() -> None:
    feed = subscribed({"status"})
    now = RECV // 1_000_000_000
    # fmt: off
    out = feed.on_frames(
        [
            frame("market_lifecycle_v2", event_type="deactivated", is_deactivated=True),
            frame("market_lifecycle_v2", event_type="activated"),
            frame("market_lifecycle_v2", event_type="close_date_updated", close_ts=now + 60),
            frame("market_lifecycle_v2", event_type="determined", result="yes",
                  determination_ts=now),
            frame("market_lifecycle_v2", event_type="settled", result="yes", settled_ts=now),
            Frame(json.dumps({"type": "market_lifecycle_v2", "sid": 3, "msg": {
                "market_ticker": OTHER, "event_type": "determined", "result": "no"}}), RECV, 0),
            Frame(json.dumps({"type": "event_lifecycle", "sid": 3, "msg": {
                "event_ticker": "KXHIGHNY-26AUG20"}}), RECV, 0),
        ]
    )
    # fmt: on
    changes = [
        (e.instrument, e.status, e.detail, e.ts_venue)
        for e in out.events
        if isinstance(e, MarketStatusChange)
    ]  # fmt: skip
    assert changes == [
        (TICKER, MarketStatus.PAUSED, "deactivated", 0),
        (TICKER, MarketStatus.OPEN, "activated", 0),
        (TICKER, MarketStatus.RESOLVED, "determined: result yes", now * 1_000_000_000),
        (TICKER, MarketStatus.RESOLVED, "settled: result yes", now * 1_000_000_000),
    ]
    assert feed.rejects.counts == {}


async def test_the_simulator_serves_both_channels_and_the_quotes_match_its_books(
    keypair: tuple[bytes, bytes],
) -> None:
    sim = Simulator(seed=11, markets=200, public_key_pem=keypair[1], events_per_second=1500,
                    anchor_ts=ANCHOR, trading_markets=5)  # fmt: skip
    sim.pause()
    await sim.start()
    cfg = kalshi_settings(sim.urls()["rest"], sim.urls()["ws"], keypair[0],
                          **{"venues.kalshi.options.quote_channel": "ticker_v2"})  # fmt: skip
    adapter = Adapter(cfg.venues["kalshi"], cfg)
    stream = adapter.open_stream(frozenset({"quotes", "status"}))
    tickers, unsubscribed = sim.market_tickers(5), sim.market_tickers(6)[-1]
    events: list[Event] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)  # noqa: PERF401

    task = asyncio.create_task(consume())
    try:
        await stream.subscribe(tickers)
        await until(lambda: sum(len(k.state.subs) for k in sim.sockets) >= 2)
        sim.resume()
        await until(lambda: len({e.instrument for e in events if isinstance(e, TopOfBook)}) >= 3)
        sim.pause()
        sim.lifecycle(tickers[0], "determined", result="no")
        sim.lifecycle(tickers[0], "settled", result="no")
        sim.lifecycle(unsubscribed, "determined", result="yes")
        await until(lambda: sum(isinstance(e, MarketStatusChange) for e in events) >= 2)
        await asyncio.sleep(0.2)  # every frame the venue sent is in
        market = await adapter.rest.market(tickers[0])
    finally:
        await stream.close()
        await asyncio.wait_for(task, 5)
        await adapter.close()
        await sim.stop()
    last: dict[str, TopOfBook] = {}
    for event in events:
        if isinstance(event, TopOfBook):
            last[event.instrument] = event
    for ticker, top in last.items():
        bids, asks = sim.canonical_book(ticker)
        assert (top.bid_price, top.bid_size) == (bids[0] if bids else (None, None))
        assert (top.ask_price, top.ask_size) == (asks[0] if asks else (None, None))
    changes = [e for e in events if isinstance(e, MarketStatusChange)]
    assert [(e.instrument, e.status, e.detail) for e in changes] == [
        (tickers[0], MarketStatus.RESOLVED, "determined: result no"),
        (tickers[0], MarketStatus.RESOLVED, "settled: result no"),
    ]
    assert market.status is MarketStatus.RESOLVED
