"""The feed fed bytes directly (sans-IO): refused input reloads books, never crashes, and
every REST need comes out as a command -- resyncs, audits, market look-ups."""

from __future__ import annotations

import json
from typing import Any

from venuefeed.book import SyncState
from venuefeed.models import BookSnapshot, BookState, DataGap, Event, Market, Trade
from venuefeed.transport import Frame
from venuefeed.venues.feed import Fetch, Output, Resubscribe
from venuefeed.venues.polymarket import parse
from venuefeed.venues.polymarket.feed import AUDIT, BOOKS, MARKETS, HashAudit, PolymarketFeed
from venuefeed.venues.polymarket.options import Options
from venuefeed.venues.polymarket.protocol import BookSummary, WireLevel

T0 = 1_729_000_120_123
RECV = (T0 + 1_000) * 1_000_000
TOKEN = "7132"
S = 1_000_000_000


class Fed:
    """A feed with TOKEN subscribed; ``on_frame`` returns events and keeps the commands."""

    def __init__(self, **options: Any) -> None:
        self.feed = PolymarketFeed(Options(**options))
        self.feed.on_subscribed([TOKEN])
        self.fetches: list[Fetch] = []
        self.markets: list[Market] = []

    def keep(self, out: Output) -> list[Event]:
        self.fetches += [c for c in out.commands if isinstance(c, Fetch)]
        self.markets += out.markets
        return out.events

    def on_frame(self, data: bytes | str, ts_recv: int = RECV) -> list[Event]:
        return self.keep(self.feed.on_frames([Frame(data, ts_recv, 0)]))

    def asked(self, what: str) -> list[str]:
        return [k for f in self.fetches if f.what == what for k in f.keys]

    @property
    def books(self) -> Any:
        return self.feed.books

    @property
    def rejects(self) -> Any:
        return self.feed.rejects


def stream() -> Fed:
    return Fed()


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
    assert [type(e) for e in s.on_frame(book())] == [BookSnapshot, BookState]
    events = s.on_frame(change("0.49", "NaN"))
    assert states(events) == [("resyncing", "rejected_update")]
    assert s.books.get(TOKEN).state is SyncState.RESYNCING and s.asked(BOOKS) == [TOKEN]
    assert s.rejects.counts == {"invalid_size": 1}


def topped(price: str, size: str, best_bid: str, best_ask: str) -> str:
    """A change that carries the venue's top after it, as the current message shape does."""
    item = {"asset_id": TOKEN, "price": price, "size": size, "side": "BUY",
            "best_bid": best_bid, "best_ask": best_ask}  # fmt: skip
    return json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(T0 + 1),
                       "price_changes": [item]})  # fmt: skip


def test_the_venue_top_is_checked_on_every_change_also_when_its_text_was_seen() -> None:
    s = stream()
    s.on_frame(book())
    agreed = s.on_frame(topped("0.49", "5", best_bid="0.49", best_ask="0.52"))
    assert [type(e).__name__ for e in agreed] == ["BookDelta"]  # the tops agree: published
    again = s.on_frame(topped("0.47", "5", best_bid="0.49", best_ask="0.52"))
    assert [type(e).__name__ for e in again] == ["BookDelta"]  # still 0.49 on top
    # The same texts again, but now our book's best bid is 0.5: the venue's 0.49 disagrees.
    events = s.on_frame(topped("0.5", "5", best_bid="0.49", best_ask="0.52"))
    assert states(events) == [("resyncing", "top_of_book_mismatch")]
    assert s.books.get(TOKEN).state is SyncState.RESYNCING and s.asked(BOOKS) == [TOKEN]


def test_an_empty_side_in_the_venue_top_must_be_empty_in_ours() -> None:
    s = stream()
    s.on_frame(book(asks=[]))
    assert [type(e).__name__ for e in s.on_frame(topped("0.49", "5", "0.49", ""))] == [
        "BookDelta"
    ]  # "" (and "1" for the ask): that side is empty, as ours is
    events = s.on_frame(topped("0.49", "6", "0.49", "1"))
    assert [type(e).__name__ for e in events] == ["BookDelta"]
    events = s.on_frame(topped("0.49", "7", "", "1"))  # ours has bids: a mismatch
    assert states(events) == [("resyncing", "top_of_book_mismatch")]


