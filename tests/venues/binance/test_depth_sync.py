"""The diff-depth procedure, step by step, on hand-made events."""

from __future__ import annotations

from collections.abc import Sequence

from venuefeed.models import BookDelta, BookLevel, BookSnapshot, BookState, DataGap
from venuefeed.venues.binance.depth_sync import DepthSync, Phase


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
