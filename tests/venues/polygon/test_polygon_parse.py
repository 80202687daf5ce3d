"""Polygon parsing: expectations written by hand from the captures, and the boundary checks.

Each capture is parsed at the receive time its ``captures.toml`` gives; the
complete parser output of every capture is also pinned by the conformance
harness (``tests/venues/test_conformance.py``).
"""

from __future__ import annotations

import json

import pytest

from tests.venues.captures import capture, load
from venuefeed.models import Candle, Event, TopOfBook, Trade
from venuefeed.venues.polygon.parse import (
    Interval,
    parse_candles,
    parse_frame,
    parse_quotes_page,
    parse_trades_page,
)
from venuefeed.venues.polygon.protocol import WsStatus
from venuefeed.venues.rejects import Rejects

T0_MS = 1_700_000_000_000
RECV = T0_MS * 1_000_000 + 1_000_000_000
"""One second after the hand-written frames' venue time ``T0_MS``."""


def frame(data: bytes | str, ts_recv: int = RECV) -> tuple[list[Event], list[WsStatus], Rejects]:
    rejects = Rejects("polygon")
    items = parse_frame(data, ts_recv, rejects)
    events = [i for i in items if not isinstance(i, WsStatus)]
    return events, [i for i in items if isinstance(i, WsStatus)], rejects


def spec_example(ev: str) -> tuple[bytes, int]:
    """The official spec's example of ``ev`` as a one-event frame, with its receive time."""
    payloads = capture("polygon", "massive_spec_ws_stocks_examples.json").payloads
    return payloads[["T", "Q", "AM"].index(ev)]


# -- WebSocket -------------------------------------------------------------------------


def test_spec_trade_example() -> None:
    data, recv = spec_example("T")
    events, statuses, _ = frame(data, recv)
    assert statuses == []
    assert events == [
        Trade(
            venue="polygon",
            instrument="MSFT",
            ts_venue=1_536_036_818_784_000_000,
            ts_recv=recv,
            trade_id="4::12345",
            price="114.125",
            size="100",
        )
    ]


def test_spec_quote_example_keeps_round_lots() -> None:
    data, recv = spec_example("Q")
    events, _, _ = frame(data, recv)
    assert events == [
        TopOfBook(
            venue="polygon",
            instrument="MSFT",
            ts_venue=1_536_036_818_784_000_000,
            ts_recv=recv,
            bid_price="114.125",
            bid_size="100",
            ask_price="114.128",
            ask_size="160",
            sequence=50_385_480,
        )
    ]


def test_spec_minute_aggregate_example() -> None:
    data, recv = spec_example("AM")
    events, _, _ = frame(data, recv)
    assert events == [
        Candle(
            venue="polygon",
            instrument="GTE",
            ts_venue=1_610_144_700_000_000_000,
            ts_recv=recv,
            interval="1m",
            open_time=1_610_144_640_000_000_000,
            close_time=1_610_144_700_000_000_000,
            open="0.4488",
            high="0.4489",
            low="0.4486",
            close="0.4486",
            volume="4110",
        )
    ]


def test_official_mock_frames() -> None:
    lines = capture("polygon", "clientpython_ws_mock_frames.jsonl").payloads
    statuses = [s for data, recv in lines[:3] for s in frame(data, recv)[1]]
    assert [(s.status, s.message) for s in statuses] == [
        ("connected", "Connected Successfully"),
        ("auth_success", "authenticated"),
        ("success", "subscribed to: T.AAPL"),
    ]
    events, statuses, _ = frame(*lines[4])
    assert statuses == []
    assert [(e.instrument, e.trade_id, e.price, e.size, e.ts_venue) for e in events] == [  # type: ignore[union-attr]
        ("AAPL", "12::72815", "161.87", "1", 1_651_684_192_536_000_000),
        ("AAPL", "4::799", "161.87", "100", 1_651_684_192_717_000_000),
    ]


def test_error_status_frames() -> None:
    parsed = [
        frame(data, recv) for data, recv in capture("polygon", "status_frames.jsonl").payloads
    ]
    assert [events for events, _, _ in parsed] == [[], [], []]
    assert [statuses[0].status for _, statuses, _ in parsed] == [
        "auth_failed",
        "auth_timeout",
        "max_connections",
    ]
    assert parsed[2][1][0].message.startswith("Maximum number of websocket connections")


def test_trf_trade_id_and_fractional_size() -> None:
    data = (
        b'[{"ev":"T","sym":"AAPL","i":"71675577320245","x":4,"p":189.7001,"s":0.5,'
        b'"c":[12,37],"t":1700000000123,"q":99,"z":3,"trfi":201,"trft":1700000000120}]'
    )
    (trade,), _, _ = frame(data)
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.price, trade.size) == ("4:201:71675577320245", "189.7001", "0.5")