def test_a_crossed_book_from_the_venue_is_not_published_and_is_reloaded() -> None:
    s = stream()
    events = s.on_frame(book(bids=[{"price": "0.60", "size": "1"}]))
    assert not [e for e in events if isinstance(e, BookSnapshot)]
    assert states(events) == [("resyncing", "crossed_book")]
    assert s.asked(BOOKS) == [TOKEN]
    assert s.rejects.counts == {"crossed_book": 1}


def test_a_nan_bid_never_makes_a_book_live() -> None:
    s = stream()
    events = s.on_frame(book(bids=[{"price": "NaN", "size": "1"}]))
    assert not [e for e in events if isinstance(e, BookSnapshot)]
    assert s.books.find(TOKEN) is None or s.books.get(TOKEN).state is not SyncState.LIVE


def test_garbage_frames_are_counted_and_good_ones_still_flow() -> None:
    s = stream()
    for garbage in (b"\xff\xfe", b"[" * 100_000, b'{"event_type":"book"', b"HELLO"):
        assert s.on_frame(garbage) == []
    trade = json.dumps({"event_type": "last_trade_price", "asset_id": TOKEN, "market": "0xm",
                        "price": "0.5", "size": "3", "side": "BUY",
                        "timestamp": str(T0)})  # fmt: skip
    (event,) = s.on_frame(trade)
    assert isinstance(event, Trade) and (event.price, event.size) == ("0.5", "3")
    assert s.rejects.total == 4


OTHER = "4833"


def summary(
    token: str = TOKEN, ts: int = T0 + 5, bid: str = "0.47", ask: str = "0.53"
) -> BookSummary:
    return BookSummary(market="0xm", asset_id=token, timestamp=str(ts),
                       bids=[WireLevel(bid, "4")], asks=[WireLevel(ask, "6")])  # fmt: skip


def test_a_crossing_change_resyncs_that_token_alone_and_rest_heals_it() -> None:
    s = Fed()
    s.feed.on_subscribed([OTHER])
    s.on_frame(book())
    s.on_frame(book(asset_id=OTHER))
    events = s.on_frame(change("0.55", "3"))  # a bid above the 0.52 ask
    assert states(events) == [("resyncing", "crossed_book")]
    assert not [e for e in events if not isinstance(e, BookState)]  # the crossed delta is held
    assert s.asked(BOOKS) == [TOKEN]
    assert s.books.get(OTHER).state is SyncState.LIVE
    s.on_frame(change("0.49", "1"))  # further changes neither apply nor ask again
    assert s.asked(BOOKS) == [TOKEN]
    events = s.keep(s.feed.on_fetched(BOOKS, [summary()], RECV))
    assert [type(e) for e in events] == [BookSnapshot, BookState]
    book_ = s.books.get(TOKEN)
    assert book_.state is SyncState.LIVE and book_.best_bid() is not None
    assert (book_.best_bid().price, s.feed.resyncs) == ("0.47", 1)


def test_a_tick_size_change_voids_the_book_until_a_fresh_snapshot() -> None:
    s = Fed()
    s.on_frame(book())
    tick = json.dumps({"event_type": "tick_size_change", "asset_id": TOKEN, "market": "0xm",
                       "old_tick_size": "0.01", "new_tick_size": "0.001",
                       "timestamp": str(T0 + 2)})  # fmt: skip
    events = s.on_frame(tick)
    assert states(events) == [("resyncing", "tick_size_change")]
    assert s.books.find(TOKEN) is None and s.asked(BOOKS) == [TOKEN]
    assert s.on_frame(change("0.49", "1")) == []  # ignored while void
    s.keep(s.feed.on_fetched(BOOKS, [summary(ts=T0)], RECV))
    assert s.books.get(TOKEN).state is SyncState.LIVE
    assert [type(e) for e in s.on_frame(change("0.46", "2"))] == [parse.BookDelta]


def test_a_failed_resync_is_asked_again_after_the_retry_interval() -> None:
    s = Fed(resync_retry_interval_seconds=2.0)
    s.on_frame(book(bids=[{"price": "0.60", "size": "1"}]))  # crossed from the venue
    assert s.asked(BOOKS) == [TOKEN]
    s.keep(s.feed.on_fetch_failed(BOOKS, (TOKEN,), "HttpError: 503"))
    s.keep(s.feed.on_timer(RECV))  # starts the clocks
    s.keep(s.feed.on_timer(RECV + 1 * S))
    assert s.asked(BOOKS) == [TOKEN]
    s.keep(s.feed.on_timer(RECV + 2 * S))
    assert s.asked(BOOKS) == [TOKEN, TOKEN]


