"""Recorded and documented Kalshi payloads parse to hand-written expectations."""

from __future__ import annotations

import json
import re

import msgspec
import pytest

from tests.venues.kalshi.kalshi_support import CAPTURES
from venuefeed.models import BookLevel, MarketStatus, PriceUpdate, TopOfBook, Trade
from venuefeed.venues.kalshi import parse
from venuefeed.venues.kalshi import protocol as p

SPEC = CAPTURES / "spec"


def spec_examples(name: str) -> list[dict]:
    """The ``example: |-`` JSON blocks of an AsyncAPI page mirror, in order."""
    text = (SPEC / name).read_text()
    out = []
    for m in re.finditer(r"example: \|-\n((?: {10,}.*\n)+)", text):
        block = "\n".join(line[10:] for line in m.group(1).splitlines())
        out.append(json.loads(block))
    return out


def json_block_after(name: str, heading: str) -> bytes:
    text = (SPEC / name).read_text()
    start = text.index(heading)
    m = re.search(r"```json[^\n]*\n(.*?)```", text[start:], re.S)
    assert m is not None
    return m.group(1).encode()


def lv(*pairs: tuple[str, str]) -> list[BookLevel]:
    return [BookLevel(price, size) for price, size in pairs]


EL = (CAPTURES / "edgelab_kalshi_samples.jsonl").read_bytes().splitlines()


def test_real_subscribed_acks() -> None:
    first, second = parse.decode_ws(EL[0]), parse.decode_ws(EL[1])
    assert isinstance(first, p.WsSubscribed) and isinstance(second, p.WsSubscribed)
    assert (first.id, first.msg.channel, first.msg.sid) == (1, "orderbook_delta", 1)
    assert (second.id, second.msg.channel, second.msg.sid) == (1, "trade", 2)


def test_real_empty_snapshot_has_no_side_keys() -> None:
    msg = parse.decode_ws(EL[2])
    assert isinstance(msg, p.WsOrderbookSnapshot)
    snap = parse.snapshot_event(msg, ts_recv=5)
    assert snap.instrument == "KXBTCD-26AUG2017-T73749.99"
    assert snap.bids == [] and snap.asks == []
    assert snap.sequence == 1 and snap.ts_recv == 5


def test_legacy_cents_snapshot_delta_trade() -> None:
    snap_msg = parse.decode_ws(EL[3])
    assert isinstance(snap_msg, p.WsOrderbookSnapshot)
    snap = parse.snapshot_event(snap_msg, ts_recv=0)
    # yes [[10,100],[11,50]] -> bids 0.11x50, 0.10x100; no [[20,30]] -> ask 1-0.20 = 0.80 x30
    assert snap.bids == lv(("0.11", "50"), ("0.1", "100"))
    assert snap.asks == lv(("0.8", "30"))
    assert snap.sequence == 2

    delta_msg = parse.decode_ws(EL[4])
    assert isinstance(delta_msg, p.WsOrderbookDelta) and delta_msg.seq == 3
    change = parse.book_change(delta_msg)
    assert change == parse.BookChange("KXBTCD-X", "ask", "0.6", "-2", 0)

    trade_msg = parse.decode_ws(EL[5])
    assert isinstance(trade_msg, p.WsTrade)
    trade = parse.trade_event(trade_msg, ts_recv=9)
    assert isinstance(trade, Trade)
    assert (trade.instrument, trade.price, trade.size, trade.side) == (
        "KXBTCD-X",
        "0.52",
        "3",
        "buy",
    )
    assert trade.ts_venue == 1700 * 10**9
    assert trade.trade_id  # synthesized: the legacy frame has none


def test_rest_orderbook_doc_example_top_n() -> None:
    body = json_block_after("getting_started_orderbook_responses.md", "### Example Response")
    full = parse.parse_orderbook(body, "KXHIGHNY-24JAN01-T60", ts_recv=1)
    assert full.bids[0] == BookLevel("0.42", "13")  # best YES bid is the last element
    assert full.asks[0] == BookLevel("0.44", "17")  # 1 - best NO bid 0.56
    assert len(full.bids) == 12 and len(full.asks) == 10
    top = parse.parse_orderbook(body, "KXHIGHNY-24JAN01-T60", ts_recv=1, depth=3)
    assert top.bids == lv(("0.42", "13"), ("0.41", "10"), ("0.35", "11"))
    assert top.asks == lv(("0.44", "17"), ("0.55", "20"), ("0.56", "29"))


