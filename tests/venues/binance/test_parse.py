"""Recorded Binance payloads parse to expectations written by hand, and bad input is counted.

Each capture is parsed at the receive time its ``captures.toml`` gives; the
complete output of every capture is also pinned by the conformance harness.
"""

from __future__ import annotations

import msgspec
import pytest

from tests.venues.captures import capture, load
from venuefeed.models import BookDelta, BookLevel, Candle, Event, TopOfBook, Trade
from venuefeed.venues.binance import parse
from venuefeed.venues.rejects import Rejects

MS = 1_000_000
RECV = 1_700_000_001_000 * MS
"""One second after the hand-written frames' venue time (1_700_000_000_000 ms)."""


def frame(data: bytes | str, ts_recv: int = RECV) -> tuple[list[Event], dict[str, int]]:
    rejects = Rejects("binance")
    return parse.parse_frame(data, ts_recv, rejects), rejects.counts


def payload(name: str) -> tuple[bytes, int]:
    ((data, ts_recv),) = capture("binance", name).payloads
    return data, ts_recv


def trade_frame(**data: object) -> bytes:
    event = {"e": "trade", "E": 1_700_000_000_001, "s": "BTCUSDT", "t": 1, "p": "100.10",
             "q": "0.5", "T": 1_700_000_000_000, "m": True, **data}  # fmt: skip
    return msgspec.json.encode({"stream": "btcusdt@trade", "data": event})


def test_spot_trade_with_removed_order_ids() -> None:
    data, recv = payload("nautilus_it_ws_messages_ws_spot_trade.json")
    assert frame(data, recv) == (
        [
            Trade(
                venue="binance",
                instrument="ETHUSDT",
                ts_venue=1639351062243 * MS,
                ts_recv=recv,
                trade_id="705291099",
                price="4149.74",
                size="0.4387",
                side="sell",  # m: true -> the buyer was the maker, the taker sold
            )
        ],
        {},
    )


def test_spot_agg_trade_gets_prefixed_id() -> None:
    data, recv = payload("nautilus_it_ws_messages_ws_spot_agg_trade.json")
    (trade,), _ = frame(data, recv)
    assert trade == Trade(
        venue="binance",
        instrument="ETHUSDT",
        ts_venue=1675759520847 * MS,
        ts_recv=recv,
        trade_id="a226532",
        price="1632.46",
        size="0.34305",
        side="buy",
    )


def test_spot_book_ticker_has_no_time() -> None:
    data, recv = payload("nautilus_it_streaming_ws_book_ticker_spot_original.json")
    (quote,), _ = frame(data, recv)
    assert quote == TopOfBook(
        venue="binance",
        instrument="ETHUSDT",
        ts_venue=0,
        ts_recv=recv,
        bid_price="4507.24",
        bid_size="2.3595",
        ask_price="4507.25",
        ask_size="2.8457",
        sequence=12711621188,
    )


def test_empty_book_ticker_side_is_none() -> None:
    event = {"u": 1, "s": "BTCUSDT", "b": "0.00000000", "B": "0.00000000", "a": "60000.10",
             "A": "1.50000000"}  # fmt: skip
    (quote,), _ = frame(msgspec.json.encode({"stream": "btcusdt@bookTicker", "data": event}))
    assert isinstance(quote, TopOfBook)
    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (
        None,
        None,
        "60000.1",
        "1.5",
    )


def test_depth_update_levels_are_canonical_and_futures_pu_ignored() -> None:
    data, recv = capture(
        "binance", "nautilus_it_ws_messages_ws_futures_depth_update.json"
    ).payloads[0]
    [delta], _ = frame(data, recv)
    assert delta == BookDelta(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=1571889248277 * MS,
        ts_recv=recv,
        bids=[
            BookLevel("7403.89", "0.002"),
            BookLevel("7403.9", "3.906"),
            BookLevel("7404", "1.428"),
            BookLevel("7404.85", "5.239"),
            BookLevel("7405.43", "2.562"),
        ],
        asks=[
            BookLevel("7405.96", "3.34"),
            BookLevel("7406.63", "4.525"),
            BookLevel("7407.08", "2.475"),
            BookLevel("7407.15", "4.8"),
            BookLevel("7407.2", "0.175"),
        ],
        sequence=390497878,
        first_sequence=390497796,
    )


