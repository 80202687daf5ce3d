"""Every Polymarket capture parses into the canonical events written here by hand.

Expectations come from reading the capture files, not from the parser: best
levels of a book go first whatever order the file has, ``"0.50"`` becomes
``"0.5"``, millisecond strings become ns, and frames that are not market-channel
data (user channel, RTDS) are counted as rejected, never raised.
"""

from __future__ import annotations

import calendar
from decimal import Decimal

import msgspec
import pytest

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
from venuefeed.venues.polymarket.protocol import (
    BookSummary,
    DataTrade,
    GammaEvent,
    GammaMarket,
    PriceHistory,
)

from .helpers import CAPTURES, capture

R = 7  # ts_recv
MS = 1_000_000
TOK_A = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
MKT_A = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"


def L(price: str, size: str) -> BookLevel:
    return BookLevel(price, size)


def frame(name: str) -> tuple[list[object], dict[str, int]]:
    decoder = parse.FrameDecoder(parse.Rejects(parse.VENUE))
    return list(parse.parse_frame(capture(name), R, decoder)), decoder.rejects.counts


def test_ws_book_message() -> None:
    events, rejected = frame("nautilus_crate_ws_market_book_msg.json")
    assert rejected == {}
    assert events == [
        BookSnapshot(
            venue="polymarket",
            instrument=TOK_A,
            ts_venue=1703875200000 * MS,
            ts_recv=R,
            bids=[L("0.5", "200"), L("0.49", "350")],
            asks=[L("0.51", "150"), L("0.52", "250")],
        )
    ]


def test_ws_price_change_current_shape() -> None:
    decoder = parse.FrameDecoder()
    (msg,) = decoder.decode(capture("nautilus_crate_ws_market_price_change_msg.json"))
    from venuefeed.venues.polymarket.protocol import PriceChangeMsg

    assert isinstance(msg, PriceChangeMsg)
    ((delta, best_bid, best_ask),) = parse.price_changes(msg, R)
    assert delta == BookDelta(
        venue="polymarket",
        instrument=TOK_A,
        ts_venue=1703875201000 * MS,
        ts_recv=R,
        bids=[L("0.51", "150")],
        asks=[],
        checksum="0xhash001",
    )
    assert (best_bid, best_ask) == ("0.51", "0.52")


def test_ws_price_change_oldest_flat_shape() -> None:
    events, rejected = frame("nautilus_it_ws_messages_price_change.json")
    assert rejected == {}
    assert events == [
        BookDelta(
            venue="polymarket",
            instrument="48331043336612883890938759509493159234755048973500640148014422747788308965732",
            ts_venue=1723967931411 * MS,
            ts_recv=R,
            bids=[],
            asks=[L("0.514", "21574.08")],
            checksum="bf32b3746fff40c76c98021b7f3f07261169dd26",
        )
    ]


def test_ws_price_change_legacy_changes_shape() -> None:
    # No capture of the Sept-2025-to-migration shape exists; this is the documented layout.
    data = (
        b'{"event_type":"price_change","asset_id":"9","market":"0xm","hash":"h1",'
        b'"timestamp":"1000","changes":[{"price":"0.40","side":"BUY","size":"10"},'
        b'{"price":"0.60","side":"SELL","size":"0"}]}'
    )
    assert parse.parse_frame(data, R) == [
        BookDelta(
            venue="polymarket",
            instrument="9",
            ts_venue=1000 * MS,
            ts_recv=R,
            bids=[L("0.4", "10")],
            asks=[L("0.6", "0")],
            checksum="h1",
        )
    ]


def test_ws_last_trade_price() -> None:
    events, _ = frame("nautilus_crate_ws_market_last_trade_msg.json")
    expected_id = parse.trade_id(TOK_A, "buy", "25", "0.51", "", 1703875202000)
    assert events == [
        Trade(
            venue="polymarket",
            instrument=TOK_A,
            ts_venue=1703875202000 * MS,
            ts_recv=R,
            trade_id=expected_id,
            price="0.51",
            size="25",
            side="buy",
            market_id=MKT_A,
        )
    ]