def test_prices_are_exact_beyond_float_precision() -> None:
    data = f'[{{"ev":"T","sym":"X","i":"1","x":1,"p":1234567890123.123456789,"s":1e2,"t":{T0_MS}}}]'
    (trade,), _, _ = frame(data)
    assert isinstance(trade, Trade)
    assert (trade.price, trade.size) == ("1234567890123.123456789", "100")


def test_one_sided_quote_has_no_price_on_the_empty_side() -> None:
    data = f'[{{"ev":"Q","sym":"X","bp":0,"bs":0,"ap":10.5,"as":3,"t":{T0_MS},"q":7}}]'
    (quote,), _, _ = frame(data)
    assert isinstance(quote, TopOfBook)
    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (
        None,
        None,
        "10.5",
        "3",
    )


def test_a_side_of_size_zero_is_empty_too() -> None:
    data = f'[{{"ev":"Q","sym":"X","bp":10.1,"bs":0,"ap":10.5,"as":3,"t":{T0_MS}}}]'
    (quote,), _, _ = frame(data)
    assert isinstance(quote, TopOfBook)
    assert (quote.bid_price, quote.bid_size) == (None, None)


def test_bad_elements_are_skipped_and_counted_good_ones_kept() -> None:
    data = (
        f'[{{"ev":"T","sym":"AAPL","i":"1","x":10,"p":1.5,"s":2,"t":{T0_MS}}},'
        '{"ev":"LULD","T":"AAPL","h":1,"l":2},'
        '{"ev":"T","sym":"AAPL","i":"2"},'
        '{"ev":"Q","sym":"AAPL","bp":"not a number","bs":1,"ap":2,"as":1},'
        '{"ev":"status","status":"success","message":"subscribed to: T.AAPL"}]'
    )
    events, statuses, rejects = frame(data)
    assert [e.trade_id for e in events if isinstance(e, Trade)] == ["10::1"]
    assert len(events) == 1
    assert [s.status for s in statuses] == ["success"]
    assert rejects.counts == {"unknown_event": 1, "invalid_event": 2}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("p", '"NaN"', "invalid_price"),
        ("p", '"Infinity"', "invalid_price"),
        ("p", "-1.5", "invalid_price"),
        ("p", "1e999", "invalid_price"),
        ("s", "-100", "invalid_size"),
        ("s", "1e-40", "invalid_size"),
        ("t", "1700000000", "timestamp_out_of_window"),  # seconds, not ms: 1970
        ("t", "1700000000000000", "timestamp_out_of_window"),  # µs read as ms: year 55 000
        ("t", "-1", "timestamp_out_of_window"),
    ],
)
def test_a_value_that_fails_its_check_is_a_counted_rejection(
    field: str, value: str, reason: str
) -> None:
    trade = {"ev": "T", "sym": "X", "i": "1", "x": 1, "p": 10.5, "s": 2, "t": T0_MS}
    data = json.dumps([trade]).replace(
        f'"{field}": {json.dumps(trade[field])}', f'"{field}": {value}'
    )
    events, _, rejects = frame(data)
    assert events == []
    assert rejects.counts == {reason: 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'[{"ev":"T",', "malformed_json"),
        (b'{"ev":"T","sym":"AAPL"}', "not_an_array"),
        (b'[{"ev":"T","sym":"\xff"}]', "invalid_event"),  # invalid UTF-8
        (b"\xff[]", "malformed_json"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
    ],
)
def test_unparseable_frames_are_counted(data: bytes, reason: str) -> None:
    events, statuses, rejects = frame(data)
    assert (events, statuses, rejects.counts) == ([], [], {reason: 1})


# -- REST ------------------------------------------------------------------------------


def test_daily_aggregates_capture() -> None:
    found = capture("polygon", "clientpython_v2_aggs_ticker_AAPL_range_1_day.json")
    ((body, recv),) = found.payloads
    page = parse_candles(body, "AAPL", Interval.parse("1day"), recv, Rejects("polygon"))
    assert page is not None
    candles, next_url = page
    assert next_url is None
    day = 86_400_000_000_000
    assert candles == [
        Candle(
            venue="polygon",
            instrument="AAPL",
            ts_venue=1_112_331_600_000_000_000 + day,
            ts_recv=recv,
            interval="1d",
            open_time=1_112_331_600_000_000_000,
            close_time=1_112_331_600_000_000_000 + day,
            open="1.5032",
            high="1.5064",
            low="1.4489",
            close="1.4604",
            volume="642646396",
            trades=82_132,
        ),
        Candle(
            venue="polygon",
            instrument="AAPL",
            ts_venue=1_112_587_200_000_000_000 + day,
            ts_recv=recv,
            interval="1d",
            open_time=1_112_587_200_000_000_000,
            close_time=1_112_587_200_000_000_000 + day,
            open="1.4639",
            high="1.4754",
            low="1.4343",
            close="1.4675",
            volume="578172308",
            trades=65_543,
        ),
    ]


