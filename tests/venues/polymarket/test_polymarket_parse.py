"""Polymarket captures parse into the canonical events written here by hand; bad input is counted.

Expectations come from reading the capture files, not from the parser: best
levels of a book go first whatever order the file has, ``"0.50"`` becomes
``"0.5"``, millisecond strings become ns, and frames that are not market-channel
data (user channel, RTDS) are counted as rejected, never raised. Each capture is
parsed at the receive time its ``captures.toml`` gives; the complete output of
every capture is also pinned by the conformance harness.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from typing import Any

import pytest

from tests.venues.captures import capture, load, read
from venuefeed.book import Inconsistency
from venuefeed.models import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    Market,
    MarketStatus,
    MarketStatusChange,
    Outcome,
    TopOfBook,
    Trade,
)
from venuefeed.venues.polymarket import parse
from venuefeed.venues.polymarket.protocol import BookSummary
from venuefeed.venues.rejects import Rejects

MS = 1_000_000
T0 = 1_729_000_120_123
"""The venue time (ms) of the hand-written frames below."""
RECV = (T0 + 1000) * MS
TOK_A = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
MKT_A = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"


def L(price: str, size: str) -> BookLevel:
    return BookLevel(price, size)


def frame(data: bytes | str, ts_recv: int = RECV) -> tuple[list[parse.Item], dict[str, int]]:
    rejects = Rejects("polymarket")
    return parse.parse_frame(data, ts_recv, rejects), rejects.counts


def captured(name: str) -> tuple[list[parse.Item], dict[str, int], int]:
    """A frame capture parsed at its manifest's receive time."""
    ((data, ts_recv),) = capture("polymarket", name, "frame").payloads
    items, counts = frame(data, ts_recv)
    return items, counts, ts_recv


def change(**item: Any) -> bytes:
    base = {"asset_id": "9", "price": "0.40", "size": "10", "side": "BUY", "hash": "h",
            "best_bid": "0.4", "best_ask": "0.6"}  # fmt: skip
    return json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(T0),
                       "price_changes": [{**base, **item}]}).encode()  # fmt: skip


def test_ws_book_message() -> None:
    items, rejected, recv = captured("nautilus_crate_ws_market_book_msg.json")
    assert rejected == {}
    assert items == [
        BookSnapshot(
            venue="polymarket",
            instrument=TOK_A,
            ts_venue=1703875200000 * MS,
            ts_recv=recv,
            bids=[L("0.5", "200"), L("0.49", "350")],
            asks=[L("0.51", "150"), L("0.52", "250")],
        )
    ]


def test_ws_price_change_current_shape() -> None:
    ((item,), _, recv) = captured("nautilus_crate_ws_market_price_change_msg.json")
    assert item == parse.Change(
        BookDelta(
            venue="polymarket",
            instrument=TOK_A,
            ts_venue=1703875201000 * MS,
            ts_recv=recv,
            bids=[L("0.51", "150")],
            asks=[],
            checksum="0xhash001",
        ),
        "0.51",
        "0.52",
    )


def test_ws_price_change_oldest_flat_shape() -> None:
    items, rejected, recv = captured("nautilus_it_ws_messages_price_change.json")
    assert rejected == {}
    assert items == [
        parse.Change(
            BookDelta(
                venue="polymarket",
                instrument="48331043336612883890938759509493159234755048973500640148014422747788308965732",
                ts_venue=1723967931411 * MS,
                ts_recv=recv,
                bids=[],
                asks=[L("0.514", "21574.08")],
                checksum="bf32b3746fff40c76c98021b7f3f07261169dd26",
            ),
            None,
            None,
        )
    ]