def test_ws_tick_size_changes() -> None:
    synthetic, _ = frame("nautilus_crate_ws_market_tick_size_msg.json")
    real, _ = frame("nautilus_it_ws_messages_tick_size_change.json")
    assert synthetic == [
        MarketStatusChange(
            venue="polymarket",
            instrument=TOK_A,
            ts_venue=1703875210000 * MS,
            ts_recv=R,
            status=MarketStatus.OPEN,
            previous=MarketStatus.OPEN,
            detail="tick_size 0.1 -> 0.01",
        )
    ]
    assert real == [
        MarketStatusChange(
            venue="polymarket",
            instrument="115474063863764126958837769719736461272619491980773624567012766320777398670353",
            ts_venue=1739068041853 * MS,
            ts_recv=R,
            status=MarketStatus.OPEN,
            previous=MarketStatus.OPEN,
            detail="tick_size 0.01 -> 0.001",
        )
    ]


def test_ws_best_bid_ask() -> None:
    events, _ = frame("nautilus_crate_ws_market_best_bid_ask_msg.json")
    assert events == [
        TopOfBook(
            venue="polymarket",
            instrument="85354956062430465315924116860125388538595433819574542752031640332592237464430",
            ts_venue=1766789469958 * MS,
            ts_recv=R,
            bid_price="0.73",
            bid_size=None,
            ask_price="0.77",
            ask_size=None,
        )
    ]


YES = "76043073756653678226373981964075571318267289248134717369284518995922789326425"
NO = "31690934263385727664202099278545688007799199447969475608906331829650099442770"


def test_ws_market_resolved() -> None:
    events, _ = frame("nautilus_crate_ws_market_resolved_msg.json")
    ts = 1766790415550 * MS
    assert events == [
        MarketStatusChange(
            venue="polymarket", instrument=YES, ts_venue=ts, ts_recv=R,
            status=MarketStatus.RESOLVED, detail="won (Yes)",
        ),
        MarketStatusChange(
            venue="polymarket", instrument=NO, ts_venue=ts, ts_recv=R,
            status=MarketStatus.RESOLVED, detail="lost (winner Yes)",
        ),
    ]  # fmt: skip


def test_ws_new_market_is_metadata() -> None:
    (msg,) = parse.FrameDecoder().decode(capture("nautilus_crate_ws_market_new_market_msg.json"))
    from venuefeed.venues.polymarket.protocol import NewMarketMsg

    assert isinstance(msg, NewMarketMsg)
    market = parse.new_market(msg)
    assert market.market_id == "0x311d0c4b6671ab54af4970c06fcf58662516f5168997bdda209ec3db5aa6b0c1"
    assert market.title == "Will NVIDIA (NVDA) close above $240 end of January?"
    assert market.slug == "nvda-above-240-on-january-30-2026"
    assert market.outcomes == (Outcome("Yes", YES), Outcome("No", NO))
    assert market.event_id == "125819"
    assert market.tick_size == "0.01"
    assert market.category == "stocks"
    assert market.status is MarketStatus.OPEN
    assert market.rules.startswith('This market will resolve to "Yes" if the official closing')
    assert parse.parse_frame(capture("nautilus_crate_ws_market_new_market_msg.json"), R) == []


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
    events, rejected = frame(name)
    assert events == []
    assert rejected == {reason: 1}


def test_array_frame_keeps_good_elements_next_to_bad_ones() -> None:
    book = capture("nautilus_crate_ws_market_book_msg.json")
    bad = b'{"event_type":"surprise","x":1}'
    broken = b'{"event_type":"book","asset_id":"1"}'
    decoder = parse.FrameDecoder(parse.Rejects(parse.VENUE))
    events = parse.parse_frame(
        b"[" + book + b"," + bad + b"," + broken + b"," + book + b"]", R, decoder
    )
    assert [type(e) for e in events] == [BookSnapshot, BookSnapshot]
    assert decoder.rejects.counts == {"unknown_event_type": 1, "invalid_fields": 1}
    assert parse.parse_frame(b"PONG", R, decoder) == []
    assert parse.parse_frame(b"NO NEW ASSETS", R, decoder) == []
    assert parse.parse_frame(b'{"event_type": "book", ', R, decoder) == []
    assert decoder.rejects.counts["malformed_json"] == 1


# -- REST captures ------------------------------------------------------------------


