"""Recorded and documented Kalshi payloads parse to hand-written expectations; bad ones are counted.

The complete output of every capture is also pinned by the conformance harness.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest

from tests.venues.captures import capture, load
from tests.venues.kalshi.kalshi_support import CAPTURES
from venuefeed.book import Inconsistency
from venuefeed.models import BookLevel, MarketStatus, PriceUpdate, TopOfBook, Trade
from venuefeed.venues.kalshi import parse
from venuefeed.venues.kalshi import protocol as p
from venuefeed.venues.rejects import Rejects

SPEC = CAPTURES / "spec"
MS = 1_000_000
RECV = 1_669_149_842_000 * MS
"""One second after the documented examples' time (``ts_ms`` 1669149841000)."""


def spec_examples(name: str) -> list[dict[str, Any]]:
    """The ``example: |-`` JSON blocks of an AsyncAPI page mirror, in order."""
    text = (SPEC / name).read_text()
    out = []
    for m in re.finditer(r"example: \|-\n((?: {10,}.*\n)+)", text):
        block = "\n".join(line[10:] for line in m.group(1).splitlines())
        out.append(json.loads(block))
    return out


def lv(*pairs: tuple[str, str]) -> list[BookLevel]:
    return [BookLevel(price, size) for price, size in pairs]


def frame(
    data: bytes | str | dict[str, Any], ts_recv: int = RECV
) -> tuple[list[Any], dict[str, int]]:
    rejects = Rejects("kalshi")
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return parse.parse_frame(raw, ts_recv, rejects), rejects.counts


EL = capture("kalshi", "edgelab_kalshi_samples.jsonl").payloads


def test_real_subscribed_acks() -> None:
    ([first], _), ([second], _) = frame(*EL[0]), frame(*EL[1])
    assert isinstance(first, p.WsSubscribed) and isinstance(second, p.WsSubscribed)
    assert (first.id, first.msg.channel, first.msg.sid) == (1, "orderbook_delta", 1)
    assert (second.id, second.msg.channel, second.msg.sid) == (1, "trade", 2)


def test_real_empty_snapshot_has_no_side_keys() -> None:
    data, recv = EL[2]
    ([snap], counts) = frame(data, recv)
    assert isinstance(snap, parse.Snapshot) and counts == {}
    assert snap.sid == 1
    assert snap.book.instrument == "KXBTCD-26AUG2017-T73749.99"
    assert snap.book.bids == [] and snap.book.asks == []
    assert snap.book.sequence == 1 and snap.book.ts_recv == recv


def test_legacy_cents_snapshot_and_delta() -> None:
    ([snap], _) = frame(*EL[3])
    assert isinstance(snap, parse.Snapshot)
    # yes [[10,100],[11,50]] -> bids 0.11x50, 0.10x100; no [[20,30]] -> ask 1-0.20 = 0.80 x30
    assert snap.book.bids == lv(("0.11", "50"), ("0.1", "100"))
    assert snap.book.asks == lv(("0.8", "30"))
    assert snap.book.sequence == 2
    ([change], _) = frame(*EL[4])
    assert change == parse.BookChange(1, 3, "KXBTCD-X", "ask", "0.6", "-2", 0)


def test_legacy_trade_with_a_placeholder_time_is_refused() -> None:
    # The synthetic edge-lab line says "ts": 1700 -- seconds after 1970, not a trade time.
    assert frame(*EL[5]) == ([], {"timestamp_out_of_window": 1})
    legacy = {"type": "trade", "sid": 2, "msg": {"market_ticker": "KXBTCD-X", "yes_price": 52,
              "count": 3, "taker_side": "yes", "ts": 1669149841}}  # fmt: skip
    ([trade], _) = frame(legacy)
    assert isinstance(trade, Trade)
    assert (trade.instrument, trade.price, trade.size, trade.side) == (
        "KXBTCD-X",
        "0.52",
        "3",
        "buy",
    )
    assert trade.ts_venue == 1669149841 * 10**9
    assert trade.trade_id  # synthesized: the legacy frame has none


def test_rest_orderbook_doc_example_top_n() -> None:
    ((body, recv),) = capture("kalshi", "spec/getting_started_orderbook_responses.md").payloads
    full = parse.parse_book(body, "KXHIGHNY-24JAN01-T60", recv, Rejects("kalshi"))
    assert full is not None
    assert full.bids[0] == BookLevel("0.42", "13")  # best YES bid is the last element
    assert full.asks[0] == BookLevel("0.44", "17")  # 1 - best NO bid 0.56
    assert len(full.bids) == 12 and len(full.asks) == 10
    top = parse.parse_book(body, "KXHIGHNY-24JAN01-T60", recv, Rejects("kalshi"), depth=3)
    assert top is not None
    assert top.bids == lv(("0.42", "13"), ("0.41", "10"), ("0.35", "11"))
    assert top.asks == lv(("0.44", "17"), ("0.55", "20"), ("0.56", "29"))