def test_ws_price_change_legacy_changes_shape() -> None:
    # No capture of the Sept-2025-to-migration shape exists; this is the documented layout.
    data = (
        b'{"event_type":"price_change","asset_id":"9","market":"0xm","hash":"h1",'
        b'"timestamp":"1729000120123","changes":[{"price":"0.40","side":"BUY","size":"10"},'
        b'{"price":"0.60","side":"SELL","size":"0"}]}'
    )
    assert frame(data) == (
        [
            parse.Change(
                BookDelta(
                    venue="polymarket",
                    instrument="9",
                    ts_venue=T0 * MS,
                    ts_recv=RECV,
                    bids=[L("0.4", "10")],
                    asks=[L("0.6", "0")],
                    checksum="h1",
                ),
                None,
                None,
            )
        ],
        {},
    )


def test_ws_last_trade_price() -> None:
    items, _, recv = captured("nautilus_crate_ws_market_last_trade_msg.json")
    expected_id = parse.trade_id(TOK_A, "buy", "25", "0.51", "", 1703875202000)
    assert items == [
        Trade(
            venue="polymarket",
            instrument=TOK_A,
            ts_venue=1703875202000 * MS,
            ts_recv=recv,
            trade_id=expected_id,
            price="0.51",
            size="25",
            side="buy",
            market_id=MKT_A,
        )
    ]


def test_ws_tick_size_changes() -> None:
    synthetic, _, recv_s = captured("nautilus_crate_ws_market_tick_size_msg.json")
    real, _, recv_r = captured("nautilus_it_ws_messages_tick_size_change.json")
    assert synthetic == [
        parse.TickSize(
            MarketStatusChange(
                venue="polymarket",
                instrument=TOK_A,
                ts_venue=1703875210000 * MS,
                ts_recv=recv_s,
                status=MarketStatus.OPEN,
                previous=MarketStatus.OPEN,
                detail="tick_size 0.1 -> 0.01",
            )
        )
    ]
    assert real == [
        parse.TickSize(
            MarketStatusChange(
                venue="polymarket",
                instrument="115474063863764126958837769719736461272619491980773624567012766320777398670353",
                ts_venue=1739068041853 * MS,
                ts_recv=recv_r,
                status=MarketStatus.OPEN,
                previous=MarketStatus.OPEN,
                detail="tick_size 0.01 -> 0.001",
            )
        )
    ]


def test_ws_best_bid_ask() -> None:
    items, _, recv = captured("nautilus_crate_ws_market_best_bid_ask_msg.json")
    assert items == [
        TopOfBook(
            venue="polymarket",
            instrument="85354956062430465315924116860125388538595433819574542752031640332592237464430",
            ts_venue=1766789469958 * MS,
            ts_recv=recv,
            bid_price="0.73",
            bid_size=None,
            ask_price="0.77",
            ask_size=None,
        )
    ]


@pytest.mark.parametrize(("bid", "ask"), [("0", "1"), ("", ""), (None, None)])
def test_an_empty_best_bid_ask_side_is_none(bid: str | None, ask: str | None) -> None:
    msg: dict[str, Any] = {"event_type": "best_bid_ask", "market": "0xm", "asset_id": "9",
                           "timestamp": str(T0), "best_bid": bid, "best_ask": ask}  # fmt: skip
    ([top], _) = frame(json.dumps({k: v for k, v in msg.items() if v is not None}))
    assert isinstance(top, TopOfBook)
    assert (top.bid_price, top.ask_price) == (None, None)


YES = "76043073756653678226373981964075571318267289248134717369284518995922789326425"
NO = "31690934263385727664202099278545688007799199447969475608906331829650099442770"


def test_ws_market_resolved() -> None:
    items, _, recv = captured("nautilus_crate_ws_market_resolved_msg.json")
    ts = 1766790415550 * MS
    assert items == [
        MarketStatusChange(
            venue="polymarket", instrument=YES, ts_venue=ts, ts_recv=recv,
            status=MarketStatus.RESOLVED, detail="won (Yes)",
        ),
        MarketStatusChange(
            venue="polymarket", instrument=NO, ts_venue=ts, ts_recv=recv,
            status=MarketStatus.RESOLVED, detail="lost (winner Yes)",
        ),
    ]  # fmt: skip