def test_rest_orderbook_legacy_and_null_sides() -> None:
    legacy = b'{"orderbook":{"yes":[[42,13],[7,2]],"no":null}}'
    snap = parse.parse_orderbook(legacy, "X", 0)
    # legacy arrays are ascending too; this one is not, and best-first is by position
    assert snap.bids == lv(("0.07", "2"), ("0.42", "13"))
    assert snap.asks == []
    both = b'{"orderbook_fp":{"yes_dollars":[["0.0010","1.50"]]},"orderbook":{"yes":[[1,1]]}}'
    assert parse.parse_orderbook(both, "X", 0).bids == lv(("0.001", "1.5"))
    assert parse.parse_orderbook(b"{}", "X", 0).bids == []


def test_ws_doc_examples() -> None:
    snap_ex, delta_ex = spec_examples("websockets_orderbook-updates.md")[:2]
    snap_msg = parse.decode_ws(json.dumps(snap_ex).encode())
    assert isinstance(snap_msg, p.WsOrderbookSnapshot)
    snap = parse.snapshot_event(snap_msg, 0)
    assert snap.instrument == "FED-23DEC-T3.00" and snap.sequence == 2
    assert snap.bids == lv(("0.22", "333"), ("0.08", "300"))
    assert snap.asks == lv(("0.44", "146"), ("0.46", "20"))

    delta_msg = parse.decode_ws(json.dumps(delta_ex).encode())
    assert isinstance(delta_msg, p.WsOrderbookDelta)
    change = parse.book_change(delta_msg)
    assert change == parse.BookChange(
        "FED-23DEC-T3.00", "bid", "0.96", "-54", 1669149841000 * 10**6
    )

    (trade_ex,) = spec_examples("websockets_public-trades.md")
    trade_msg = parse.decode_ws(json.dumps(trade_ex).encode())
    assert isinstance(trade_msg, p.WsTrade)
    trade = parse.trade_event(trade_msg, 0)
    assert isinstance(trade, Trade)
    assert trade.trade_id == "d91bc706-ee49-470d-82d8-11418bda6fed"
    assert (trade.price, trade.size, trade.side) == ("0.36", "136", "sell")
    assert trade.ts_venue == 1669149841000 * 10**6

    (ticker_ex,) = spec_examples("websockets_market-ticker.md")
    ticker_msg = parse.decode_ws(json.dumps(ticker_ex).encode())
    assert isinstance(ticker_msg, p.WsTicker)
    top, last = parse.ticker_events(ticker_msg, 0)
    assert isinstance(top, TopOfBook) and isinstance(last, PriceUpdate)
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == (
        "0.45",
        "300",
        "0.53",
        "150",
    )
    assert (last.price, last.size) == ("0.48", "25")


def test_rejections_never_raise() -> None:
    assert parse.decode_ws(b'{"type":"orderbook_delta","sid":') == parse.Rejected(
        "malformed_json",
        parse.decode_ws(b'{"type":"orderbook_delta","sid":').detail,  # type: ignore[union-attr]
    )
    unknown = parse.decode_ws(b'{"type":"market_lifecycle_v9","msg":{}}')
    assert isinstance(unknown, parse.Rejected) and unknown.reason == "unknown_type"
    missing = parse.decode_ws(b'{"type":"orderbook_delta","sid":1,"msg":{"side":"yes"}}')
    assert isinstance(missing, parse.Rejected) and missing.reason == "invalid_fields"
    no_price = parse.decode_ws(
        b'{"type":"orderbook_delta","sid":1,"seq":2,"msg":{"market_ticker":"A","side":"no"}}'
    )
    assert isinstance(no_price, p.WsOrderbookDelta)
    assert isinstance(parse.book_change(no_price), parse.Rejected)


@pytest.mark.parametrize(
    ("price", "expected"),
    [("0.56", "0.44"), ("0.5600", "0.44"), ("0.001", "0.999"), ("0.999", "0.001"), ("1", "0")],
)
def test_complement_is_exact(price: str, expected: str) -> None:
    assert parse.complement(parse.exact.canon(price)) == expected


