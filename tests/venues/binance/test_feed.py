"""The Binance feed, sans-IO: the diff-depth procedure step by step, then whole frames in."""

from __future__ import annotations

import json
from collections.abc import Sequence

from venuefeed.models import BookDelta, BookLevel, BookSnapshot, BookState, DataGap, Trade
from venuefeed.transport import Frame
from venuefeed.venues.binance import Options
from venuefeed.venues.binance.feed import DEPTH, BinanceFeed, DepthFetched, DepthSync, Phase
from venuefeed.venues.feed import Fetch, Output


def delta(
    first: int,
    last: int,
    bids: Sequence[tuple[str, str]] = (),
    asks: Sequence[tuple[str, str]] = (),
) -> BookDelta:
    return BookDelta(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=0,
        ts_recv=last,
        bids=[BookLevel(p, s) for p, s in bids],
        asks=[BookLevel(p, s) for p, s in asks],
        sequence=last,
        first_sequence=first,
    )


def snapshot(last_update_id: int) -> BookSnapshot:
    return BookSnapshot(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=0,
        ts_recv=1000 + last_update_id,
        bids=[BookLevel("100", "1"), BookLevel("99", "2")],
        asks=[BookLevel("101", "1")],
        sequence=last_update_id,
    )


def test_buffer_then_snapshot_bridges() -> None:
    sync = DepthSync("BTCUSDT")
    assert sync.on_delta(delta(10, 12, bids=[("100", "5")])) == []
    assert sync.wants_snapshot
    sync.snapshot_started()
    assert not sync.wants_snapshot
    assert sync.on_delta(delta(13, 15, asks=[("101", "0"), ("102", "3")])) == []
    events = sync.on_snapshot(snapshot(12))  # covers the first event; the second bridges
    assert sync.phase is Phase.LIVE
    assert isinstance(events[0], BookSnapshot) and events[0].sequence == 15
    assert events[0].asks == [BookLevel("102", "3")]
    assert events[0].bids == [BookLevel("100", "1"), BookLevel("99", "2")]
    assert isinstance(events[1], BookState) and events[1].state == "live"
    assert len(events) == 2  # first sync: no gap to report
    live = delta(16, 16, bids=[("98", "1")])
    assert sync.on_delta(live) == [live]
    assert sync.on_delta(delta(14, 16)) == []  # already covered: ignored, not emitted


def test_snapshot_older_than_buffer_is_fetched_again() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_delta(delta(50, 52))
    sync.snapshot_started()
    assert sync.on_snapshot(snapshot(40)) == []
    assert sync.wants_snapshot and sync.phase is Phase.BUFFERING
    sync.snapshot_started()
    events = sync.on_snapshot(snapshot(51))
    assert sync.phase is Phase.LIVE and sync.book.sequence == 52
    assert isinstance(events[0], BookSnapshot)


def test_snapshot_that_does_not_bridge_the_buffer_resyncs() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_delta(delta(50, 52))
    sync.on_delta(delta(60, 61))  # a hole between 52 and 60 while buffering
    sync.snapshot_started()
    [state] = sync.on_snapshot(snapshot(55))
    assert isinstance(state, BookState) and state.reason == "sequence_gap"
    assert sync.wants_snapshot and sync.phase is Phase.BUFFERING


def test_gap_discards_and_resyncs_with_a_data_gap() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_delta(delta(1, 1))
    sync.snapshot_started()
    sync.on_snapshot(snapshot(1))
    sync.on_delta(delta(2, 3))
    opened, state = sync.on_delta(delta(5, 6))  # 4 is missing
    assert isinstance(opened, DataGap) and not opened.healed and opened.end == 0
    assert isinstance(state, BookState)
    assert (state.state, state.reason) == ("resyncing", "sequence_gap")
    assert sync.phase is Phase.BUFFERING and sync.wants_snapshot
    sync.snapshot_started()
    sync.on_delta(delta(7, 7))
    events = sync.on_snapshot(snapshot(6))
    assert sync.book.sequence == 7
    gap = events[-1]
    # The same ledger entry, now healed: one incident, opened then closed.
    assert isinstance(gap, DataGap) and gap.healed
    assert (gap.cause, gap.start, gap.end) == ("sequence_gap", 3, 1006)
    assert (gap.instrument, gap.start) == (opened.instrument, opened.start)


def test_reconnect_keeps_the_book_when_the_stream_still_follows() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_delta(delta(1, 1))
    sync.snapshot_started()
    sync.on_snapshot(snapshot(1))
    sync.on_reconnect()
    assert sync.on_delta(delta(1, 1)) == []  # replayed
    follow = delta(2, 4, bids=[("100", "0")])
    assert sync.on_delta(follow) == [follow]
    assert sync.phase is Phase.LIVE and not sync.wants_snapshot


def test_reconnect_with_lost_updates_resyncs_but_keeps_old_levels_until_snapshot() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_delta(delta(1, 1))
    sync.snapshot_started()
    sync.on_snapshot(snapshot(1))
    sync.on_reconnect()
    opened, state = sync.on_delta(delta(9, 9))
    assert isinstance(opened, DataGap) and opened.cause == "sequence_gap"
    assert isinstance(state, BookState) and state.state == "resyncing"
    assert sync.book.bids() == [BookLevel("100", "1"), BookLevel("99", "2")]
    sync.snapshot_started()
    sync.on_snapshot(snapshot(9))
    assert sync.phase is Phase.LIVE