def test_ws_new_market_is_metadata() -> None:
    (market,), _, _ = captured("nautilus_crate_ws_market_new_market_msg.json")
    assert isinstance(market, Market)
    assert market.market_id == "0x311d0c4b6671ab54af4970c06fcf58662516f5168997bdda209ec3db5aa6b0c1"
    assert market.title == "Will NVIDIA (NVDA) close above $240 end of January?"
    assert market.slug == "nvda-above-240-on-january-30-2026"
    assert market.outcomes == (Outcome("Yes", YES), Outcome("No", NO))
    assert market.event_id == "125819"
    assert market.tick_size == "0.01"
    assert market.category == "stocks"
    assert market.status is MarketStatus.OPEN
    assert market.rules.startswith('This market will resolve to "Yes" if the official closing')


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("nautilus_it_ws_messages_order_cancel.json", "unknown_event_type"),
        ("nautilus_it_ws_messages_order_placement.json", "unknown_event_type"),
        ("nautilus_it_ws_messages_user_trade1.json", "unknown_event_type"),
        ("nautilus_it_ws_messages_trades.json", "invalid_fields"),  # no event_type at all
        ("nautilus_crate_rtds_crypto_prices_update.json", "invalid_fields"),
        ("nautilus_crate_rtds_crypto_prices_subscribe.json", "invalid_fields"),
    ],
)
def test_frames_of_other_channels_are_counted_not_raised(name: str, reason: str) -> None:
    items, rejected, _ = captured(name)
    assert items == []
    assert rejected == {reason: 1}


def test_array_frame_keeps_good_elements_next_to_bad_ones() -> None:
    ((book, recv),) = capture("polymarket", "nautilus_crate_ws_market_book_msg.json").payloads
    bad = b'{"event_type":"surprise","x":1}'
    broken = b'{"event_type":"book","asset_id":"1"}'
    items, counts = frame(b"[" + book + b"," + bad + b"," + broken + b"," + book + b"]", recv)
    assert [type(e) for e in items] == [BookSnapshot, BookSnapshot]
    assert counts == {"unknown_event_type": 1, "invalid_fields": 1}
    for notice in (b"PONG", b"NO NEW ASSETS", b"", b"  "):
        assert frame(notice) == ([], {})
    for broken_json in (b'{"event_type": "book", ', b"[\xff]", b"[" * 100_000):
        assert frame(broken_json) == ([], {"malformed_json": 1})
    assert frame(b"INVALID MESSAGE") == ([], {"not_json": 1})
    assert frame(b'{"event_type":"book","asset_id":"\xff"}') == ([], {"invalid_fields": 1})


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"price": "1.5"}, "invalid_price"),  # a probability above 1
        ({"price": "-0.4"}, "invalid_price"),
        ({"price": "NaN"}, "invalid_price"),
        ({"price": " 0.4"}, "invalid_price"),
        ({"price": "０.４"}, "invalid_price"),
        ({"size": "-10"}, "invalid_size"),
        ({"size": "1e3"}, "invalid_size"),
        ({"size": ""}, "invalid_size"),
        ({"best_bid": "x"}, "invalid_price"),
        ({"side": "HOLD"}, "invalid_fields"),
    ],
)
def test_a_refused_change_loses_its_asset_so_the_stream_reloads_it(
    item: dict[str, str], reason: str
) -> None:
    assert frame(change(**item)) == ([parse.Lost("9", Inconsistency.REJECTED)], {reason: 1})


@pytest.mark.parametrize("timestamp", ["1.5", "-1", "", " 1729000120123", "1729000120", "0"])
def test_a_bad_timestamp_refuses_the_message(timestamp: str) -> None:
    data = change().replace(f'"timestamp": "{T0}"'.encode(), f'"timestamp": "{timestamp}"'.encode())
    items, counts = frame(data)
    assert items == [parse.Lost("9", Inconsistency.REJECTED)]
    assert (
        set(counts) <= {"invalid_timestamp", "timestamp_out_of_window"}
        and sum(counts.values()) == 1
    )