def test_the_audit_compares_live_books_with_rest_and_reloads_a_divergent_one() -> None:
    s = Fed(audit_interval_seconds=60)
    s.on_frame(book())
    s.keep(s.feed.on_timer(RECV))
    s.keep(s.feed.on_timer(RECV + 30 * S))
    assert s.asked(AUDIT) == []
    s.keep(s.feed.on_timer(RECV + 60 * S))
    assert s.asked(AUDIT) == [TOKEN]
    same = BookSummary(market="0xm", asset_id=TOKEN, timestamp=str(T0),
                       bids=[WireLevel("0.48", "10")], asks=[WireLevel("0.52", "10")])  # fmt: skip
    assert s.keep(s.feed.on_fetched(AUDIT, [same], RECV)) == []
    # Same venue moment, other levels: we missed an update.
    events = s.keep(s.feed.on_fetched(AUDIT, [summary(ts=T0)], RECV))
    (gap,) = [e for e in events if isinstance(e, DataGap)]
    assert gap.cause == "checksum_mismatch" and gap.healed and s.feed.audit_mismatches == 1
    assert s.books.get(TOKEN).best_bid().price == "0.47"


def test_unknown_tokens_are_looked_up_once_after_the_debounce() -> None:
    s = Fed(discovery_debounce_seconds=0.5)
    s.feed.on_subscribed([OTHER])
    s.on_frame(book())
    s.on_frame(book(asset_id=OTHER))
    s.keep(s.feed.on_timer(RECV))
    assert s.asked(MARKETS) == []
    s.keep(s.feed.on_timer(RECV + S))
    assert s.asked(MARKETS) == [TOKEN, OTHER]  # one batched look-up
    s.keep(s.feed.on_fetch_failed(MARKETS, (OTHER,), "HttpError: 503"))
    market = Market(venue="polymarket", market_id="0xm", title="?", outcomes=())
    s.keep(s.feed.on_fetched(MARKETS, [market], RECV))
    assert s.markets == [market] and s.feed.markets == {}  # no outcome tokens: nothing mapped
    s.on_frame(book())
    s.on_frame(book(asset_id=OTHER))
    s.keep(s.feed.on_timer(RECV + 2 * S))
    assert s.asked(MARKETS) == [TOKEN, OTHER, OTHER]  # only the failed one is asked again


def test_a_new_market_frame_comes_out_as_a_market() -> None:
    s = Fed()
    frame = json.dumps({"event_type": "new_market", "id": "1", "question": "Q?",
                        "market": "0xc", "condition_id": "0xc", "slug": "q",
                        "assets_ids": ["11", "22"], "clob_token_ids": ["11", "22"],
                        "outcomes": ["Yes", "No"], "timestamp": str(T0), "active": True,
                        "order_price_min_tick_size": "0.01"})  # fmt: skip
    assert s.on_frame(frame) == []
    (market,) = s.markets
    assert market.market_id == "0xc" and market.instruments == ("11", "22")
    assert s.feed.markets["22"] is market


def test_rest_hash_mismatch_is_counted_and_refetched_at_most_once_per_interval() -> None:
    audit = HashAudit(interval_seconds=60)
    bad = BookSummary(market="0xm", asset_id="1", timestamp="5", bids=[WireLevel("0.4", "1")],
                      asks=[], hash="not-the-digest")  # fmt: skip
    other = BookSummary(market="0xm", asset_id="2", timestamp="5", bids=[], asks=[], hash="nope")
    now = 100 * S
    assert audit.check(bad, now) is True
    assert audit.check(bad, now) is False  # counted, not refetched again
    assert audit.check(other, now) is True  # per token
    assert audit.check(bad, now + 61 * S) is True
    assert audit.mismatches == 4
    good = BookSummary(market="0xm", asset_id="1", timestamp="5", bids=[], asks=[], hash="")
    good = BookSummary(
        market="0xm", asset_id="1", timestamp="5", bids=[], asks=[], hash=parse.book_hash(good)
    )
    assert audit.check(good, now) is False and audit.mismatches == 4


def test_the_liveness_resync_renews_the_subscription_and_asks_rest() -> None:
    s = Fed()
    s.on_frame(book())
    out = s.feed.resync(TOKEN, RECV)
    assert states(out.events) == [("resyncing", "checksum_mismatch")]
    assert out.commands == [Fetch(BOOKS, (TOKEN,)), Resubscribe((TOKEN,))]
    assert s.feed.resync("not-subscribed", RECV) == Output([], [])