def test_removing_an_unknown_level_is_normal() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_delta(delta(1, 1))
    sync.snapshot_started()
    sync.on_snapshot(snapshot(1))
    removal = delta(2, 2, bids=[("50", "0")])
    assert sync.on_delta(removal) == [removal]
    assert sync.phase is Phase.LIVE


def test_crossed_book_resyncs() -> None:
    sync = DepthSync("BTCUSDT")
    sync.on_delta(delta(1, 1))
    sync.snapshot_started()
    sync.on_snapshot(snapshot(1))
    opened, state = sync.on_delta(delta(2, 2, bids=[("102", "1")]))
    assert isinstance(opened, DataGap) and opened.cause == "crossed_book"
    assert isinstance(state, BookState) and state.reason == "crossed_book"
    assert sync.wants_snapshot


# -- the whole feed: frames in, events and snapshot fetches out ----------------------------

E_MS = 1_700_000_000_000
RECV = (E_MS + 20) * 1_000_000


def depth_frame(first: int, last: int, bids: Sequence[tuple[str, str]] = ()) -> Frame:
    data = {"e": "depthUpdate", "E": E_MS, "s": "BTCUSDT", "U": first, "u": last,
            "b": [list(level) for level in bids], "a": []}  # fmt: skip
    body = json.dumps({"stream": "btcusdt@depth@100ms", "data": data})
    return Frame(body, RECV + last, 0)


def trade_frame(symbol: str, trade_id: int) -> Frame:
    data = {"e": "trade", "E": E_MS, "s": symbol, "t": trade_id, "p": "100.5", "q": "0.1",
            "T": E_MS, "m": False}  # fmt: skip
    return Frame(json.dumps({"stream": f"{symbol.lower()}@trade", "data": data}), RECV, 0)


def new_feed() -> BinanceFeed:
    feed = BinanceFeed(frozenset({"books", "trades"}), Options())
    assert feed.canonical("btcusdt") == "BTCUSDT"
    assert feed.subscriptions(["BTCUSDT"]) == ["btcusdt@depth@100ms", "btcusdt@trade"]
    assert feed.instruments(["btcusdt@depth@100ms", "btcusdt@trade"]) == ["BTCUSDT"]
    feed.on_subscribed(["BTCUSDT"])
    return feed


def test_a_gap_in_frames_is_a_fetch_then_a_healed_gap() -> None:
    feed = new_feed()
    out = feed.on_frames([depth_frame(1, 1), depth_frame(2, 2), trade_frame("ETHUSDT", 7)])
    # Buffered until the snapshot; one fetch however many updates wait; ETH is not subscribed.
    assert out == Output([], [Fetch(DEPTH, ("BTCUSDT",))])
    out = feed.on_fetched(DEPTH, [DepthFetched("BTCUSDT", snapshot(1))], RECV)
    assert [type(e) for e in out.events] == [BookSnapshot, BookState] and not out.commands
    assert out.events[0].sequence == 2  # type: ignore[union-attr]

    out = feed.on_frames([trade_frame("BTCUSDT", 8), depth_frame(5, 6, bids=[("99", "0")])])
    trade, opened, state = out.events
    assert isinstance(trade, Trade) and trade.trade_id == "8"
    assert isinstance(opened, DataGap) and (opened.cause, opened.healed) == ("sequence_gap", False)
    assert isinstance(state, BookState) and state.state == "resyncing"
    assert out.commands == [Fetch(DEPTH, ("BTCUSDT",))]

    out = feed.on_fetched(DEPTH, [DepthFetched("BTCUSDT", snapshot(5))], RECV + 10)
    healed = out.events[-1]
    assert isinstance(healed, DataGap) and healed.healed and healed.start == opened.start
    book = feed.book("BTCUSDT")
    assert book is not None and book.sequence == 6 and book.bids() == [BookLevel("100", "1")]


def test_a_failed_snapshot_is_asked_again_by_the_next_update() -> None:
    feed = new_feed()
    assert feed.on_frames([depth_frame(1, 1)]).commands == [Fetch(DEPTH, ("BTCUSDT",))]
    out = feed.on_fetched(DEPTH, [DepthFetched("BTCUSDT", None)], RECV)
    [state] = out.events
    assert isinstance(state, BookState) and state.reason == "snapshot_failed"
    assert feed.on_frames([depth_frame(2, 2)]).commands == [Fetch(DEPTH, ("BTCUSDT",))]


def test_a_requested_resync_opens_a_gap_and_fetches_and_unsubscribe_forgets() -> None:
    feed = new_feed()
    feed.on_frames([depth_frame(1, 1)])
    feed.on_fetched(DEPTH, [DepthFetched("BTCUSDT", snapshot(1))], RECV)
    out = feed.resync("BTCUSDT", RECV + 5)
    assert [type(e) for e in out.events] == [DataGap, BookState]
    assert out.commands == [Fetch(DEPTH, ("BTCUSDT",))]
    feed.on_unsubscribed(["BTCUSDT"])
    assert feed.book("BTCUSDT") is None
    # A snapshot landing after the unsubscribe changes nothing.
    assert feed.on_fetched(DEPTH, [DepthFetched("BTCUSDT", snapshot(1))], RECV) == Output([], [])
    assert feed.on_frames([depth_frame(2, 2), trade_frame("BTCUSDT", 9)]) == Output([], [])