@pytest.mark.parametrize(
    ("name", "closed", "low"),
    [
        ("nautilus_crate_futures_market_data_json_kline_stream_closed.json", True, "0.001"),
        ("nautilus_crate_futures_market_data_json_kline_stream_open.json", False, "0.0015"),
    ],
)
def test_kline(name: str, closed: bool, low: str) -> None:
    data, recv = payload(name)
    [candle], _ = frame(data, recv)
    assert candle == Candle(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=1638747660000 * MS,
        ts_recv=recv,
        interval="1m",
        open_time=1638747660000 * MS,
        close_time=1638747719999 * MS,
        open="0.001",
        high="0.0025",
        low=low,
        close="0.002",
        volume="1000",
        trades=100,
        closed=closed,
    )


def test_text_frames_and_reordered_keys_parse_alike() -> None:
    raw, recv = payload("nautilus_it_ws_messages_ws_spot_trade.json")
    doc = msgspec.json.decode(raw)
    reordered = msgspec.json.encode({"data": doc["data"], "stream": doc["stream"]})
    assert frame(raw.decode(), recv) == frame(raw, recv) == frame(reordered, recv)


def test_control_replies_yield_nothing_and_errors_are_counted() -> None:
    assert frame(b'{"result":null,"id":1}') == ([], {})
    assert frame(b'{"result":["btcusdt@trade"],"id":3}') == ([], {})
    assert frame(b'{"code":2,"msg":"Invalid request: bad","id":4}') == ([], {"control_error": 1})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"stream":"btcusdt@depth@100ms","data":{', "malformed"),
        (b"not json", "malformed"),
        (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}', "malformed"),
        (b'{"stream":"btcusdt@ticker","data":{"e":"24hrTicker"}}', "unknown_stream"),
        (b'{"hello":1}', "unknown_message"),
        (b'{"stream":"btcusdt@trade","data":{"s":"\xff"}}', "malformed"),
        (b"[" * 50_000 + b"]" * 50_000, "malformed"),
    ],
)
def test_bad_frames_are_counted_never_raised(data: bytes, reason: str) -> None:
    assert frame(data) == ([], {reason: 1})


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("p", "NaN", "invalid_price"),
        ("p", "-100.1", "invalid_price"),
        ("p", " 100.1", "invalid_price"),
        ("p", "１００", "invalid_price"),
        ("p", "1e5", "invalid_price"),
        ("q", "", "invalid_size"),
        ("q", "-0.5", "invalid_size"),
        ("q", "inf", "invalid_size"),
        ("T", 1_700_000_000, "timestamp_out_of_window"),  # seconds read as ms: 1970
        ("T", -1, "timestamp_out_of_window"),
    ],
)
def test_a_value_that_fails_its_check_is_a_counted_rejection(
    field: str, value: object, reason: str
) -> None:
    assert frame(trade_frame(**{field: value})) == ([], {reason: 1})


def test_a_depth_update_with_a_bad_level_is_refused_whole() -> None:
    event = {"e": "depthUpdate", "E": 1_700_000_000_000, "s": "BTCUSDT", "U": 5, "u": 7,
             "b": [["100.0", "1.0"], ["99.0", "NaN"]], "a": []}  # fmt: skip
    data = msgspec.json.encode({"stream": "btcusdt@depth@100ms", "data": event})
    # The stream's sequence check (U == previous u + 1) then resynchronises the book.
    assert frame(data) == ([], {"invalid_size": 1})


def test_server_shutdown_notice_is_no_event() -> None:
    data = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}'
    assert frame(data) == ([], {})


def test_stream_kind() -> None:
    assert parse.stream_kind("btcusdt@depth@100ms") == "depth"
    assert parse.stream_kind("btcusdt@depth") == "depth"
    assert parse.stream_kind("btcusdt@depth20@100ms") is None
    assert parse.stream_kind("btcusdt@kline_1m") == "kline"
    assert parse.stream_kind("btcusdt@aggTrade") == "aggTrade"
    assert parse.stream_kind("nonsense") is None


# -- REST ------------------------------------------------------------------------------


def test_rest_depth_snapshot() -> None:
    data, recv = payload("nautilus_it_http_responses_http_spot_market_depth.json")
    snap = parse.parse_book(data, "BTCUSDT", recv, Rejects("binance"))
    assert snap is not None
    assert snap.sequence == 14527958487
    assert snap.bids[:2] == [BookLevel("60650", "0.00213"), BookLevel("60648.08", "0.06346")]
    assert snap.asks[0] == BookLevel("60650.01", "0.61982")
    assert snap.asks[-1] == BookLevel("60659.94", "0.9617")
    assert (len(snap.bids), len(snap.asks)) == (10, 10)


