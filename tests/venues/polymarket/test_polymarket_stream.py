"""The live stream (the generic pump around :class:`PolymarketFeed`) against the simulator
over real sockets: each known trap of the venue has a test here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from venuefeed.book import SyncState
from venuefeed.models import BookDelta, BookSnapshot, BookState, DataGap, Event, Market
from venuefeed.sim.base import Faults
from venuefeed.venues.polymarket import Simulator
from venuefeed.venues.polymarket.feed import PolymarketFeed
from venuefeed.venues.polymarket.protocol import MarketChannel
from venuefeed.venues.pump import FeedStream

from .helpers import make_adapter


class Collector:
    """Runs a stream's iterator in the background and keeps what it yields."""

    def __init__(self, stream: FeedStream) -> None:
        self.stream = stream
        self.events: list[Event] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.stream:
            self.events.append(event)

    async def until(self, predicate: Callable[[], bool], limit: float = 5.0) -> None:
        """Wait for ``predicate``; it may watch state outside the stream, so it is polled."""
        async with asyncio.timeout(limit):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.stream.close()
        await asyncio.wait_for(self.task, 5)

    def of(self, kind: type[Any], token: str | None = None) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and token in (None, e.instrument)]


def test_channel_protocol_asks_for_the_dump_and_pings_only_after_subscribe() -> None:
    channel = MarketChannel("ws://x/ws/market")
    assert channel.on_open() == ()  # nothing, in particular no PING, before the subscribe
    assert channel.app_ping == "PING" and channel.max_subscriptions == 200
    (initial,) = channel.subscribe(["1", "2"], True)
    assert json.loads(initial) == {
        "assets_ids": ["1", "2"], "type": "market", "initial_dump": True,
        "custom_feature_enabled": True,
    }  # fmt: skip
    (later,) = channel.subscribe(["3"], False)
    assert json.loads(later)["operation"] == "subscribe" and json.loads(later)["initial_dump"]
    assert json.loads(channel.unsubscribe(["3"])[0]) == {
        "assets_ids": ["3"],
        "operation": "unsubscribe",
    }
    assert channel.is_heartbeat_reply("PONG") and not channel.is_heartbeat_reply('{"a":1}')


async def test_the_venue_closes_with_1008_on_a_ping_before_subscribe() -> None:
    async with (
        Simulator(seed=2, markets=1) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(sim.urls()["ws"]) as ws,
    ):
        await ws.send_str("PING")
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1008


async def test_sharding_initial_dump_and_heartbeat() -> None:
    async with Simulator(seed=21, markets=230, events_per_second=100) as sim:
        assert isinstance(sim, Simulator)
        tokens = sim.tokens(open_only=False)
        async with make_adapter(sim, ping_interval_seconds=0.1) as adapter:
            stream = adapter.open_stream()
            got = Collector(stream)
            await stream.subscribe(tokens)
            await got.until(
                lambda: len({e.instrument for e in got.of(BookSnapshot)}) == len(tokens)
            )
            await asyncio.sleep(0.4)  # several heartbeats
            await got.close()
        subscribes = [e for e in sim.truth.events if e["kind"] == "subscribe"]
        assert len(tokens) == 460
        assert [e["kind"] for e in sim.truth.events].count("ws_open") == 3
        assert all(e["total"] <= 200 and e["initial_dump"] for e in subscribes)
        kinds = {e["kind"] for e in sim.truth.events}
        assert "asset_cap_exceeded" not in kinds and "ping_before_subscribe" not in kinds
        assert "ws_cut" not in kinds and "ws_close" not in [e["kind"] for e in sim.truth.events[:5]]
        # Every book started from a snapshot: no delta precedes a token's first snapshot.
        first: dict[str, type[Any]] = {}
        for event in got.events:
            if isinstance(event, BookSnapshot | BookDelta):
                first.setdefault(event.instrument, type(event))
        assert set(first.values()) == {BookSnapshot}


def feed_of(stream: FeedStream) -> PolymarketFeed:
    assert isinstance(stream.feed, PolymarketFeed)
    return stream.feed


