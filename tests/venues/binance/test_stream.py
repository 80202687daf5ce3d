"""The live stream (the generic pump and the Binance feed) against the simulator: books stay
equal to the venue's through gaps and cuts, and the counters status reads are real."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from venuefeed import exact, metrics
from venuefeed.book import OrderBook
from venuefeed.models import BookDelta, BookSnapshot, BookState, DataGap, Event, TopOfBook, Trade
from venuefeed.sim.base import Faults
from venuefeed.venues.base import VenueStream
from venuefeed.venues.binance import Simulator
from venuefeed.venues.pump import FeedStream

from .conftest import make_adapter

SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def _eventually(check: Callable[[], bool]) -> None:
    """Poll a condition on state the test cannot subscribe to (books, sockets)."""
    async with asyncio.timeout(5.0):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def _run(
    sim: Simulator, stream: VenueStream, seconds: float, during: Callable[[], Awaitable[None]]
) -> list[Event]:
    events: list[Event] = []

    async def consume() -> None:
        events.extend([event async for event in stream])

    task = asyncio.create_task(consume())
    await stream.subscribe(SYMBOLS)
    await asyncio.sleep(seconds)
    await during()
    await stream.close()
    await task
    return events


def _sim_levels(levels: list[list[str]]) -> list[tuple[str, str]]:
    return [(exact.canon(p), exact.canon(q)) for p, q in levels]


def _book_levels(book: OrderBook) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return (
        [(lv.price, lv.size) for lv in book.bids()],
        [(lv.price, lv.size) for lv in book.asks()],
    )


async def _caught_up(sim: Simulator, stream: FeedStream) -> None:
    """Freeze the venue and wait until every local book has reached its update id."""
    sim.pause()

    def done() -> bool:
        for symbol in SYMBOLS:
            book = stream.book(symbol)
            if book is None or book.sequence != sim.book(symbol)[0]:
                return False
            if book.state.value != "live":
                return False
        return True

    await _eventually(done)


def _replay(events: list[Event], symbol: str) -> OrderBook:
    """Apply the emitted book events in order: a gap-free stream never fails."""
    book = OrderBook("binance", symbol, tolerate_unknown_removals=True)
    for event in events:
        if event.instrument != symbol:
            continue
        if isinstance(event, BookSnapshot):
            assert book.load_snapshot(event) is None
        elif isinstance(event, BookDelta):
            assert book.apply_delta(event) is None, "an undetected gap reached the consumer"
    return book


async def test_books_equal_the_venue_after_gaps_and_stale_snapshots() -> None:
    faults = Faults(
        skip_update_rate=0.04, stale_snapshot_rate=0.4, duplicate_rate=0.05, malformed_rate=0.02
    )
    sim = Simulator(seed=5, faults=faults, events_per_second=100)
    await sim.start()
    adapter = make_adapter(sim)
    gaps_before = metrics.BOOK_INCONSISTENCIES.labels("binance", "sequence_gap")._value.get()
    stale_before = metrics.BOOK_INCONSISTENCIES.labels("binance", "stale_snapshot")._value.get()
    rejected_before = metrics.REJECTED_FRAMES.labels("binance", "malformed")._value.get()
    stream = adapter.open_stream(frozenset({"books"}))
    assert isinstance(stream, FeedStream)
    try:

        async def compare() -> None:
            await _caught_up(sim, stream)
            for symbol in SYMBOLS:
                _, bids, asks = sim.book(symbol)
                expected = (_sim_levels(bids), _sim_levels(asks))
                assert _book_levels(stream.book(symbol)) == expected  # type: ignore[arg-type]

        events = await _run(sim, stream, 2.5, compare)
    finally:
        await adapter.close()
        await sim.stop()

    skipped = [e for e in sim.truth.events if e["kind"] == "sequence_skip"]
    resyncs = [e for e in events if isinstance(e, BookState) and e.reason == "sequence_gap"]
    gap_events = [e for e in events if isinstance(e, DataGap) and e.cause == "sequence_gap"]
    assert skipped and resyncs and gap_events
    # A skip while already resyncing is covered by the same snapshot, so never more
    # detections than skips; and every symbol that lost an update noticed it.
    assert len(resyncs) <= len(skipped)
    assert {e.instrument for e in resyncs} == {e["instrument"] for e in skipped}
    gaps = metrics.BOOK_INCONSISTENCIES.labels("binance", "sequence_gap")._value.get()
    assert gaps - gaps_before == len(resyncs)
    stale = metrics.BOOK_INCONSISTENCIES.labels("binance", "stale_snapshot")._value.get()
    assert stale > stale_before
    rejected = metrics.REJECTED_FRAMES.labels("binance", "malformed")._value.get()
    assert rejected > rejected_before
    for symbol in SYMBOLS:
        update_id = sim.book(symbol)[0]
        bids, asks = next(
            (e["bids"], e["asks"])
            for e in sim.truth.events
            if e["kind"] == "final_book" and e["instrument"] == symbol
        )
        replayed = _replay(events, symbol)
        assert replayed.sequence == update_id
        assert _book_levels(replayed) == (_sim_levels(bids), _sim_levels(asks))


async def test_disconnects_keep_books_and_report_the_window() -> None:
    sim = Simulator(seed=9, faults=Faults(disconnect_every_seconds=0.6), events_per_second=50)
    await sim.start()
    adapter = make_adapter(sim)
    stream = adapter.open_stream(frozenset({"books", "trades"}))
    assert isinstance(stream, FeedStream)
    try:

        async def compare() -> None:
            await _caught_up(sim, stream)
            for symbol in SYMBOLS:
                _, bids, asks = sim.book(symbol)
                expected = (_sim_levels(bids), _sim_levels(asks))
                assert _book_levels(stream.book(symbol)) == expected  # type: ignore[arg-type]

        events = await _run(sim, stream, 2.0, compare)
    finally:
        await adapter.close()
        await sim.stop()
    assert sim.truth.count("ws_cut") >= 2
    cuts = [e for e in events if isinstance(e, DataGap) and e.cause == "disconnect"]
    # One gap per replaced connection, listing every symbol it carried.
    assert {e.instrument for e in cuts} == {"conn:0"}
    assert all(set(e.instruments) == set(SYMBOLS) for e in cuts)
    assert all(0 < e.start <= e.end for e in cuts)
    # Status reads the session's own count: every gap is one reconnect (a last one may
    # have come as the stream closed, before its gap was read).
    assert 1 <= len(cuts) <= stream.reconnects == stream.stats()["reconnects"]
    for symbol in SYMBOLS:
        assert _replay(events, symbol).sequence == sim.book(symbol)[0]


async def test_requested_resync_takes_a_fresh_snapshot(sim: Simulator) -> None:
    adapter = make_adapter(sim)
    stream = adapter.open_stream(frozenset({"books"}))

    async def resync() -> None:
        await _eventually(lambda: all(stream.book(s) is not None for s in SYMBOLS))
        await _eventually(lambda: stream.book("BTCUSDT").state.value == "live")  # type: ignore[union-attr]
        await stream.resync("BTCUSDT")
        await _eventually(lambda: stream.book("BTCUSDT").state.value == "live")  # type: ignore[union-attr]

    try:
        events = await _run(sim, stream, 0.3, resync)
    finally:
        await adapter.close()
    snaps = [e for e in events if isinstance(e, BookSnapshot) and e.instrument == "BTCUSDT"]
    states = [e.reason for e in events if isinstance(e, BookState) and e.instrument == "BTCUSDT"]
    assert len(snaps) == 2 and "resync_requested" in states
    assert _replay(events, "BTCUSDT").sequence is not None


async def test_trades_and_quotes_match_ground_truth(sim: Simulator) -> None:
    adapter = make_adapter(sim)
    stream = adapter.open_stream(frozenset({"trades", "quotes"}))
    try:
        events = await _run(sim, stream, 1.0, _noop)
    finally:
        await adapter.close()
    trades = [e for e in events if isinstance(e, Trade)]
    assert trades and any(isinstance(e, TopOfBook) for e in events)
    assert not any(isinstance(e, BookDelta | BookSnapshot) for e in events)
    sent = {(t["symbol"], str(t["trade_id"])): t for t in sim.truth.trades}
    assert len({(t.instrument, t.trade_id) for t in trades}) == len(trades)
    for trade in trades:
        truth = sent[(trade.instrument, trade.trade_id)]
        assert (trade.price, trade.size, trade.side) == (
            exact.canon(truth["price"]),
            exact.canon(truth["qty"]),
            truth["side"],
        )
    first = {s: min(int(t.trade_id) for t in trades if t.instrument == s) for s in SYMBOLS}
    last = {s: max(int(t.trade_id) for t in trades if t.instrument == s) for s in SYMBOLS}
    expected = {k for k in sent if first[k[0]] <= int(k[1]) <= last[k[0]]}
    assert {(t.instrument, t.trade_id) for t in trades} == expected  # none lost in between


async def test_runtime_subscribe_and_unsubscribe(sim: Simulator) -> None:
    adapter = make_adapter(sim, trade_stream="aggTrade")
    stream = adapter.open_stream(frozenset({"trades"}))
    seen: list[Event] = []

    async def consume() -> None:
        async for event in stream:
            seen.append(event)  # noqa: PERF401 -- the test watches it grow

    task = asyncio.create_task(consume())
    try:
        await stream.subscribe(["btcusdt"])
        await _eventually(lambda: any(e.instrument == "BTCUSDT" for e in seen))
        await stream.subscribe(["ETHUSDT"])
        await _eventually(lambda: any(e.instrument == "ETHUSDT" for e in seen))
        assert all(isinstance(e, Trade) and e.trade_id.startswith("a") for e in seen)
        streams = {s for sock in sim.sockets for s in sock.state.streams}
        assert streams == {"btcusdt@aggTrade", "ethusdt@aggTrade"}
        await stream.unsubscribe(["BTCUSDT"])
        await _eventually(
            lambda: {s for c in sim.sockets for s in c.state.streams} == {"ethusdt@aggTrade"}
        )
        assert stream.state == "connected"
    finally:
        await stream.close()
        await task
        await adapter.close()


async def _noop() -> None:
    return None
