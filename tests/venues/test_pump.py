"""The generic pump against a real WebSocket server: batches, gaps, commands, timers.

The feed here is a small venue of its own (JSON frames ``{"i": instrument,
"n": number}`` become trades); everything else -- the session, the server,
the reconnects -- is the real thing every venue runs on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from tests.transport.conftest import EchoProtocol, WsVenue, eventually
from venuefeed.models import BookSnapshot, DataGap, Event, Trade
from venuefeed.transport import Frame, WsPolicy
from venuefeed.venues.feed import Fetch, Output, Send, VenueFeed
from venuefeed.venues.pump import FeedStream
from venuefeed.venues.rejects import Rejects

POLICY = WsPolicy(
    idle_timeout=2.0, backoff_base=0.02, backoff_cap=0.2, jitter=False,
    protocol_ping_interval=None, close_timeout=0.2,
)  # fmt: skip


class TapeFeed(VenueFeed):
    venue = "tape"
    timer_interval = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.rejects = Rejects(self.venue)
        self.batches: list[int] = []
        self.reconnected: list[int] = []
        self.ticks = 0
        self.failed: list[tuple[str, tuple[str, ...]]] = []
        self.explode = False

    def on_subscribed(self, instruments: Sequence[str]) -> Output:
        return Output([], [Fetch("snapshot", tuple(instruments))])

    def on_frames(self, frames: Sequence[Frame]) -> Output:
        if self.explode:
            raise RuntimeError("a bug in the feed")
        self.batches.append(len(frames))
        events: list[Event] = []
        commands: list[Send | Fetch] = []
        for frame in frames:
            msg = json.loads(frame.data)
            if "i" not in msg:
                continue  # acks and auth replies
            events.append(Trade(venue=self.venue, instrument=msg["i"], ts_venue=frame.ts_recv,
                                ts_recv=frame.ts_recv, trade_id=str(msg["n"]), price="1",
                                size="1"))  # fmt: skip
            if msg["n"] == 3:
                commands.append(Send(frame.conn, json.dumps({"op": "echo", "n": 3})))
        return Output(events, commands)

    def on_reconnected(self, conn: int, ts_recv: int) -> Output:
        self.reconnected.append(conn)
        return Output([], [])

    def on_fetched(self, what: str, results: Sequence[Any], ts_recv: int) -> Output:
        snaps: list[Event] = [
            BookSnapshot(
                venue=self.venue, instrument=r, ts_venue=ts_recv, ts_recv=ts_recv, bids=[], asks=[]
            )
            for r in results
        ]
        return Output(snaps, [])

    def on_fetch_failed(self, what: str, keys: Sequence[str], error: str) -> Output:
        self.failed.append((what, tuple(keys)))
        return Output([], [])

    def on_timer(self, now: int) -> Output:
        self.ticks += 1
        return Output([], [])


class Fetcher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.fail = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, what: str, keys: Sequence[str]) -> list[str]:
        self.calls.append((what, tuple(keys)))
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("REST is down")
        return list(keys)


@pytest.fixture
async def ws_venue() -> AsyncIterator[WsVenue]:
    venue = WsVenue()
    await venue.start()
    yield venue
    await venue.stop()


async def collect(stream: FeedStream, until: Any, within: float = 5.0) -> list[Event]:
    got: list[Event] = []

    async def run() -> None:
        async for batch in stream.batches():
            got.extend(batch)
            if until(got):
                return

    await asyncio.wait_for(run(), within)
    return got


async def send_tape(conn: Any, instrument: str, numbers: range) -> None:
    for n in numbers:
        await conn.ws.send_str(json.dumps({"i": instrument, "n": n}))


async def test_frames_come_out_as_batches_of_events_in_order(ws_venue: WsVenue) -> None:
    async def burst(conn: Any) -> None:
        await send_tape(conn, "a", range(200))

    ws_venue.on_subscribed = burst
    feed, fetch = TapeFeed(), Fetcher()
    stream = FeedStream(feed, EchoProtocol(ws_venue.url), POLICY, fetch=fetch)
    await stream.subscribe(["a"])
    try:
        got = await collect(stream, lambda ev: sum(isinstance(e, Trade) for e in ev) == 200)
    finally:
        await stream.close()
    trades = [e for e in got if isinstance(e, Trade)]
    assert [t.trade_id for t in trades] == [str(n) for n in range(200)]
    assert max(feed.batches) > 1  # a burst is handed over as one list, not frame by frame
    assert stream.stats()["frames"] >= 200
    # The Send the feed asked for went out on the connection the frame came on.
    await eventually(lambda: {"op": "echo", "n": 3} in map(_json, ws_venue.conns[0].frames))
    # The subscribe asked for a snapshot: fetched, and fed back in order.
    assert fetch.calls == [("snapshot", ("a",))]
    assert any(isinstance(e, BookSnapshot) and e.instrument == "a" for e in got)


async def test_a_replaced_connection_is_one_gap_reported_before_anything_sees_it(
    ws_venue: WsVenue,
) -> None:
    async def first_then_drop(conn: Any) -> None:
        await send_tape(conn, "a", range(conn.index * 10, conn.index * 10 + 5))
        if conn.index == 0:
            await conn.ws.close(code=1001)

    ws_venue.on_subscribed = first_then_drop
    feed = TapeFeed()
    stream = FeedStream(feed, EchoProtocol(ws_venue.url), POLICY, fetch=Fetcher())
    told: list[DataGap] = []
    stream.on_gap = told.append
    await stream.subscribe(["a", "b"])
    try:
        got = await collect(stream, lambda ev: any(isinstance(e, Trade) and e.trade_id == "14"
                                                   for e in ev))  # fmt: skip
    finally:
        await stream.close()
    gaps = [e for e in got if isinstance(e, DataGap)]
    assert len(gaps) == 1 and told == gaps
    [gap] = gaps
    assert (gap.instrument, gap.instruments, gap.cause) == ("conn:0", ("a", "b"), "disconnect")
    last_before = max(e.ts_recv for e in got if isinstance(e, Trade) and int(e.trade_id) < 5)
    assert gap.start == last_before  # the window starts at the last data frame
    assert feed.reconnected == [0]
    assert stream.reconnects == 1


async def test_fetches_are_coalesced_and_failures_go_back_to_the_feed(ws_venue: WsVenue) -> None:
    feed, fetch = TapeFeed(), Fetcher()
    fetch.gate.clear()  # hold the first request so the others pile up
    stream = FeedStream(feed, EchoProtocol(ws_venue.url), POLICY, fetch=fetch, fetch_batch=10)
    await stream.subscribe(["a"])
    await eventually(lambda: fetch.calls == [("snapshot", ("a",))])  # in flight, held
    await stream.subscribe(["b", "c"])
    await stream.subscribe(["c", "d"])  # "c" is already subscribed: only "d" is new
    fetch.gate.set()
    try:
        got = await collect(stream, lambda ev: sum(isinstance(e, BookSnapshot) for e in ev) == 4)
        assert fetch.calls == [("snapshot", ("a",)), ("snapshot", ("b", "c", "d"))]
        fetch.fail = True
        consumer = asyncio.create_task(collect(stream, lambda ev: False, within=30))
        await stream.subscribe(["e"])
        await eventually(lambda: feed.failed == [("snapshot", ("e",))])
        await eventually(lambda: feed.ticks > 0)  # the timer runs on the pump's task too
        consumer.cancel()
    finally:
        await stream.close()
    assert {e.instrument for e in got if isinstance(e, BookSnapshot)} == {"a", "b", "c", "d"}


async def test_a_feed_that_raises_ends_the_stream_for_the_supervisor(ws_venue: WsVenue) -> None:
    async def tape(conn: Any) -> None:
        await send_tape(conn, "a", range(5))

    ws_venue.on_subscribed = tape
    feed = TapeFeed()
    feed.explode = True
    stream = FeedStream(feed, EchoProtocol(ws_venue.url), POLICY, fetch=Fetcher())
    await stream.subscribe(["a"])
    try:
        with pytest.raises(RuntimeError, match="a bug in the feed"):
            await collect(stream, lambda ev: False)
    finally:
        await stream.close()


async def test_a_companion_is_subscribed_with_the_stream_and_its_failure_ends_it(
    ws_venue: WsVenue,
) -> None:
    async def tape(conn: Any) -> None:
        await send_tape(conn, "a", range(5))

    ws_venue.on_subscribed = tape
    other = TapeFeed()
    companion = FeedStream(other, EchoProtocol(ws_venue.url), POLICY, fetch=Fetcher())
    stream = FeedStream(TapeFeed(), EchoProtocol(ws_venue.url), POLICY, fetch=Fetcher(),
                        companions=[companion])  # fmt: skip
    await stream.subscribe(["a"])
    try:
        # Two sockets (the stream's and its companion's), each heard the tape once.
        got = await collect(stream, lambda ev: sum(isinstance(e, Trade) for e in ev) == 10)
        assert len(ws_venue.conns) == 2
        assert stream.stats()["companions"][0]["frames"] == other.counters.frames >= 5
        other.explode = True
        for conn in ws_venue.conns:  # whichever socket is the companion's
            await conn.ws.send_str(json.dumps({"i": "a", "n": 99}))
        with pytest.raises(RuntimeError, match="a bug in the feed"):
            await collect(stream, lambda ev: False)
    finally:
        await stream.close()
    assert sorted(int(e.trade_id) for e in got if isinstance(e, Trade)) == sorted([*range(5)] * 2)
    assert companion.session.state != "connected"  # closed with the stream


def _json(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