def now_ms() -> str:
    """The venue time of a hand-made frame received now."""
    return str(time.time_ns() // 1_000_000)


async def test_tick_size_change_drops_the_book_until_a_fresh_snapshot() -> None:
    async with Simulator(seed=22, markets=2, events_per_second=0.001) as sim:
        assert isinstance(sim, Simulator)
        token = sim.tokens()[0]
        async with make_adapter(sim, audit_interval_seconds=60) as adapter:
            stream = adapter.open_stream()
            got = Collector(stream)
            await stream.subscribe([token])
            await got.until(lambda: bool(got.of(BookSnapshot, token)))
            requests_before = sim.requests.get("books", 0)
            await sim.change_tick_size(token)
            await got.until(
                lambda: any(s.reason == "tick_size_change" for s in got.of(BookState, token))
            )
            await got.until(lambda: len(got.of(BookSnapshot, token)) == 2)
            await got.close()
        assert sim.requests["books"] == requests_before + 1
        assert feed_of(stream).books.get(token).state is SyncState.LIVE


async def test_inconsistency_resyncs_only_that_token() -> None:
    async with Simulator(seed=23, markets=2, events_per_second=0.001) as sim:
        assert isinstance(sim, Simulator)
        a, b = sim.tokens()[:2]
        async with make_adapter(sim, audit_interval_seconds=60) as adapter:
            stream = adapter.open_stream()
            got = Collector(stream)
            await stream.subscribe([a, b])
            await got.until(lambda: bool(got.of(BookSnapshot, a)) and bool(got.of(BookSnapshot, b)))
            before = sim.requests.get("books", 0)
            # Remove a level the book does not hold: unknown_level_removed.
            await sim.send_raw(a, json.dumps({
                "event_type": "price_change", "market": "0xm", "timestamp": now_ms(),
                "price_changes": [{"asset_id": a, "price": "0.999", "size": "0", "side": "SELL"}],
            }))  # fmt: skip
            await got.until(lambda: len(got.of(BookSnapshot, a)) == 2)
            # A change whose venue top disagrees with ours (the venue's best bid is 0.01).
            await sim.send_raw(b, json.dumps({
                "event_type": "price_change", "market": "0xm", "timestamp": now_ms(),
                "price_changes": [{"asset_id": b, "price": "0.02", "size": "5", "side": "BUY",
                                   "best_bid": "0.01", "best_ask": "0.99"}],
            }))  # fmt: skip
            await got.until(lambda: len(got.of(BookSnapshot, b)) == 2)
            await got.close()
        reasons = [(s.instrument, s.reason) for s in got.of(BookState) if s.state == "resyncing"]
        assert reasons == [(a, "unknown_level_removed"), (b, "top_of_book_mismatch")]
        # The refused change was never published.
        assert not [d for d in got.of(BookDelta, b) if any(lv.price == "0.02" for lv in d.bids)]
        assert sim.requests["books"] == before + 2
        assert len(got.of(BookSnapshot, a)) == len(got.of(BookSnapshot, b)) == 2
        assert feed_of(stream).resyncs == 2


async def test_a_stalled_subscription_is_renewed_by_the_liveness_resync() -> None:
    async with Simulator(seed=27, markets=2, events_per_second=0.001) as sim:
        assert isinstance(sim, Simulator)
        a, b = sim.tokens()[:2]
        # Heartbeats keep the quiet socket from the idle timeout: no reconnect re-dumps b.
        quick = {"audit_interval_seconds": 60, "ping_interval_seconds": 0.3}
        async with make_adapter(sim, **quick) as adapter:
            stream = adapter.open_stream()
            got = Collector(stream)
            await stream.subscribe([a, b])
            await got.until(lambda: bool(got.of(BookSnapshot, a)) and bool(got.of(BookSnapshot, b)))
            await sim.stall(a)  # the socket stays up; a's changes stop arriving
            book = sim.books[a]
            deep = min(book.bids) - 1
            await sim.set_level(a, True, deep, 777)
            await asyncio.sleep(0.2)
            assert not got.of(BookDelta, a)  # silent, and our book is now wrong
            await stream.resync(a)  # what the service's liveness check does
            # The renewed subscription's dump or the REST book, whichever comes first.
            await got.until(lambda: len(got.of(BookSnapshot, a)) == 2)
            await sim.set_level(a, True, deep, 888)  # the renewed subscription delivers again
            await got.until(lambda: bool(got.of(BookDelta, a)))
            await got.close()
        bids, _asks = sim.final_books()[a]
        assert [(x.price, x.size) for x in feed_of(stream).books.get(a).bids()] == bids
        assert len(got.of(BookSnapshot, b)) == 1  # the other token was left alone
        assert sim.requests["books"] == 1  # REST was asked too, in case the renewal stays silent
        assert [e["assets"] for e in sim.truth.events if e["kind"] == "subscribe"] == [2, 1]
        (state,) = [s for s in got.of(BookState, a) if s.state == "resyncing"]
        assert state.reason == "checksum_mismatch"


async def test_live_book_audit_heals_a_lost_update() -> None:
    async with Simulator(seed=24, markets=2, events_per_second=0.001) as sim:
        assert isinstance(sim, Simulator)
        token = sim.tokens()[0]
        async with make_adapter(sim, audit_interval_seconds=0.1) as adapter:
            stream = adapter.open_stream()
            got = Collector(stream)
            await stream.subscribe([token])
            await got.until(lambda: bool(got.of(BookSnapshot, token)))
            book = sim.books[token]
            deep = max(book.bids) - 1 if max(book.bids) - 1 not in book.bids else min(book.bids) - 1
            await sim.set_level(token, True, deep, 12_345, send=False)
            await got.until(lambda: bool(got.of(DataGap, token)), limit=5)
            await got.close()
        (gap,) = got.of(DataGap, token)
        assert gap.cause == "checksum_mismatch" and gap.healed
        bids, _asks = sim.final_books()[token]
        assert [(x.price, x.size) for x in feed_of(stream).books.get(token).bids()] == bids
        assert feed_of(stream).audit_mismatches == 1


async def test_unknown_markets_are_loaded_on_demand_in_one_batch() -> None:
    async with Simulator(seed=25, markets=5, events_per_second=50) as sim:
        assert isinstance(sim, Simulator)
        tokens = sim.tokens()[:6]
        learned: list[Market] = []
        async with make_adapter(sim) as adapter:
            stream = adapter.open_stream()
            stream.on_market = learned.append
            got = Collector(stream)
            await stream.subscribe(tokens)
            await got.until(lambda: len(learned) == 3)
            await asyncio.sleep(0.2)
            await got.close()
        assert sim.requests["gamma_markets_keyset"] == 1  # one batched look-up
        assert "gamma_markets" not in sim.requests  # the keyset list answered it
        assert set(tokens) <= set(feed_of(stream).markets)
        assert {m.market_id for m in learned} == {sim.market_of[t].condition_id for t in tokens}


@pytest.mark.parametrize("fault", ["malformed", "disconnect"])
async def test_bad_frames_and_drops_never_end_the_session(fault: str) -> None:
    faults = (
        Faults(malformed_rate=0.2) if fault == "malformed" else Faults(disconnect_every_seconds=0.3)
    )
    async with Simulator(seed=26, markets=3, events_per_second=300, faults=faults) as sim:
        assert isinstance(sim, Simulator)
        async with make_adapter(sim) as adapter:
            stream = adapter.open_stream()
            got = Collector(stream)
            await stream.subscribe(sim.tokens())
            await asyncio.sleep(1.0)
            await got.until(lambda: len(got.of(BookDelta)) > 50)
            await got.close()
        if fault == "malformed":
            counts = stream.feed.rejects.counts
            assert counts.get("unknown_event_type", 0) > 0 and counts.get("malformed_json", 0) > 0
        else:
            gaps = got.of(DataGap)
            assert gaps and all(g.cause == "disconnect" and g.start < g.end for g in gaps)
            assert stream.stats()["reconnects"] == stream.session.reconnects >= 2