def test_rest_orderbook_legacy_and_null_sides() -> None:
    def book(body: bytes) -> list[BookLevel]:
        snap = parse.parse_book(body, "X", RECV, Rejects("kalshi"))
        assert snap is not None
        return snap.bids

    # legacy arrays are ascending too; this one is not, and best-first is by position
    assert book(b'{"orderbook":{"yes":[[42,13],[7,2]],"no":null}}') == lv(
        ("0.07", "2"), ("0.42", "13")
    )
    both = b'{"orderbook_fp":{"yes_dollars":[["0.0010","1.50"]]},"orderbook":{"yes":[[1,1]]}}'
    assert book(both) == lv(("0.001", "1.5"))
    assert book(b"{}") == []


def test_a_crossed_snapshot_is_refused_so_the_feed_resyncs_its_subscription() -> None:
    # YES bid 0.60 against NO bid 0.50 (a YES ask at 0.50): no venue book looks like this.
    book = {"market_ticker": "T", "yes_dollars_fp": [["0.6000", "5.00"]],
            "no_dollars_fp": [["0.5000", "5.00"]]}  # fmt: skip
    snap = {"type": "orderbook_snapshot", "sid": 3, "seq": 9, "msg": book}
    assert frame(snap) == ([parse.Refused(3, 9, Inconsistency.CROSSED)], {"crossed_book": 1})
    body = b'{"orderbook_fp":{"yes_dollars":[["0.6000","5.00"]],"no_dollars":[["0.5000","5.00"]]}}'
    rejects = Rejects("kalshi")
    assert parse.parse_book(body, "T", RECV, rejects) is None
    assert rejects.counts == {"crossed_book": 1}


def test_ws_doc_examples() -> None:
    snap_ex, delta_ex = spec_examples("websockets_orderbook-updates.md")[:2]
    ([snap], _) = frame(snap_ex)
    assert isinstance(snap, parse.Snapshot)
    assert snap.book.instrument == "FED-23DEC-T3.00" and snap.book.sequence == 2
    assert snap.book.bids == lv(("0.22", "333"), ("0.08", "300"))
    assert snap.book.asks == lv(("0.44", "146"), ("0.46", "20"))
    ([change], _) = frame(delta_ex)
    assert change == parse.BookChange(
        2, 3, "FED-23DEC-T3.00", "bid", "0.96", "-54", 1669149841000 * MS
    )

    (trade_ex,) = spec_examples("websockets_public-trades.md")
    ([trade], _) = frame(trade_ex)
    assert isinstance(trade, Trade)
    assert trade.trade_id == "d91bc706-ee49-470d-82d8-11418bda6fed"
    assert (trade.price, trade.size, trade.side) == ("0.36", "136", "sell")
    assert trade.ts_venue == 1669149841000 * MS

    (ticker_ex,) = spec_examples("websockets_market-ticker.md")
    ([top, last], _) = frame(ticker_ex)
    assert isinstance(top, TopOfBook) and isinstance(last, PriceUpdate)
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == (
        "0.45",
        "300",
        "0.53",
        "150",
    )
    assert (last.price, last.size) == ("0.48", "25")


@pytest.mark.parametrize(
    ("side", "expected"),
    [
        # The venue's empty side: price 0 (no bid) or 1 (no ask) at size 0 -- "no quote".
        ({"yes_bid_dollars": "0.0000", "yes_bid_size_fp": "0.00"}, (None, None, "0.53", "150")),
        ({"yes_ask_dollars": "1.0000", "yes_ask_size_fp": "0.00"}, ("0.45", "300", None, None)),
        ({"yes_bid_size_fp": "0.00"}, (None, None, "0.53", "150")),
    ],
)
def test_an_empty_ticker_side_is_none(side: dict[str, str], expected: tuple[object, ...]) -> None:
    (ticker_ex,) = spec_examples("websockets_market-ticker.md")
    ticker_ex["msg"].update(side)
    ([top, _], _) = frame(ticker_ex)
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"type":"orderbook_delta","sid":', "malformed_json"),
        (b'{"type":"market_lifecycle_v9","msg":{}}', "unknown_type"),
        (b'{"type":"orderbook_delta","sid":1,"msg":{"side":"yes"}}', "invalid_fields"),
        (b'{"type":"trade","msg":{"market_ticker":"\xff"}}', "malformed_json"),
        (b"[" * 50_000 + b"]" * 50_000, "invalid_fields"),
    ],
)
def test_undecodable_frames_are_counted_never_raised(data: bytes, reason: str) -> None:
    assert frame(data) == ([], {reason: 1})


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        ({"side": "no"}, "invalid_fields"),
        ({"price_dollars": "1.5", "delta_fp": "1"}, "invalid_price"),
        ({"price_dollars": "NaN", "delta_fp": "1"}, "invalid_price"),
        ({"price_dollars": "0.5", "delta_fp": " 1"}, "invalid_size"),
        ({"price": 140, "delta": 1}, "invalid_price"),
        ({"price_dollars": "0.5", "delta_fp": "1", "ts_ms": 1669149841}, "timestamp_out_of_window"),
    ],
)  # fmt: skip
def test_a_refused_delta_tells_the_feed_which_sequence_was_lost(
    msg: dict[str, Any], reason: str
) -> None:
    data = {"type": "orderbook_delta", "sid": 1, "seq": 2,
            "msg": {"market_ticker": "A", "side": "yes", **msg}}  # fmt: skip
    assert frame(data) == ([parse.Refused(1, 2, Inconsistency.REJECTED)], {reason: 1})