def test_one_bad_asset_does_not_cost_the_other_assets_of_the_change() -> None:
    good = {"asset_id": "7", "price": "0.30", "size": "5", "side": "SELL", "hash": "g"}
    doc = json.loads(change(size="abc"))
    doc["price_changes"].append(good)
    items, counts = frame(json.dumps(doc))
    assert counts == {"invalid_size": 1}
    assert [type(i) for i in items] == [parse.Change, parse.Lost]
    assert isinstance(items[0], parse.Change) and items[0].delta.asks == [L("0.3", "5")]


def test_a_crossed_book_is_refused_and_reloaded_not_published() -> None:
    msg = json.loads(read("polymarket", "nautilus_crate_ws_market_book_msg.json"))
    msg["timestamp"] = str(T0)
    msg["bids"].append({"price": "0.60", "size": "1"})  # above the best ask 0.51
    assert frame(json.dumps(msg)) == (
        [parse.Lost(TOK_A, Inconsistency.CROSSED)],
        {"crossed_book": 1},
    )


# -- REST captures ------------------------------------------------------------------


def test_clob_book_response_top_n_best_first() -> None:
    ((body, recv),) = capture(
        "polymarket", "nautilus_crate_clob_book_response.json", "book"
    ).payloads
    snap = parse.parse_book(body, recv, Rejects("polymarket"), depth=2)
    assert snap == BookSnapshot(
        venue="polymarket",
        instrument="12345678901234567890",
        ts_venue=1703875200000 * MS,
        ts_recv=recv,
        bids=[L("0.5", "150"), L("0.49", "200")],
        asks=[L("0.51", "120"), L("0.52", "180")],
        checksum="0xabc123",
    )
    # The synthetic capture's "0xabc123" is not a real digest: the check says mismatch.
    (summary,) = parse.parse_books(b"[" + body + b"]", Rejects("polymarket")) or []
    assert parse.book_hash(summary) != summary.hash


def test_book_hash_is_the_official_clients_algorithm() -> None:
    summary = BookSummary(
        market="0xm", asset_id="1", timestamp="5", hash="ignored",
        bids=[], asks=[], min_order_size="5", tick_size="0.01", neg_risk=False,
        last_trade_price="0.5",
    )  # fmt: skip
    text = (
        '{"market":"0xm","asset_id":"1","timestamp":"5","hash":"","bids":[],"asks":[],'
        '"min_order_size":"5","tick_size":"0.01","neg_risk":false,"last_trade_price":"0.5"}'
    )
    assert parse.book_hash(summary) == hashlib.sha1(text.encode()).hexdigest()


def test_data_api_trades() -> None:
    ((body, recv),) = capture("polymarket", "nautilus_crate_data_api_trades_response.json").payloads
    trades = parse.parse_trades_page(body, recv, Rejects("polymarket"))
    assert trades is not None
    asset = "71321045863084981365469005770620412523470745398083994982746259498689308907982"
    cond = "0xc8f1cf5d4f26e0fd9c8fe89f2a7b3263b902cf14fde7bfccef525753bb492e47"
    tx0 = "0xabc123def456789012345678901234567890abcdef1234567890abcdef123456"
    assert trades[0] == Trade(
        venue="polymarket",
        instrument=asset,
        ts_venue=1710000000 * 10**9,
        ts_recv=recv,
        trade_id=parse.trade_id(asset, "buy", "100", "0.55", tx0),
        price="0.55",
        size="100",
        side="buy",
        market_id=cond,
        taker="0x1111111111111111111111111111111111111111",
    )
    assert trades[1] is not None and (trades[1].side, trades[1].price, trades[1].size) == (
        "sell",
        "0.53",
        "50",
    )
    assert (
        trades[2] is not None and trades[2].instrument.startswith("9999") and trades[2].size == "75"
    )


