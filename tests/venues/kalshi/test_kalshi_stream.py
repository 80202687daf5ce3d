"""The authenticated stream (the generic pump around the Kalshi feed) against the simulator:
gaps detected, healed, books equal."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.venues.kalshi.kalshi_support import ANCHOR, kalshi_settings, until
from venuefeed import metrics
from venuefeed.book import SyncState
from venuefeed.models import BookDelta, BookSnapshot, DataGap, Event, Trade
from venuefeed.sim.base import Faults
from venuefeed.transport import WsPolicy
from venuefeed.venues.kalshi import Adapter, Simulator
from venuefeed.venues.kalshi.adapter import KalshiWsProtocol
from venuefeed.venues.kalshi.feed import KalshiFeed
from venuefeed.venues.pump import FeedStream

FAST = WsPolicy(backoff_base=0.05, backoff_cap=0.2, idle_timeout=5.0, stable_after=0.1)


def books_equal(stream: FeedStream, sim: Simulator, tickers: list[str]) -> bool:
    for ticker in tickers:
        book = stream.book(ticker)
        if book is None or book.state is not SyncState.LIVE:
            return False
        ours = (
            [(lv.price, lv.size) for lv in book.bids()],
            [(lv.price, lv.size) for lv in book.asks()],
        )
        if ours != sim.canonical_book(ticker):
            return False
    return True


async def run_stream(
    sim: Simulator, private: bytes, tickers: list[str], events: list[Event]
) -> tuple[FeedStream, KalshiFeed, asyncio.Task[None]]:
    cfg = kalshi_settings(sim.urls()["rest"], sim.urls()["ws"], private)
    adapter = Adapter(cfg.venues["kalshi"], cfg)
    feed = KalshiFeed({"books", "trades", "quotes"}, adapter.rejects)
    protocol = KalshiWsProtocol(adapter.url("ws"), adapter.require_signer(), feed, 1000)
    stream = FeedStream(feed, protocol, FAST)

    async def consume() -> None:
        async for event in stream:  # events must be visible while the stream runs
            events.append(event)  # noqa: PERF401

    task = asyncio.create_task(consume())
    await stream.subscribe(tickers)
    return stream, feed, task


async def test_gaps_detected_and_healed_books_equal(keypair: tuple[bytes, bytes]) -> None:
    faults = Faults(
        skip_update_rate=0.02, duplicate_rate=0.02, out_of_order_rate=0.01, malformed_rate=0.01
    )
    resyncs_before = metrics.BOOK_RESYNCS.labels(venue="kalshi")._value.get()
    sim = Simulator(
        seed=3,
        markets=300,
        public_key_pem=keypair[1],
        events_per_second=2000,
        anchor_ts=ANCHOR,
        faults=faults,
        trading_markets=12,
    )
    sim.pause()  # the venue trades from start; compare from the moment we subscribed
    await sim.start()
    events: list[Event] = []
    tickers = sim.market_tickers(12)
    stream, feed, task = await run_stream(sim, keypair[0], tickers, events)
    try:
        await until(
            lambda: any(s.channel == "trade" for k in sim.sockets for s in k.state.subs.values())
        )
        sim.resume()
        skips = lambda: [e for e in sim.truth.events if e["kind"] == "sequence_skip"]  # noqa: E731
        await until(lambda: len(skips()) >= 5 and feed.gaps >= 3)
        sim.faults = Faults()  # heal: later deltas reveal any gap still pending
        await asyncio.sleep(0.3)
        sim.pause()
        await until(lambda: books_equal(stream, sim, tickers))
    finally:
        await stream.close()
        await asyncio.wait_for(task, 5)
        await sim.stop()
    # Every skipped seq fell in a detected gap of its sid (a resync started at or before it).
    detected: dict[int, list[int]] = {}
    opened: dict[tuple[str, int], DataGap] = {}
    healed: dict[tuple[str, int], DataGap] = {}
    for ev in events:
        if isinstance(ev, DataGap) and ev.cause == "sequence_gap":
            m = re.match(r"sid (\d+): expected seq (\d+)", ev.detail)
            assert m is not None
            (healed if ev.healed else opened)[(ev.instrument, ev.start)] = ev
            if not ev.healed:
                detected.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    for skip in skips():
        assert any(expected <= skip["seq"] for expected in detected.get(skip["sid"], ())), skip
    # One ledger entry per incident, listing the sid's markets, healed once they resynced.
    assert opened and set(healed) == set(opened)
    for key, gap in opened.items():
        assert gap.instrument.endswith(f"sid:{gap.detail.split()[1].rstrip(':')}")
        assert set(gap.instruments) <= set(tickers) and gap.instruments
        assert healed[key].end >= gap.start
    assert feed.snapshot_requests >= 3
    assert metrics.BOOK_RESYNCS.labels(venue="kalshi")._value.get() - resyncs_before >= 3
    # Trades carry no seq: every one the venue printed for these markets arrived (a duplicated
    # trade frame arrives twice; the pipeline's dedup, not the stream, makes it one row).
    got = [ev.trade_id for ev in events if isinstance(ev, Trade)]
    assert {t["trade_id"] for t in sim.truth.trades} == set(got)
    assert any(isinstance(ev, BookDelta) for ev in events)
    assert metrics.REJECTED_FRAMES.labels(venue="kalshi", reason="malformed_json")._value.get() > 0


async def test_reconnect_resets_sids_and_resnapshots(keypair: tuple[bytes, bytes]) -> None:
    sim = Simulator(
        seed=5,
        markets=200,
        public_key_pem=keypair[1],
        events_per_second=500,
        anchor_ts=ANCHOR,
        faults=Faults(disconnect_every_seconds=0.4),
        trading_markets=4,
    )
    await sim.start()
    events: list[Event] = []
    tickers = sim.market_tickers(4)
    stream, _feed, task = await run_stream(sim, keypair[0], tickers, events)
    try:
        await until(lambda: stream.session.reconnects >= 2)
        sim.faults = Faults()
        await until(lambda: sum(isinstance(e, BookSnapshot) for e in events) >= 3 * len(tickers))
        await asyncio.sleep(0.2)
        sim.pause()
        await until(lambda: books_equal(stream, sim, tickers))
    finally:
        await stream.close()
        await asyncio.wait_for(task, 5)
        await sim.stop()
    gaps = [e for e in events if isinstance(e, DataGap) and e.cause == "disconnect"]
    assert {g.instrument for g in gaps} == {"conn:0"}
    assert all(set(g.instruments) == set(tickers) for g in gaps)


async def test_unsigned_handshake_is_refused(keypair: tuple[bytes, bytes]) -> None:
    import aiohttp

    async with Simulator(public_key_pem=keypair[1], anchor_ts=ANCHOR) as sim:
        assert isinstance(sim, Simulator)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(sim.urls()["ws"])
        assert info.value.status == 401
