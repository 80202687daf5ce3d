"""Recorded Binance payloads parse to expectations written by hand from the captures."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from venuefeed.models import BookDelta, BookLevel, Candle, TopOfBook, Trade
from venuefeed.venues.binance import parse
from venuefeed.venues.binance.parse import FrameError, Parser
from venuefeed.venues.binance.protocol import ControlReply

MS = 1_000_000


def _read(captures: Path, name: str) -> bytes:
    return (captures / "binance" / name).read_bytes()


def _combined(captures: Path, name: str, stream: str) -> bytes:
    """Wrap a bare event capture the way the combined stream delivers it."""
    data = msgspec.json.decode(_read(captures, name))
    return msgspec.json.encode({"stream": stream, "data": data})


def test_spot_trade_with_removed_order_ids(captures: Path) -> None:
    events = Parser().parse(_read(captures, "nautilus_it_ws_messages_ws_spot_trade.json"), 7)
    assert events == [
        Trade(
            venue="binance",
            instrument="ETHUSDT",
            ts_venue=1639351062243 * MS,
            ts_recv=7,
            trade_id="705291099",
            price="4149.74",
            size="0.4387",
            side="sell",  # m: true -> the buyer was the maker, the taker sold
        )
    ]


def test_spot_agg_trade_gets_prefixed_id(captures: Path) -> None:
    events = Parser().parse(_read(captures, "nautilus_it_ws_messages_ws_spot_agg_trade.json"), 1)
    assert events == [
        Trade(
            venue="binance",
            instrument="ETHUSDT",
            ts_venue=1675759520847 * MS,
            ts_recv=1,
            trade_id="a226532",
            price="1632.46",
            size="0.34305",
            side="buy",
        )
    ]


def test_spot_book_ticker_has_no_time(captures: Path) -> None:
    raw = _read(captures, "nautilus_it_streaming_ws_book_ticker_spot_original.json")
    assert Parser().parse(raw, 3) == [
        TopOfBook(
            venue="binance",
            instrument="ETHUSDT",
            ts_venue=0,
            ts_recv=3,
            bid_price="4507.24",
            bid_size="2.3595",
            ask_price="4507.25",
            ask_size="2.8457",
            sequence=12711621188,
        )
    ]


def test_depth_update_ignores_futures_pu(captures: Path) -> None:
    raw = _combined(
        captures, "nautilus_it_ws_messages_ws_futures_depth_update.json", "btcusdt@depth@100ms"
    )
    [delta] = Parser().parse(raw, 9)
    # Delta levels keep the venue's text (exact; the book and storage canonicalize).
    assert delta == BookDelta(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=1571889248277 * MS,
        ts_recv=9,
        bids=[
            BookLevel("7403.89", "0.002"),
            BookLevel("7403.90", "3.906"),
            BookLevel("7404.00", "1.428"),
            BookLevel("7404.85", "5.239"),
            BookLevel("7405.43", "2.562"),
        ],
        asks=[
            BookLevel("7405.96", "3.340"),
            BookLevel("7406.63", "4.525"),
            BookLevel("7407.08", "2.475"),
            BookLevel("7407.15", "4.800"),
            BookLevel("7407.20", "0.175"),
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
def test_kline(captures: Path, name: str, closed: bool, low: str) -> None:
    [candle] = Parser().parse(_combined(captures, name, "btcusdt@kline_1m"), 2)
    assert candle == Candle(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=1638747660000 * MS,
        ts_recv=2,
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


def test_text_frames_and_reordered_keys_parse_alike(captures: Path) -> None:
    raw = _read(captures, "nautilus_it_ws_messages_ws_spot_trade.json")
    doc = msgspec.json.decode(raw)
    reordered = msgspec.json.encode({"data": doc["data"], "stream": doc["stream"]})
    parser = Parser()
    assert parser.parse(raw.decode(), 1) == parser.parse(raw, 1) == parser.parse(reordered, 1)


def test_control_replies() -> None:
    parser = Parser()
    assert parser.parse(b'{"result":null,"id":1}', 0) == ControlReply(id=1)
    assert parser.parse(b'{"result":["btcusdt@trade"],"id":3}', 0) == ControlReply(
        id=3, result=["btcusdt@trade"]
    )
    error = parser.parse(b'{"code":2,"msg":"Invalid request: bad","id":4}', 0)
    assert error == ControlReply(id=4, code=2, msg="Invalid request: bad")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'{"stream":"btcusdt@depth@100ms","data":{', "malformed"),
        (b"not json", "malformed"),
        (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}', "malformed"),
        (b'{"stream":"btcusdt@ticker","data":{"e":"24hrTicker"}}', "unknown_stream"),
        (b'{"hello":1}', "unknown_message"),
    ],
)
def test_bad_frames_raise_frame_error(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        Parser().parse(frame, 0)
    assert info.value.reason == reason


def test_server_shutdown_notice_is_no_event() -> None:
    frame = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}'
    assert Parser().parse(frame, 0) == []


def test_stream_kind() -> None:
    assert parse.stream_kind("btcusdt@depth@100ms") == "depth"
    assert parse.stream_kind("btcusdt@depth") == "depth"
    assert parse.stream_kind("btcusdt@depth20@100ms") is None
    assert parse.stream_kind("btcusdt@kline_1m") == "kline"
    assert parse.stream_kind("btcusdt@aggTrade") == "aggTrade"
    assert parse.stream_kind("nonsense") is None


def test_rest_depth_snapshot(captures: Path) -> None:
    raw = _read(captures, "nautilus_it_http_responses_http_spot_market_depth.json")
    snap = parse.parse_depth_snapshot(raw, "BTCUSDT", 5)
    assert snap.sequence == 14527958487
    assert snap.bids[:2] == [BookLevel("60650", "0.00213"), BookLevel("60648.08", "0.06346")]
    assert snap.asks[0] == BookLevel("60650.01", "0.61982")
    assert snap.asks[-1] == BookLevel("60659.94", "0.9617")
    assert (len(snap.bids), len(snap.asks)) == (10, 10)


def test_rest_agg_trades(captures: Path) -> None:
    rows = parse.agg_trade_rows(
        _read(captures, "nautilus_it_http_responses_http_spot_market_agg_trades.json")
    )
    trades = parse.agg_trades_to_events(rows, "BTCUSDT", 0)
    assert len(trades) == 10
    assert trades[0] == Trade(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=1634944096633 * MS,
        ts_recv=0,
        trade_id="a966492862",
        price="60759.6",
        size="0.00841",
        side="buy",
    )
    assert trades[2].side == "sell"  # m: true
    assert trades[-1].trade_id == "a966492871"


def test_rest_trades(captures: Path) -> None:
    raw = _read(captures, "nautilus_it_http_responses_http_spot_market_trades.json")
    first, second = parse.parse_trades(raw, "BTCUSDT", 0)[:2]
    assert (first.trade_id, first.price, first.size, first.side) == (
        "1111468873",
        "60650",
        "0.02924",
        "sell",
    )
    assert first.ts_venue == 1634942949263 * MS
    assert (second.trade_id, second.side) == ("1111468874", "buy")


def test_rest_klines(captures: Path) -> None:
    raw = _read(captures, "nautilus_it_http_responses_http_spot_market_klines.json")
    candles = parse.parse_klines(raw, "BTCUSDT", "1m", 0, now_ms=1634944379999)
    assert candles[0] == Candle(
        venue="binance",
        instrument="BTCUSDT",
        ts_venue=1634943839999 * MS,
        ts_recv=0,
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
    assert candles[-1].closed is False  # still open at now_ms


def test_rest_time_and_exchange_info(captures: Path) -> None:
    assert (
        parse.parse_server_time(
            _read(captures, "nautilus_it_http_responses_http_spot_market_time.json")
        )
        == 1633835466289 * MS
    )
    info = parse.parse_exchange_info(
        _read(captures, "nautilus_it_http_responses_http_spot_market_exchange_info.json")
    )
    assert [s.symbol for s in info.symbols] == ["BTCUSDT", "ETHUSDT"]
    weight = next(r for r in info.rateLimits if r.rateLimitType == "REQUEST_WEIGHT")
    assert weight.limit == 1200  # the 2021 capture; today's limit is 6000


def test_error_body() -> None:
    error = parse.parse_error(b'{"code":-1121,"msg":"Invalid symbol."}')
    assert error is not None and (error.code, error.msg) == (-1121, "Invalid symbol.")
    assert parse.parse_error(b"<html>") is None