def test_a_bad_data_api_row_keeps_its_place_for_the_offset_pager() -> None:
    rows = load("polymarket", "nautilus_crate_data_api_trades_response.json")
    rows[0]["price"] = 1.5  # not a probability
    rows[1]["size"] = "many"  # not even a number
    rejects = Rejects("polymarket")
    trades = parse.parse_trades_page(json.dumps(rows).encode(), 1710000001 * 10**9, rejects)
    assert trades is not None and len(trades) == len(rows)
    assert trades[0] is None and trades[1] is None and trades[2] is not None
    assert rejects.counts == {"invalid_price": 1, "invalid_trade_item": 1}


def test_ws_print_and_data_api_row_of_one_trade_share_an_id() -> None:
    ws = (
        b'{"event_type":"last_trade_price","asset_id":"77","market":"0xm","price":"0.520",'
        b'"side":"SELL","size":"94.370","fee_rate_bps":"0","timestamp":"1729000120123",'
        b'"transaction_hash":"0xABC"}'
    )
    row = (
        b'[{"proxyWallet":"0x1","side":"SELL","asset":"77","conditionId":"0xm","size":94.37,'
        b'"price":0.52,"timestamp":1729000120,"transactionHash":"0xabc"}]'
    )
    ([live], _) = frame(ws)
    (rest,) = parse.parse_trades_page(row, RECV, Rejects("polymarket")) or [None]
    assert isinstance(live, Trade) and rest is not None
    assert live.trade_id == rest.trade_id