def test_market_from_documented_fields() -> None:
    wire = {
        "ticker": "KXHIGHNY-26AUG20-T90",
        "event_ticker": "KXHIGHNY-26AUG20",
        "market_type": "binary",
        "yes_sub_title": "90° or above",
        "no_sub_title": "Below 90°",
        "title": "Will the high temp in NYC be >90°?",
        "status": "active",
        "open_time": "2026-08-19T14:00:00Z",
        "close_time": "2026-08-21T03:59:00Z",
        "latest_expiration_time": "2026-08-28T15:00:00Z",
        "rules_primary": "If the high is above 90, Yes.",
        "rules_secondary": "Source: NWS.",
        "price_level_structure": "tapered_deci_cent",
        "price_ranges": [
            {"start": "0.0000", "end": "0.1000", "step": "0.0010"},
            {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
        ],
        "yes_bid_dollars": "0.4200",
    }
    market = parse.parse_market(msgspec.json.encode({"market": wire}))
    assert market.market_id == "KXHIGHNY-26AUG20-T90" and market.instruments == (
        "KXHIGHNY-26AUG20-T90",
    )
    assert market.status is MarketStatus.OPEN
    assert market.tick_size == "0.001"
    assert market.rules == "If the high is above 90, Yes.\n\nSource: NWS."
    assert market.close_time == 1787284740 * 10**9
    assert market.resolution_time == 1787929200 * 10**9
    # Quotes move every second; they must not make a new market version.
    moved = {**wire, "yes_bid_dollars": "0.5000"}
    assert parse.parse_market(msgspec.json.encode({"market": moved})).raw_hash == market.raw_hash
    edited = {**wire, "rules_secondary": "Source: NWS Central Park."}
    assert parse.parse_market(msgspec.json.encode({"market": edited})).raw_hash != market.raw_hash
    for status, canonical in [
        ("finalized", MarketStatus.RESOLVED),
        ("initialized", MarketStatus.UPCOMING),
    ]:
        other = parse.parse_market(msgspec.json.encode({"market": {**wire, "status": status}}))
        assert other.status is canonical


def test_trades_page_current_and_legacy() -> None:
    body = msgspec.json.encode(
        {
            "trades": [
                {
                    "trade_id": "d91b",
                    "ticker": "HIGHNY-22DEC23-B53.5",
                    "count_fp": "136.00",
                    "yes_price_dollars": "0.3600",
                    "no_price_dollars": "0.6400",
                    "taker_outcome_side": "no",
                    "taker_book_side": "ask",
                    "created_time": "2026-08-19T15:37:39Z",
                    "is_block_trade": False,
                },
                {
                    "trade_id": "old",
                    "ticker": "T",
                    "count": 5,
                    "yes_price": 7,
                    "taker_side": "yes",
                    "created_time": "2025-01-02T03:04:05.123456Z",
                },
            ],
            "cursor": "",
        }
    )
    trades, cursor = parse.parse_trades_page(body, ts_recv=1)
    assert cursor == ""
    assert [(t.trade_id, t.price, t.size, t.side) for t in trades] == [
        ("d91b", "0.36", "136", "sell"),
        ("old", "0.07", "5", "buy"),
    ]
    assert trades[0].ts_venue == 1787153859 * 10**9
    assert trades[1].ts_venue == 1735787045123456000


def test_candles_null_periods() -> None:
    body = msgspec.json.encode(
        {
            "ticker": "T",
            "candlesticks": [
                {
                    "end_period_ts": 3600,
                    "price": {
                        "open_dollars": "0.40",
                        "high_dollars": "0.45",
                        "low_dollars": "0.39",
                        "close_dollars": "0.4400",
                    },
                    "volume_fp": "12.00",
                },
                {
                    "end_period_ts": 7200,
                    "price": {"previous_dollars": "0.4400"},
                    "volume_fp": "0.00",
                },
                {"end_period_ts": 0, "price": {}, "volume_fp": "0.00"},
            ],
        }
    )
    first, flat = parse.parse_candles(body, "T", 60, ts_recv=0)
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        "0.4",
        "0.45",
        "0.39",
        "0.44",
        "12",
    )
    assert (first.open_time, first.close_time, first.interval) == (0, 3600 * 10**9, "1h")
    assert (flat.open, flat.close, flat.volume) == ("0.44", "0.44", "0")