def test_current_bar_is_not_closed() -> None:
    body = f'{{"status":"OK","results":[{{"o":1,"h":2,"l":0.5,"c":1.5,"v":10,"t":{T0_MS}}}]}}'
    page = parse_candles(body.encode(), "X", Interval.parse("1minute"), RECV, Rejects("polygon"))
    assert page is not None
    (candle,), _ = page
    assert (candle.close_time, candle.closed) == ((T0_MS + 60_000) * 1_000_000, False)


def test_v3_trades_capture_ids_differ_by_exchange() -> None:
    ((body, recv),) = capture("polygon", "clientpython_v3_trades_AAPL_limit_2.json").payloads
    page = parse_trades_page(body, "AAPL", recv, Rejects("polygon"))
    assert page is not None
    trades, next_url = page
    assert next_url is None
    assert [(t.trade_id, t.price, t.size, t.ts_venue) for t in trades] == [
        ("11:3:183276", "156.43", "10", 1_651_181_822_461_979_400),
        ("12:3:183276", "157.43", "10", 1_651_181_822_461_979_400),
    ]


def test_v3_trades_keep_int64_nanoseconds_exact() -> None:
    body = (
        b'{"status":"OK","results":[{"id":"9","exchange":12,"price":1.01,"size":3,'
        b'"sip_timestamp":1651181822461979437,"sequence_number":5}]}'
    )
    page = parse_trades_page(body, "AAPL", RECV, Rejects("polygon"))
    assert page is not None
    assert page[0][0].ts_venue == 1_651_181_822_461_979_437


def test_v3_quotes_capture() -> None:
    ((body, recv),) = capture("polygon", "clientpython_v3_quotes_AAPL.json").payloads
    page = parse_quotes_page(body, "AAPL", recv, Rejects("polygon"))
    assert page is not None
    quotes, next_url = page
    assert len(quotes) == 10
    assert quotes[0] == TopOfBook(
        venue="polygon",
        instrument="AAPL",
        ts_venue=1_652_191_872_800_638_700,
        ts_recv=recv,
        bid_price="155.85",
        bid_size="4",
        ask_price="155.87",
        ask_size="3",
        sequence=19_288_684,
    )
    assert (quotes[-1].bid_price, quotes[-1].bid_size, quotes[-1].ask_size) == ("155.86", "2", "2")
    assert next_url is not None
    assert next_url.startswith("https://api.massive.com/v3/quotes/AAPL?cursor=YXA9MTkyODgxNjYm")


def test_prerebrand_capture_next_url_has_old_host() -> None:
    found = capture("polygon", "clientpython_prerebrand_v3_quotes_AAPL.json")
    ((body, recv),) = found.payloads
    page = parse_quotes_page(body, "AAPL", recv, Rejects("polygon"))
    assert page is not None and page[1] is not None
    assert page[1].startswith("https://api.polygon.io/v3/quotes/AAPL?cursor=")


def test_a_bad_row_costs_that_row_not_the_page() -> None:
    doc = load("polygon", "clientpython_v3_trades_AAPL_limit_2.json")
    doc["results"].insert(0, {"id": "1"})  # no exchange, price, size, time
    doc["results"][1]["size"] = -10
    rejects = Rejects("polygon")
    page = parse_trades_page(json.dumps(doc).encode(), "AAPL", RECV, rejects)
    assert page is not None
    assert [t.trade_id for t in page[0]] == ["12:3:183276"]
    assert rejects.counts == {"invalid_trades_row": 1, "invalid_size": 1}


@pytest.mark.parametrize("body", [b"<html>502</html>", b'{"results":[]}', b"", b'{"status":'])
def test_a_body_that_is_not_a_page_is_none(body: bytes) -> None:
    rejects = Rejects("polygon")
    assert parse_trades_page(body, "AAPL", RECV, rejects) is None
    assert rejects.counts == {"bad_trades_page": 1}


@pytest.mark.parametrize(
    ("text", "open_ns", "close_ns"),
    [
        ("1m", 0, 60_000_000_000),
        ("15s", 5, 15_000_000_005),
        ("2w", 0, 14 * 86_400_000_000_000),
        # 2024-01-31T05:00Z + 1 month -> 2024-02-29T05:00Z (leap year, clamped day)
        ("1month", 1_706_677_200_000_000_000, 1_709_182_800_000_000_000),
        # 2023-11-15 + 1 quarter -> 2024-02-15
        ("1quarter", 1_700_006_400_000_000_000, 1_707_955_200_000_000_000),
    ],
)
def test_interval_spans(text: str, open_ns: int, close_ns: int) -> None:
    interval = Interval.parse(text)
    assert interval.name == text
    assert interval.close_after(open_ns) == close_ns


def test_polygon_interval_names_map_to_canonical_ones() -> None:
    assert Interval.parse("1minute") == Interval.parse("1m")
    assert Interval.parse("15second").name == "15s"
    assert Interval.parse("1day").name == "1d"


@pytest.mark.parametrize("text", ["minute", "0minute", "1fortnight", "", "1"])
def test_bad_intervals(text: str) -> None:
    with pytest.raises(ValueError, match="polygon interval"):
        Interval.parse(text)