def test_clob_book_response_top_n_best_first() -> None:
    summary = msgspec.json.decode(
        capture("nautilus_crate_clob_book_response.json"), type=BookSummary
    )
    snap = parse.book_snapshot(summary, R, depth=2)
    assert snap == BookSnapshot(
        venue="polymarket",
        instrument="12345678901234567890",
        ts_venue=1703875200000 * MS,
        ts_recv=R,
        bids=[L("0.5", "150"), L("0.49", "200")],
        asks=[L("0.51", "120"), L("0.52", "180")],
        checksum="0xabc123",
    )
    # The synthetic capture's "0xabc123" is not a real digest: the check says mismatch.
    assert parse.book_hash(summary) != summary.hash


def test_book_hash_is_the_official_clients_algorithm() -> None:
    summary = BookSummary(
        market="0xm", asset_id="1", timestamp="5", hash="ignored",
        bids=[], asks=[], min_order_size="5", tick_size="0.01", neg_risk=False,
        last_trade_price="0.5",
    )  # fmt: skip
    import hashlib

    text = (
        '{"market":"0xm","asset_id":"1","timestamp":"5","hash":"","bids":[],"asks":[],'
        '"min_order_size":"5","tick_size":"0.01","neg_risk":false,"last_trade_price":"0.5"}'
    )
    assert parse.book_hash(summary) == hashlib.sha1(text.encode()).hexdigest()


def test_orderbook_history_entries_parse_as_snapshots() -> None:
    doc = msgspec.json.decode(capture("nautilus_it_http_responses_orderbook_history.json"))
    rows = msgspec.convert(doc["data"], list[BookSummary])
    snaps = [parse.book_snapshot(r, R) for r in rows]
    assert [s.ts_venue for s in snaps] == [
        t * MS for t in (1729000000000, 1729000060000, 1729000120000)
    ]
    assert snaps[1].bids[0] == L("0.52", "120") and snaps[1].asks[0] == L("0.53", "140.25")
    assert snaps[2].asks == [L("0.54", "130"), L("0.55", "270.5"), L("0.56", "460")]