def test_a_crossed_rest_snapshot_is_refused() -> None:
    doc = load("binance", "nautilus_it_http_responses_http_spot_market_depth.json")
    doc["bids"][0][0] = "60700.00000000"  # above the best ask 60650.01
    rejects = Rejects("binance")
    assert parse.parse_book(msgspec.json.encode(doc), "BTCUSDT", RECV, rejects) is None
    assert rejects.counts == {"crossed_book": 1}


def test_rest_agg_trades_page_keeps_every_row_for_paging() -> None:
    data, recv = payload("nautilus_it_http_responses_http_spot_market_agg_trades.json")
    page = parse.parse_trades_page(data, "BTCUSDT", recv, Rejects("binance"))
    assert page is not None
    assert len(page.trades) == len(page.rows) == 10
    assert page.trades[0] == Trade(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=1634944096633 * MS,
        ts_recv=recv,
        trade_id="a966492862",
        price="60759.6",
        size="0.00841",
        side="buy",
    )
    assert page.trades[2].side == "sell"  # m: true
    assert page.trades[-1].trade_id == "a966492871"
    assert page.rows[-1][0] == 966492871


def test_a_bad_agg_trade_row_is_refused_but_still_paged() -> None:
    doc = load("binance", "nautilus_it_http_responses_http_spot_market_agg_trades.json")
    doc[-1]["p"] = "-1"
    doc[0]["q"] = 5  # a number where the venue sends a string
    rejects = Rejects("binance")
    page = parse.parse_trades_page(msgspec.json.encode(doc), "BTCUSDT", RECV, rejects)
    assert page is not None
    assert len(page.trades) == 8 and len(page.rows) == 10
    assert page.rows[-1][0] == 966492871  # the walk goes on after the refused row
    assert rejects.counts == {"invalid_price": 1, "malformed_aggTrades_row": 1}


def test_rest_recent_trades() -> None:
    data, recv = payload("nautilus_it_http_responses_http_spot_market_trades.json")
    trades = parse.parse_recent_trades(data, "BTCUSDT", recv, Rejects("binance"))
    assert trades is not None
    first, second = trades[:2]
    assert (first.trade_id, first.price, first.size, first.side) == (
        "1111468873",
        "60650",
        "0.02924",
        "sell",
    )
    assert first.ts_venue == 1634942949263 * MS
    assert (second.trade_id, second.side) == ("1111468874", "buy")


def test_rest_klines() -> None:
    data, recv = payload("nautilus_it_http_responses_http_spot_market_klines.json")
    page = parse.parse_candles(data, "BTCUSDT", "1m", recv, Rejects("binance"))
    assert page is not None
    candles = page.candles
    assert candles[0] == Candle(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=1634943839999 * MS,
        ts_recv=recv,
        interval="1m",
        open_time=1634943780000 * MS,
        close_time=1634943839999 * MS,
        open="60685.22",
        high="60729.84",
        low="60670.9",
        close="60719.27",
        volume="21.63272",
        trades=617,
        closed=True,
    )
    assert candles[-1].open_time == 1634944320000 * MS
    assert candles[-1].closed is False  # still open at the receive time
    assert page.open_times == [c.open_time // MS for c in candles]


def test_rest_time_and_exchange_info() -> None:
    data, _ = payload("nautilus_it_http_responses_http_spot_market_time.json")
    assert parse.parse_server_time(data, Rejects("binance")) == 1633835466289 * MS
    data, _ = payload("nautilus_it_http_responses_http_spot_market_exchange_info.json")
    info = parse.parse_exchange_info(data, Rejects("binance"))
    assert info is not None
    assert [s.symbol for s in info.symbols] == ["BTCUSDT", "ETHUSDT"]
    weight = next(r for r in info.rateLimits if r.rateLimitType == "REQUEST_WEIGHT")
    assert weight.limit == 1200  # the 2021 capture; today's limit is 6000


@pytest.mark.parametrize("body", [b"<html>", b"", b'{"lastUpdateId": 1}', b"\xff"])
def test_a_body_that_is_not_the_documented_shape_is_none(body: bytes) -> None:
    rejects = Rejects("binance")
    assert parse.parse_book(body, "BTCUSDT", RECV, rejects) is None
    assert parse.parse_trades_page(body, "BTCUSDT", RECV, rejects) is None
    assert parse.parse_candles(body, "BTCUSDT", "1m", RECV, rejects) is None
    assert parse.parse_server_time(body, rejects) is None
    assert rejects.counts == {"malformed": 4}


def test_error_body() -> None:
    error = parse.parse_error(b'{"code":-1121,"msg":"Invalid symbol."}')
    assert error is not None and (error.code, error.msg) == (-1121, "Invalid symbol.")
    assert parse.parse_error(b"<html>") is None