@pytest.mark.parametrize(
    ("price", "expected"),
    [("0.56", "0.44"), ("0.001", "0.999"), ("0.999", "0.001"), ("1", "0"), ("0", "1")],
)
def test_complement_is_exact(price: str, expected: str) -> None:
    assert parse.complement(price) == expected


def market_body(**changes: Any) -> bytes:
    market = load("kalshi", "handwritten_market.json")["market"]
    return msgspec.json.encode({"market": {**market, **changes}})


def test_market_from_documented_fields() -> None:
    market = parse.parse_market(market_body(), Rejects("kalshi"))
    assert market is not None
    assert market.market_id == "KXHIGHNY-26AUG20-T90"
    assert market.instruments == ("KXHIGHNY-26AUG20-T90",)
    assert market.status is MarketStatus.OPEN
    assert market.tick_size == "0.001"
    assert market.rules == "If the high is above 90, Yes.\n\nSource: NWS."
    assert market.close_time == 1787284740 * 10**9
    assert market.resolution_time == 1787929200 * 10**9
    # Quotes move every second; they must not make a new market version.
    moved = parse.parse_market(market_body(yes_bid_dollars="0.5000"), Rejects("kalshi"))
    assert moved is not None and moved.raw_hash == market.raw_hash
    edited = parse.parse_market(market_body(rules_secondary="Source: NWS Park."), Rejects("kalshi"))
    assert edited is not None and edited.raw_hash != market.raw_hash
    for status, canonical in [
        ("finalized", MarketStatus.RESOLVED),
        ("initialized", MarketStatus.UPCOMING),
    ]:
        other = parse.parse_market(market_body(status=status), Rejects("kalshi"))
        assert other is not None and other.status is canonical


def test_one_odd_market_costs_that_market_not_the_page() -> None:
    page = load("kalshi", "handwritten_markets_page.json")
    page["markets"].append({**page["markets"][0], "ticker": "BAD", "price_ranges": [
        {"start": "0", "end": "1", "step": "-0.01"}]})  # fmt: skip
    page["markets"].append({"ticker": 5})  # not even a market
    rejects = Rejects("kalshi")
    parsed = parse.parse_markets_page(msgspec.json.encode(page), rejects)
    assert parsed is not None
    markets, cursor = parsed
    assert [m.market_id for m in markets] == ["KXHIGHNY-26AUG20-T90", "HIGHNY-22DEC23-B53.5"]
    assert cursor == "CgsI2PuEqwYQ"
    assert rejects.counts == {"invalid_markets_item": 1, "invalid_price": 1}


def test_trades_page_current_and_legacy() -> None:
    ((body, recv),) = capture("kalshi", "handwritten_trades_page.json").payloads
    parsed = parse.parse_trades_page(body, recv, Rejects("kalshi"))
    assert parsed is not None
    trades, cursor = parsed
    assert cursor == ""
    assert [(t.trade_id, t.price, t.size, t.side) for t in trades] == [
        ("d91b", "0.36", "136", "sell"),
        ("old", "0.07", "5", "buy"),
    ]
    assert trades[0].ts_venue == 1787153859 * 10**9
    assert trades[1].ts_venue == 1735787045123456000


def test_candles_null_periods() -> None:
    ((body, recv),) = capture("kalshi", "handwritten_candles.json").payloads
    candles = parse.parse_candles(body, "T", 60, recv, Rejects("kalshi"))
    assert candles is not None
    first, flat = candles
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        "0.4",
        "0.45",
        "0.39",
        "0.44",
        "12",
    )
    assert (first.open_time, first.close_time, first.interval) == (
        1787155200 * 10**9,
        1787158800 * 10**9,
        "1h",
    )
    assert (flat.open, flat.close, flat.volume) == ("0.44", "0.44", "0")


@pytest.mark.parametrize("body", [b"<html>", b"", b"[1]", b"\xff\xfe"])
def test_a_body_that_is_not_the_documented_shape_is_none(body: bytes) -> None:
    rejects = Rejects("kalshi")
    assert parse.parse_market(body, rejects) is None
    assert parse.parse_book(body, "T", RECV, rejects) is None
    assert parse.parse_candles(body, "T", 60, RECV, rejects) is None
    assert sum(rejects.counts.values()) == 3
