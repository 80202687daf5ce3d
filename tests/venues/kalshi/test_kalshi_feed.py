"""The Kalshi feed fed bytes directly: what it publishes when the venue sends bad books."""

from __future__ import annotations

import json
from typing import Any

from venuefeed.book import SyncState
from venuefeed.models import BookSnapshot, BookState, DataGap, Event, TopOfBook
from venuefeed.transport import Frame
from venuefeed.venues.feed import Command, Output, Send
from venuefeed.venues.kalshi.feed import KalshiFeed

RECV = 1_787_155_203_000_000_000
TICKER = "KXHIGHNY-26AUG20-T90"


def feed_one(
    feed: KalshiFeed, data: str, ts_recv: int = RECV, conn: int = 0
) -> tuple[list[Event], list[Command]]:
    """One frame through the batch entry point, as the pump would hand it over: its
    events and commands (a Kalshi frame teaches no markets)."""
    out = feed.on_frames([Frame(data, ts_recv, conn)])
    assert not out.markets
    return out.events, out.commands


def feed_with_sid(sid: int = 7) -> KalshiFeed:
    feed = KalshiFeed({"books", "quotes"})
    feed.subscribe_frames([TICKER])
    for channel in ("orderbook_delta", "ticker"):
        ack = {"type": "subscribed", "id": 1, "msg": {"channel": channel, "sid": sid}}
        feed_one(feed, json.dumps(ack), RECV)
    return feed


def snapshot(seq: int, yes: list[list[str]], no: list[list[str]]) -> str:
    msg = {"market_ticker": TICKER, "yes_dollars_fp": yes, "no_dollars_fp": no}
    return json.dumps({"type": "orderbook_snapshot", "sid": 7, "seq": seq, "msg": msg})