def test_data_api_trades() -> None:
    rows = msgspec.json.decode(
        capture("nautilus_crate_data_api_trades_response.json"), type=list[DataTrade]
    )
    trades = [parse.data_trade(r, R) for r in rows]
    asset = "71321045863084981365469005770620412523470745398083994982746259498689308907982"
    cond = "0xc8f1cf5d4f26e0fd9c8fe89f2a7b3263b902cf14fde7bfccef525753bb492e47"
    tx0 = "0xabc123def456789012345678901234567890abcdef1234567890abcdef123456"
    assert trades[0] == Trade(
        venue="polymarket",
        instrument=asset,
        ts_venue=1710000000 * 10**9,
        ts_recv=R,
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


def test_ws_print_and_data_api_row_of_one_trade_share_an_id() -> None:
    ws = (
        b'{"event_type":"last_trade_price","asset_id":"77","market":"0xm","price":"0.520",'
        b'"side":"SELL","size":"94.370","fee_rate_bps":"0","timestamp":"1729000120123",'
        b'"transaction_hash":"0xABC"}'
    )
    row = msgspec.json.decode(
        b'{"proxyWallet":"0x1","side":"SELL","asset":"77","conditionId":"0xm","size":94.37,'
        b'"price":0.52,"timestamp":1729000120,"transactionHash":"0xabc"}',
        type=DataTrade,
    )
    (live,) = parse.parse_frame(ws, R)
    rest = parse.data_trade(row, R)
    assert isinstance(live, Trade) and rest is not None
    assert live.trade_id == rest.trade_id


def test_price_history_to_candles() -> None:
    history = msgspec.json.decode(
        capture("nautilus_it_http_responses_price_history.json"), type=PriceHistory
    )
    bars = parse.candles(history.history, "tok", 300, R)
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


def test_gamma_market_decodes_strings_inside_json() -> None:
    raw = msgspec.json.decode(capture("nautilus_crate_gamma_market.json"), type=GammaMarket)
    market = parse.gamma_market(raw)
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
    raw = msgspec.json.decode(
        capture("nautilus_crate_gamma_market_closed_binary_accepting_true.json"), type=GammaMarket
    )
    market = parse.gamma_market(raw)
    assert market.status is MarketStatus.RESOLVED
    assert [o.price for o in market.outcomes] == ["1", "0"]
    assert market.close_time == calendar.timegm((2027, 12, 31, 0, 0, 0)) * 10**9


def test_gamma_event_nests_markets_with_category() -> None:
    (event,) = msgspec.json.decode(
        capture("nautilus_crate_gamma_event.json"), type=list[GammaEvent]
    )
    markets = [parse.gamma_market(m, event) for m in event.markets]
    assert [m.market_id[:10] for m in markets] == ["0xc8f1cf5d", markets[1].market_id[:10]]
    assert {m.event_id for m in markets} == {"30829"}
    assert {m.category for m in markets} == {"World Elections"}
    assert markets[0].tick_size == "0.001"
    assert [o.price for o in markets[0].outcomes] == ["0.0105", "0.9895"]
    assert markets[0].close_time == calendar.timegm((2028, 11, 7, 0, 0, 0)) * 10**9


def test_market_version_hash_follows_terms_not_prices() -> None:
    doc = msgspec.json.decode(capture("nautilus_crate_gamma_market.json"))
    base = parse.gamma_market(msgspec.convert(doc, GammaMarket)).raw_hash
    moved = dict(doc, outcomePrices='["0.6", "0.4"]', volume="123", volumeNum=123.0)
    reworded = dict(doc, description=doc["description"] + " Clarification: ...")
    assert parse.gamma_market(msgspec.convert(moved, GammaMarket)).raw_hash == base
    assert parse.gamma_market(msgspec.convert(reworded, GammaMarket)).raw_hash != base


def test_search_response_events_parse() -> None:
    doc = msgspec.json.decode(capture("nautilus_crate_search_response.json"))
    events = msgspec.convert(doc["events"], list[GammaEvent])
    markets = [parse.gamma_market(m, e) for e in events for m in e.markets]
    assert len(markets) == 1 and markets[0].event_id == "246060"
    assert len(markets[0].outcomes) == 2


def test_every_capture_is_covered() -> None:
    """A new capture must get a hand-written expectation here (or a stated reason)."""
    covered = {
        "nautilus_crate_clob_book_response.json",
        "nautilus_crate_data_api_trades_response.json",
        "nautilus_crate_gamma_event.json",
        "nautilus_crate_gamma_market.json",
        "nautilus_crate_gamma_market_closed_binary_accepting_true.json",
        "nautilus_crate_search_response.json",
        "nautilus_crate_ws_market_best_bid_ask_msg.json",
        "nautilus_crate_ws_market_book_msg.json",
        "nautilus_crate_ws_market_last_trade_msg.json",
        "nautilus_crate_ws_market_new_market_msg.json",
        "nautilus_crate_ws_market_price_change_msg.json",
        "nautilus_crate_ws_market_resolved_msg.json",
        "nautilus_crate_ws_market_tick_size_msg.json",
        "nautilus_it_http_responses_orderbook_history.json",
        "nautilus_it_http_responses_price_history.json",
        "nautilus_it_ws_messages_order_cancel.json",
        "nautilus_it_ws_messages_order_placement.json",
        "nautilus_it_ws_messages_price_change.json",
        "nautilus_it_ws_messages_tick_size_change.json",
        "nautilus_it_ws_messages_trades.json",
        "nautilus_it_ws_messages_user_trade1.json",
        "nautilus_crate_rtds_crypto_prices_subscribe.json",
        "nautilus_crate_rtds_crypto_prices_update.json",
    }
    # Not market data the client consumes (no canonical event exists for them):
    # tags, positions, fee rate, CLOB market objects, an error body, the
    # authenticated /data/trades page. They are decoded as JSON only.
    other = {p.name for p in CAPTURES.glob("*.json")} - covered
    for name in other:
        msgspec.json.decode(capture(name))
    assert other == {
        "nautilus_crate_clob_fee_rate_response_nonzero.json",
        "nautilus_crate_clob_market_closed_binary_accepting_true.json",
        "nautilus_crate_data_api_positions_response.json",
        "nautilus_crate_gamma_tags.json",
        "nautilus_crate_http_order_response_error_500.json",
        "nautilus_crate_http_trades_page.json",
        "nautilus_it_http_responses_market.json",
    }
    assert Decimal("0.5") == Decimal(parse.exact.canon("0.50"))
