"""Polygon parsing against recorded captures; expectations are written by hand from the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from venuefeed.models import Candle, TopOfBook, Trade
from venuefeed.venues.polygon.parse import (
    Interval,
    PageError,
    parse_aggs_page,
    parse_quotes_page,
    parse_trades_page,
    parse_ws_frame,
)

CAPTURES = Path(__file__).parent / "captures"
RECV = 1_700_000_000_000_000_000


def capture(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def rejected(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "venue_frames_rejected_total", {"venue": "polygon", "reason": reason}
    )
    return value or 0.0


def spec_example(ev: str) -> bytes:
    examples = json.loads(capture("massive_spec_ws_stocks_examples.json"))
    return json.dumps([examples[ev]]).encode()


# -- WebSocket -------------------------------------------------------------------------


def test_spec_trade_example() -> None:
    events, statuses = parse_ws_frame(spec_example("T"), RECV)
    assert statuses == []
    assert events == [
        Trade(
            venue="polygon",
            instrument="MSFT",
            ts_venue=1_536_036_818_784_000_000,
            ts_recv=RECV,
            trade_id="4::12345",
            price="114.125",
            size="100",
        )
    ]


def test_spec_quote_example_keeps_round_lots() -> None:
    events, _ = parse_ws_frame(spec_example("Q"), RECV)
    assert events == [
        TopOfBook(
            venue="polygon",
            instrument="MSFT",
            ts_venue=1_536_036_818_784_000_000,
            ts_recv=RECV,
            bid_price="114.125",
            bid_size="100",
            ask_price="114.128",
            ask_size="160",
            sequence=50_385_480,
        )
    ]


def test_spec_minute_aggregate_example() -> None:
    events, _ = parse_ws_frame(spec_example("AM"), RECV)
    assert events == [
        Candle(
            venue="polygon",
            instrument="GTE",
            ts_venue=1_610_144_700_000_000_000,
            ts_recv=RECV,
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
    lines = capture("clientpython_ws_mock_frames.jsonl").splitlines()
    statuses = [s for line in lines[:3] for s in parse_ws_frame(line, RECV).statuses]
    assert [(s.status, s.message) for s in statuses] == [
        ("connected", "Connected Successfully"),
        ("auth_success", "authenticated"),
        ("success", "subscribed to: T.AAPL"),
    ]
    events, statuses = parse_ws_frame(lines[4], RECV)
    assert statuses == []
    assert [(e.instrument, e.trade_id, e.price, e.size, e.ts_venue) for e in events] == [
        ("AAPL", "12::72815", "161.87", "1", 1_651_684_192_536_000_000),
        ("AAPL", "4::799", "161.87", "100", 1_651_684_192_717_000_000),
    ]


def test_error_status_frames() -> None:
    lines = capture("status_frames.jsonl").splitlines()
    parsed = [parse_ws_frame(line, RECV) for line in lines]
    assert [b.events for b in parsed] == [[], [], []]
    assert [b.statuses[0].status for b in parsed] == [
        "auth_failed",
        "auth_timeout",
        "max_connections",
    ]
    assert parsed[2].statuses[0].message.startswith("Maximum number of websocket connections")


def test_trf_trade_id_and_fractional_size() -> None:
    frame = (
        b'[{"ev":"T","sym":"AAPL","i":"71675577320245","x":4,"p":189.7001,"s":0.5,'
        b'"c":[12,37],"t":1700000000123,"q":99,"z":3,"trfi":201,"trft":1700000000120}]'
    )
    (trade,), _ = parse_ws_frame(frame, RECV)
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.price, trade.size) == ("4:201:71675577320245", "189.7001", "0.5")


def test_prices_are_exact_beyond_float_precision() -> None:
    frame = b'[{"ev":"T","sym":"X","i":"1","x":1,"p":12345678901234.123456789,"s":1e2,"t":1}]'
    (trade,), _ = parse_ws_frame(frame, RECV)
    assert isinstance(trade, Trade)
    assert (trade.price, trade.size) == ("12345678901234.123456789", "100")


def test_one_sided_quote_has_no_price_on_the_empty_side() -> None:
    frame = b'[{"ev":"Q","sym":"X","bp":0,"bs":0,"ap":10.5,"as":3,"t":5,"q":7}]'
    (quote,), _ = parse_ws_frame(frame, RECV)
    assert isinstance(quote, TopOfBook)
    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (
        None,
        None,
        "10.5",
        "3",
    )


def test_bad_elements_are_skipped_and_counted_good_ones_kept() -> None:
    before = {r: rejected(r) for r in ("unknown_event", "invalid_event")}
    frame = (
        b'[{"ev":"T","sym":"AAPL","i":"1","x":10,"p":1.5,"s":2,"t":1000},'
        b'{"ev":"LULD","T":"AAPL","h":1,"l":2},'
        b'{"ev":"T","sym":"AAPL","i":"2"},'
        b'{"ev":"Q","sym":"AAPL","bp":"not a number","bs":1,"ap":2,"as":1},'
        b'{"ev":"status","status":"success","message":"subscribed to: T.AAPL"}]'
    )
    events, statuses = parse_ws_frame(frame, RECV)
    assert [e.trade_id for e in events if isinstance(e, Trade)] == ["10::1"]
    assert len(events) == 1
    assert [s.status for s in statuses] == ["success"]
    assert rejected("unknown_event") == before["unknown_event"] + 1
    assert rejected("invalid_event") == before["invalid_event"] + 2


@pytest.mark.parametrize(
    ("frame", "reason"),
    [(b'[{"ev":"T",', "malformed_json"), (b'{"ev":"T","sym":"AAPL"}', "not_an_array")],
)
def test_unparseable_frames_are_counted(frame: bytes, reason: str) -> None:
    before = rejected(reason)
    assert parse_ws_frame(frame, RECV) == ([], [])
    assert rejected(reason) == before + 1


# -- REST ------------------------------------------------------------------------------


def test_daily_aggregates_capture() -> None:
    candles, next_url = parse_aggs_page(
        capture("clientpython_v2_aggs_ticker_AAPL_range_1_day.json"),
        "AAPL",
        Interval.parse("1day"),
        RECV,
    )
    assert next_url is None
    day = 86_400_000_000_000
    assert candles == [
        Candle(
            venue="polygon",
            instrument="AAPL",
            ts_venue=1_112_331_600_000_000_000 + day,
            ts_recv=RECV,
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
            ts_recv=RECV,
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
    body = b'{"status":"OK","results":[{"o":1,"h":2,"l":0.5,"c":1.5,"v":10,"t":60000}]}'
    (candle,), _ = parse_aggs_page(body, "X", Interval.parse("1minute"), 100_000_000_000)
    assert (candle.close_time, candle.closed) == (120_000_000_000, False)


def test_v3_trades_capture_ids_differ_by_exchange() -> None:
    trades, next_url = parse_trades_page(
        capture("clientpython_v3_trades_AAPL_limit_2.json"), "AAPL", RECV
    )
    assert next_url is None
    assert trades == [
        Trade(
            venue="polygon",
            instrument="AAPL",
            ts_venue=1_651_181_822_461_979_400,
            ts_recv=RECV,
            trade_id="11:3:183276",
            price="156.43",
            size="10",
        ),
        Trade(
            venue="polygon",
            instrument="AAPL",
            ts_venue=1_651_181_822_461_979_400,
            ts_recv=RECV,
            trade_id="12:3:183276",
            price="157.43",
            size="10",
        ),
    ]


def test_v3_trades_keep_int64_nanoseconds_exact() -> None:
    body = (
        b'{"status":"OK","results":[{"id":"9","exchange":12,"price":1.01,"size":3,'
        b'"sip_timestamp":1651181822461979437,"sequence_number":5}]}'
    )
    (trade,), _ = parse_trades_page(body, "AAPL", RECV)
    assert trade.ts_venue == 1_651_181_822_461_979_437


def test_v3_quotes_capture() -> None:
    quotes, next_url = parse_quotes_page(capture("clientpython_v3_quotes_AAPL.json"), "AAPL", RECV)
    assert len(quotes) == 10
    assert quotes[0] == TopOfBook(
        venue="polygon",
        instrument="AAPL",
        ts_venue=1_652_191_872_800_638_700,
        ts_recv=RECV,
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
    _, next_url = parse_quotes_page(
        capture("clientpython_prerebrand_v3_quotes_AAPL.json"), "AAPL", RECV
    )
    assert next_url is not None
    assert next_url.startswith("https://api.polygon.io/v3/quotes/AAPL?cursor=")


def test_bad_page_raises_with_reason() -> None:
    with pytest.raises(PageError, match="trades page"):
        parse_trades_page(b'{"status":"OK","results":[{"id":"1"}]}', "AAPL", RECV)


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