def delta(seq: int, **msg: Any) -> str:
    body = {"market_ticker": TICKER, "side": "yes", "ts_ms": RECV // 1_000_000 - 5, **msg}
    return json.dumps({"type": "orderbook_delta", "sid": 7, "seq": seq, "msg": body})


def test_a_crossed_snapshot_is_never_published_and_resyncs_its_subscription() -> None:
    feed = feed_with_sid()
    # YES bid 0.60 against a NO bid 0.50 (YES ask 0.50): a book no venue holds.
    events, commands = feed_one(feed, snapshot(1, [["0.6000", "5.00"]], [["0.5000", "5.00"]]))
    assert not [e for e in events if isinstance(e, BookSnapshot)]
    assert [(e.state, e.reason) for e in events if isinstance(e, BookState)] == [
        ("resyncing", "crossed_book")
    ]
    (command,) = commands
    assert isinstance(command, Send) and command.conn == 0
    assert json.loads(command.frame)["params"] == {"sids": [7], "action": "get_snapshot"}
    assert feed.rejects.counts == {"crossed_book": 1}
    # The fresh snapshot heals it, and the ledger learns of the time the book was unusable.
    events, _ = feed_one(feed, snapshot(2, [["0.4000", "5.00"]], [["0.5000", "5.00"]]), RECV)
    assert [type(e) for e in events] == [BookSnapshot, BookState, DataGap]
    book = feed.books.find(TICKER)
    assert book is not None and book.state is SyncState.LIVE


def test_a_refused_delta_resyncs_at_once_instead_of_waiting_for_the_next_sequence() -> None:
    feed = feed_with_sid()
    feed_one(feed, snapshot(1, [["0.4000", "5.00"]], [["0.5000", "5.00"]]), RECV)
    events, commands = feed_one(feed, delta(2, price_dollars="0.4000", delta_fp="NaN"), RECV)
    assert [(e.state, e.reason) for e in events if isinstance(e, BookState)] == [
        ("resyncing", "rejected_update")
    ]
    assert len(commands) == 1
    assert feed.rejects.counts == {"invalid_size": 1}
    # Later deltas of the sid wait for the snapshot instead of landing on a stale book.
    assert feed_one(feed, delta(3, price_dollars="0.4000", delta_fp="1.00"), RECV) == ([], [])


def test_a_valid_delta_still_flows() -> None:
    feed = feed_with_sid()
    feed_one(feed, snapshot(1, [["0.4000", "5.00"]], [["0.5000", "5.00"]]), RECV)
    (event,), commands = feed_one(feed, delta(2, price_dollars="0.4000", delta_fp="-2.00"), RECV)
    assert commands == [] and event.bids[0].size == "3"  # type: ignore[union-attr]


def test_a_ticker_with_an_empty_side_quotes_none_on_that_side() -> None:
    feed = feed_with_sid()
    msg = {"market_ticker": TICKER, "yes_bid_dollars": "0.0000", "yes_bid_size_fp": "0.00",
           "yes_ask_dollars": "0.4400", "yes_ask_size_fp": "150.00",
           "ts_ms": RECV // 1_000_000}  # fmt: skip
    (top,), _ = feed_one(feed, json.dumps({"type": "ticker", "sid": 7, "msg": msg}), RECV)
    assert isinstance(top, TopOfBook)
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == (None, None, "0.44", "150")


def trade(seq: int, n: int) -> str:
    msg = {"trade_id": f"t{n}", "market_ticker": TICKER, "yes_price_dollars": "0.4000",
           "no_price_dollars": "0.6000", "count_fp": "1.00", "taker_side": "yes",
           "ts": RECV // 1_000_000_000 - 1}  # fmt: skip
    return json.dumps({"type": "trade", "sid": 9, "seq": seq, "msg": msg})


def test_a_skip_in_a_trade_subscription_is_one_gap_for_the_back_fill() -> None:
    feed = KalshiFeed({"trades"})
    feed.subscribe_frames([TICKER])
    ack = {"type": "subscribed", "id": 1, "msg": {"channel": "trade", "sid": 9}}
    feed_one(feed, json.dumps(ack), RECV)
    assert len(feed_one(feed, trade(1, 1), RECV)[0]) == 1
    assert len(feed_one(feed, trade(2, 2), RECV + 1)[0]) == 1
    events, _ = feed_one(feed, trade(5, 5), RECV + 2)  # seq 3 and 4 never came
    [gap] = [e for e in events if isinstance(e, DataGap)]
    assert (gap.cause, gap.instrument, gap.instruments) == ("missed_trades", "conn:0/sid:9",
                                                            (TICKER,))  # fmt: skip
    assert (gap.start, gap.end, gap.healed) == (RECV + 1, RECV + 2, False)
    assert any(getattr(e, "trade_id", None) == "t5" for e in events)  # the trade still flows
    # A late or repeated frame is the pipeline's dedup business, not another gap.
    assert not [e for e in feed_one(feed, trade(4, 4), RECV + 3)[0] if isinstance(e, DataGap)]


def test_a_liveness_resync_asks_for_that_market_only_and_holds_its_deltas_until_then() -> None:
    feed = KalshiFeed({"books"})
    feed.subscribe_frames([TICKER])
    ack = {"type": "subscribed", "id": 1, "msg": {"channel": "orderbook_delta", "sid": 7}}
    feed_one(feed, json.dumps(ack))
    feed_one(feed, snapshot(1, [["0.4000", "5.00"]], [["0.5000", "5.00"]]))
    out = feed.resync(TICKER, RECV)
    events = out.events
    (command,) = out.commands
    assert isinstance(command, Send)
    assert json.loads(command.frame)["params"] == {
        "sids": [7], "action": "get_snapshot", "market_tickers": [TICKER]
    }  # fmt: skip
    assert [(e.state, e.reason) for e in events if isinstance(e, BookState)] == [
        ("resyncing", "liveness")
    ]
    # The sid's sequence is still checked (no gap), but the market's deltas wait.
    assert feed_one(feed, delta(2, price_dollars="0.4000", delta_fp="1.00")) == ([], [])
    events, _ = feed_one(feed, snapshot(3, [["0.4100", "2.00"]], [["0.5000", "5.00"]]))
    assert [type(e) for e in events] == [BookSnapshot, BookState]
    (event,), _ = feed_one(feed, delta(4, price_dollars="0.4100", delta_fp="1.00"))
    assert event.bids[0].size == "3"  # type: ignore[union-attr]
    assert feed.resync("KXOTHER-26AUG20-T1", RECV) == Output([], [])