def test_price_history_to_candles() -> None:
    found = capture("polymarket", "nautilus_it_http_responses_price_history.json")
    ((body, recv),) = found.payloads
    bars = parse.parse_candles(body, "tok", 300, recv, Rejects("polymarket"))
    assert bars is not None
    # Points every 60 s from 1729000000 (= 1728999900 + 100): buckets of 300 s hold
    # t+0..180 (0.51 0.52 0.53 0.52), t+240..480 (0.51 0.50 0.51 0.52 0.53), t+540 (0.54).
    assert [(b.open_time // 10**9, b.open, b.high, b.low, b.close) for b in bars] == [
        (1728999900, "0.51", "0.53", "0.51", "0.52"),
        (1729000200, "0.51", "0.53", "0.5", "0.53"),
        (1729000500, "0.54", "0.54", "0.54", "0.54"),
    ]
    assert all(b.interval == "5m" and b.volume == "0" for b in bars)


UP = "104239898038807136052399800151408521467737075933964991162589336683346093173875"
DOWN = "71183960810705820955071415844881728181970340514894896943812046065452395013351"


def markets(*docs: dict[str, Any]) -> list[Market | None]:
    page = parse.parse_markets_page(json.dumps(list(docs)).encode(), Rejects("polymarket"))
    assert page is not None
    return page


def test_gamma_market_decodes_strings_inside_json() -> None:
    (market,) = markets(load("polymarket", "nautilus_crate_gamma_market.json"))
    assert market == Market(
        venue="polymarket",
        market_id="0x78443f961b9a65869dcb39359de9960165c7e5cbad0904eac7f29cd77872a63b",
        title="Bitcoin Up or Down - March 12, 5:20AM-5:25AM ET",
        event_id="260654",
        slug="btc-updown-5m-1773307200",
        rules=market.rules,
        outcomes=(
            Outcome("Up", UP, "0.505"),
            Outcome("Down", DOWN, "0.495"),
        ),
        status=MarketStatus.OPEN,
        open_time=1773221341328428000,
        close_time=calendar.timegm((2026, 3, 12, 9, 25, 0)) * 10**9,
        tick_size="0.01",
        min_size="5",
        category=None,
        raw_hash=market.raw_hash,
    )  # fmt: skip
    assert market.rules.startswith('This market will resolve to "Up"')
    assert market.rules.endswith("Resolution source: https://data.chain.link/streams/btc-usd")


def test_gamma_closed_market_is_resolved() -> None:
    (market,) = markets(
        load("polymarket", "nautilus_crate_gamma_market_closed_binary_accepting_true.json")
    )
    assert market is not None
    assert market.status is MarketStatus.RESOLVED
    assert [o.price for o in market.outcomes] == ["1", "0"]
    assert market.close_time == calendar.timegm((2027, 12, 31, 0, 0, 0)) * 10**9


def test_one_odd_gamma_market_costs_that_market_not_the_page() -> None:
    good = load("polymarket", "nautilus_crate_gamma_market.json")
    odd_price = dict(good, outcomePrices='["1.7", "-0.7"]')
    odd_type = dict(good, question=["not", "a", "string"])
    rejects = Rejects("polymarket")
    page = parse.parse_markets_page(json.dumps([good, odd_price, odd_type, good]).encode(), rejects)
    assert page is not None
    assert [m is not None for m in page] == [True, False, False, True]  # one entry per market sent
    assert rejects.counts == {"invalid_price": 1, "invalid_market_item": 1}


def test_gamma_event_nests_markets_with_category() -> None:
    ((body, _),) = capture("polymarket", "nautilus_crate_gamma_event.json").payloads
    (found,) = parse.parse_events_page(body, Rejects("polymarket")) or []
    assert [m.market_id[:10] for m in found] == ["0xc8f1cf5d", found[1].market_id[:10]]
    assert {m.event_id for m in found} == {"30829"}
    assert {m.category for m in found} == {"World Elections"}
    assert found[0].tick_size == "0.001"
    assert [o.price for o in found[0].outcomes] == ["0.0105", "0.9895"]
    assert found[0].close_time == calendar.timegm((2028, 11, 7, 0, 0, 0)) * 10**9


def test_market_version_hash_follows_terms_not_prices() -> None:
    doc = load("polymarket", "nautilus_crate_gamma_market.json")
    moved = dict(doc, outcomePrices='["0.6", "0.4"]', volume="123", volumeNum=123.0)
    reworded = dict(doc, description=doc["description"] + " Clarification: ...")
    base, same, other = markets(doc, moved, reworded)
    assert base is not None and same is not None and other is not None
    assert same.raw_hash == base.raw_hash
    assert other.raw_hash != base.raw_hash


@pytest.mark.parametrize("body", [b"<html>", b"", b"{}", b"\xff"])
def test_a_body_that_is_not_the_documented_shape_is_none(body: bytes) -> None:
    rejects = Rejects("polymarket")
    assert parse.parse_book(body, RECV, rejects) is None
    assert parse.parse_books(body, rejects) is None
    assert parse.parse_markets_page(body, rejects) is None
    assert parse.parse_trades_page(body, RECV, rejects) is None
    assert parse.parse_candles(body, "tok", 60, RECV, rejects) is None
    assert sum(rejects.counts.values()) == 5


def test_prices_come_out_canonical() -> None:
    ([top], _) = frame(
        f'{{"event_type":"best_bid_ask","market":"m","asset_id":"9","timestamp":"{T0}",'
        '"best_bid":"0.1000","best_ask":"0.3"}'
    )
    assert isinstance(top, TopOfBook) and (top.bid_price, top.ask_price) == ("0.1", "0.3")


def test_a_quiet_books_old_snapshot_is_kept_but_an_old_trade_is_refused() -> None:
    month_ago = str(T0 - 30 * 86_400_000)
    msg = json.loads(read("polymarket", "nautilus_crate_ws_market_book_msg.json"))
    msg["timestamp"] = month_ago  # a book's time is its last change
    ([snap], counts) = frame(json.dumps(msg))
    assert isinstance(snap, BookSnapshot) and counts == {}
    trade = {"event_type": "last_trade_price", "asset_id": "9", "market": "0xm", "price": "0.5",
             "size": "1", "side": "BUY", "timestamp": month_ago}  # fmt: skip
    assert frame(json.dumps(trade)) == ([], {"timestamp_out_of_window": 1})
