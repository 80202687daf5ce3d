"""The stream's frame handling fed bytes directly: refused input reloads books, never crashes."""

from __future__ import annotations

import json
from typing import Any

from venuefeed.book import SyncState
from venuefeed.models import BookSnapshot, BookState, Trade
from venuefeed.transport import HttpPolicy
from venuefeed.venues.polymarket.rest import PolymarketRest
from venuefeed.venues.polymarket.stream import PolymarketStream

T0 = 1_729_000_120_123
RECV = (T0 + 1_000) * 1_000_000
TOKEN = "7132"


def stream() -> PolymarketStream:
    rest = PolymarketRest("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9",
                          HttpPolicy())  # fmt: skip
    s = PolymarketStream(rest, "ws://127.0.0.1:9")
    s._subscribed[TOKEN] = None  # as subscribe() records it, without a socket
    return s


def book(**changes: Any) -> str:
    msg = {"event_type": "book", "asset_id": TOKEN, "market": "0xm", "timestamp": str(T0),
           "bids": [{"price": "0.48", "size": "10"}], "asks": [{"price": "0.52", "size": "10"}],
           **changes}  # fmt: skip
    return json.dumps(msg)


def change(price: str, size: str) -> str:
    item = {"asset_id": TOKEN, "price": price, "size": size, "side": "BUY"}
    return json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(T0 + 1),
                       "price_changes": [item]})  # fmt: skip


def states(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.state, e.reason) for e in events if isinstance(e, BookState)]


def test_a_refused_change_reloads_that_book_instead_of_leaving_it_wrong() -> None:
    s = stream()
    assert [type(e) for e in s.on_frame(book(), RECV)] == [BookSnapshot, BookState]
    events = s.on_frame(change("0.49", "NaN"), RECV)
    assert states(events) == [("resyncing", "rejected_update")]
    assert s.books.get(TOKEN).state is SyncState.RESYNCING and TOKEN in s._resync
    assert s.rejects.counts == {"invalid_size": 1}


def test_a_crossed_book_from_the_venue_is_not_published_and_is_reloaded() -> None:
    s = stream()
    events = s.on_frame(book(bids=[{"price": "0.60", "size": "1"}]), RECV)
    assert not [e for e in events if isinstance(e, BookSnapshot)]
    assert states(events) == [("resyncing", "crossed_book")]
    assert TOKEN in s._resync
    assert s.rejects.counts == {"crossed_book": 1}


def test_a_nan_bid_never_makes_a_book_live() -> None:
    s = stream()
    events = s.on_frame(book(bids=[{"price": "NaN", "size": "1"}]), RECV)
    assert not [e for e in events if isinstance(e, BookSnapshot)]
    assert s.books.find(TOKEN) is None or s.books.get(TOKEN).state is not SyncState.LIVE


def test_garbage_frames_are_counted_and_good_ones_still_flow() -> None:
    s = stream()
    for garbage in (b"\xff\xfe", b"[" * 100_000, b'{"event_type":"book"', b"HELLO"):
        assert s.on_frame(garbage, RECV) == []
    trade = json.dumps({"event_type": "last_trade_price", "asset_id": TOKEN, "market": "0xm",
                        "price": "0.5", "size": "3", "side": "BUY",
                        "timestamp": str(T0)})  # fmt: skip
    (event,) = s.on_frame(trade, RECV)
    assert isinstance(event, Trade) and (event.price, event.size) == ("0.5", "3")
    assert s.rejects.total == 4
