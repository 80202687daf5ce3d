"""Kalshi Trade API v2 wire structs, decoded straight from bytes with msgspec.

The shapes follow ``shared/docs/venue-protocols.md`` section 2 and the official
AsyncAPI/OpenAPI mirrors in ``shared/captures/kalshi/spec``. Two generations
of the format are decoded by the same structs:

* current (since 2026-03-12): dollar strings (``"0.4200"``) in ``*_dollars``
  fields and fixed-point count strings (``"13.00"``) in ``*_fp`` fields;
* legacy recordings: integer cents (``yes_price``, ``price``) and integer
  counts (``count``, ``delta``).

Every field the venue may omit has a default, so a missing key never fails a
decode: an empty order book side is simply absent on the wire. Unknown keys are
ignored (msgspec's default), which keeps us working when Kalshi adds fields.
Only what the client reads is declared; the bulk archive keeps whole records as
``msgspec.Raw`` so nothing the venue sends is lost there.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "CandlesResponse",
    "CutoffResponse",
    "EventsPage",
    "KCandle",
    "KEvent",
    "KMarket",
    "KTrade",
    "MarketResponse",
    "MarketsPage",
    "OrderbookResponse",
    "RawPage",
    "SeriesPage",
    "TradesPage",
    "WsError",
    "WsEventLifecycle",
    "WsFill",
    "WsLifecycle",
    "WsMessage",
    "WsOk",
    "WsOrderbookDelta",
    "WsOrderbookSnapshot",
    "WsSubscribed",
    "WsTicker",
    "WsTickerV2",
    "WsTrade",
    "WsUnsubscribed",
    "WsUserOrder",
]

DollarLevel = tuple[str, str]
"""``[price_dollars, count_fp]`` as the current format sends it."""
CentLevel = tuple[int, int]
"""``[price_cents, count]`` in legacy recordings."""


# -- REST ----------------------------------------------------------------------


class PriceRange(msgspec.Struct, frozen=True):
    start: str
    end: str
    step: str


class KMarket(msgspec.Struct, frozen=True):
    """A market as ``GET /markets`` and ``GET /markets/{ticker}`` return it."""

    ticker: str
    event_ticker: str = ""
    market_type: str = "binary"
    title: str = ""
    subtitle: str = ""
    yes_sub_title: str = ""
    no_sub_title: str = ""
    status: str = ""
    open_time: str | None = None
    close_time: str | None = None
    expected_expiration_time: str | None = None
    latest_expiration_time: str | None = None
    rules_primary: str = ""
    rules_secondary: str = ""
    price_level_structure: str | None = None
    price_ranges: list[PriceRange] | None = None
    last_price_dollars: str | None = None
    # Legacy (integer cents) fields, still present in older recordings.
    tick_size: int | None = None
    last_price: int | None = None


class MarketsPage(msgspec.Struct, frozen=True):
    markets: list[KMarket] = []
    cursor: str | None = None


class MarketResponse(msgspec.Struct, frozen=True):
    market: KMarket


class KEvent(msgspec.Struct, frozen=True):
    event_ticker: str
    series_ticker: str = ""
    title: str = ""
    sub_title: str = ""
    category: str | None = None


class EventsPage(msgspec.Struct, frozen=True):
    events: list[KEvent] = []
    cursor: str | None = None


class EventResponse(msgspec.Struct, frozen=True):
    event: KEvent


class KSeries(msgspec.Struct, frozen=True):
    ticker: str
    title: str = ""
    category: str = ""


class SeriesPage(msgspec.Struct, frozen=True):
    """``GET /series``: the docs show no cursor; one is followed if ever sent."""

    series: list[KSeries] | None = None
    cursor: str | None = None


class RawPage(msgspec.Struct, frozen=True):
    """One page of any list endpoint with its records kept as raw JSON bytes.

    The archive stores records verbatim and hashes their exact bytes, so it
    never re-encodes what the venue sent (and never drops a field it does not
    know). Only one of the item keys is present per endpoint.
    """

    markets: list[msgspec.Raw] | None = None
    events: list[msgspec.Raw] | None = None
    series: list[msgspec.Raw] | None = None
    cursor: str | None = None


class OrderbookFp(msgspec.Struct, frozen=True):
    """Current REST book: bids only, ascending, best bid last. Sides may be null."""

    yes_dollars: list[DollarLevel] | None = None
    no_dollars: list[DollarLevel] | None = None


class LegacyOrderbook(msgspec.Struct, frozen=True):
    """Pre-2026 REST book: integer cents and counts."""

    yes: list[CentLevel] | None = None
    no: list[CentLevel] | None = None


class OrderbookResponse(msgspec.Struct, frozen=True):
    orderbook_fp: OrderbookFp | None = None
    orderbook: LegacyOrderbook | None = None


class KTrade(msgspec.Struct, frozen=True):
    """A trade from ``GET /markets/trades``."""

    ticker: str
    trade_id: str = ""
    count_fp: str | None = None
    yes_price_dollars: str | None = None
    taker_outcome_side: str | None = None
    taker_side: str | None = None
    created_time: str | None = None
    # Legacy
    count: int | None = None
    yes_price: int | None = None


class CutoffResponse(msgspec.Struct, frozen=True):
    """``GET /historical/cutoff``: where the live tier ends (ISO text or unix seconds)."""

    market_settled_ts: str | int | None = None
    trades_created_ts: str | int | None = None
    orders_updated_ts: str | int | None = None


class TradesPage(msgspec.Struct, frozen=True):
    trades: list[KTrade] = []
    cursor: str | None = None


class BidAsk(msgspec.Struct, frozen=True):
    open_dollars: str | None = None
    low_dollars: str | None = None
    high_dollars: str | None = None
    close_dollars: str | None = None


class PriceStats(msgspec.Struct, frozen=True):
    open_dollars: str | None = None
    low_dollars: str | None = None
    high_dollars: str | None = None
    close_dollars: str | None = None
    previous_dollars: str | None = None


class KCandle(msgspec.Struct, frozen=True):
    end_period_ts: int
    price: PriceStats = PriceStats()
    volume_fp: str | None = None
    volume: int | None = None


class CandlesResponse(msgspec.Struct, frozen=True):
    ticker: str = ""
    candlesticks: list[KCandle] = []


# -- WebSocket -------------------------------------------------------------------


class SubscribedMsg(msgspec.Struct, frozen=True):
    channel: str
    sid: int


class WsSubscribed(msgspec.Struct, frozen=True, tag="subscribed", tag_field="type"):
    msg: SubscribedMsg
    id: int | None = None


class WsUnsubscribed(msgspec.Struct, frozen=True, tag="unsubscribed", tag_field="type"):
    sid: int
    id: int | None = None
    seq: int | None = None


class WsOk(msgspec.Struct, frozen=True, tag="ok", tag_field="type"):
    id: int | None = None
    sid: int | None = None
    seq: int | None = None


class ErrorMsg(msgspec.Struct, frozen=True):
    code: int
    msg: str = ""
    market_ticker: str | None = None


class WsError(msgspec.Struct, frozen=True, tag="error", tag_field="type"):
    msg: ErrorMsg
    id: int | None = None


class SnapshotMsg(msgspec.Struct, frozen=True):
    market_ticker: str
    market_id: str | None = None
    # Current: absent when that side is empty.
    yes_dollars_fp: list[DollarLevel] | None = None
    no_dollars_fp: list[DollarLevel] | None = None
    # Legacy
    yes: list[CentLevel] | None = None
    no: list[CentLevel] | None = None


class WsOrderbookSnapshot(
    msgspec.Struct, frozen=True, tag="orderbook_snapshot", tag_field="type", gc=False
):
    sid: int
    seq: int
    msg: SnapshotMsg


class DeltaMsg(msgspec.Struct, frozen=True, gc=False):
    market_ticker: str
    side: Literal["yes", "no"]
    price_dollars: str | None = None
    delta_fp: str | None = None
    ts_ms: int | None = None
    # Legacy
    price: int | None = None
    delta: int | None = None


class WsOrderbookDelta(
    msgspec.Struct, frozen=True, tag="orderbook_delta", tag_field="type", gc=False
):
    sid: int
    seq: int
    msg: DeltaMsg


class TradeMsg(msgspec.Struct, frozen=True, gc=False):
    market_ticker: str
    trade_id: str | None = None
    yes_price_dollars: str | None = None
    count_fp: str | None = None
    taker_outcome_side: str | None = None
    taker_side: str | None = None
    ts: int | None = None
    ts_ms: int | None = None
    # Legacy
    yes_price: int | None = None
    count: int | None = None


class WsTrade(msgspec.Struct, frozen=True, tag="trade", tag_field="type", gc=False):
    msg: TradeMsg
    sid: int | None = None
    seq: int | None = None


class TickerMsg(msgspec.Struct, frozen=True, gc=False):
    market_ticker: str
    price_dollars: str | None = None
    yes_bid_dollars: str | None = None
    yes_ask_dollars: str | None = None
    yes_bid_size_fp: str | None = None
    yes_ask_size_fp: str | None = None
    last_trade_size_fp: str | None = None
    ts: int | None = None
    ts_ms: int | None = None


class WsTicker(msgspec.Struct, frozen=True, tag="ticker", tag_field="type", gc=False):
    msg: TickerMsg
    sid: int | None = None


class TickerV2Msg(msgspec.Struct, frozen=True, gc=False):
    """``ticker_v2``: only what changed since the sid's previous message (a field absent is
    unchanged); the volume and open-interest figures are increments."""

    market_ticker: str
    price_dollars: str | None = None
    yes_bid_dollars: str | None = None
    yes_ask_dollars: str | None = None
    yes_bid_size_fp: str | None = None
    yes_ask_size_fp: str | None = None
    volume_delta_fp: str | None = None
    open_interest_delta_fp: str | None = None
    ts: int | None = None
    ts_ms: int | None = None


class WsTickerV2(msgspec.Struct, frozen=True, tag="ticker_v2", tag_field="type", gc=False):
    msg: TickerV2Msg
    sid: int | None = None
    seq: int | None = None


class LifecycleMsg(msgspec.Struct, frozen=True, gc=False):
    """``market_lifecycle_v2``: ``event_type`` is ``created``, ``activated``, ``deactivated``,
    ``close_date_updated``, ``determined``, ``settled``, ``price_level_structure_updated`` or
    ``metadata_updated``; times are unix seconds."""

    market_ticker: str
    event_type: str
    open_ts: int | None = None
    close_ts: int | None = None
    determination_ts: int | None = None
    settled_ts: int | None = None
    result: str | None = None
    is_deactivated: bool | None = None


class WsLifecycle(
    msgspec.Struct, frozen=True, tag="market_lifecycle_v2", tag_field="type", gc=False
):
    msg: LifecycleMsg
    sid: int | None = None
    seq: int | None = None


class FillMsg(msgspec.Struct, frozen=True, gc=False):
    """``fill``: one fill of the key's own order; ``side``/``action`` are the order's
    (``yes``/``no``, ``buy``/``sell``), ``yes_price_dollars`` the YES price."""

    trade_id: str
    order_id: str
    market_ticker: str
    side: str
    action: str = "buy"
    yes_price_dollars: str | None = None
    count_fp: str | None = None
    is_taker: bool | None = None
    fee_cost: str | None = None
    client_order_id: str | None = None
    ts: int | None = None
    ts_ms: int | None = None


class WsFill(msgspec.Struct, frozen=True, tag="fill", tag_field="type", gc=False):
    msg: FillMsg
    sid: int | None = None
    seq: int | None = None


class UserOrderMsg(msgspec.Struct, frozen=True, gc=False):
    """``user_orders``: the state of one of the key's own orders after a change."""

    order_id: str
    ticker: str
    status: str
    side: str
    action: str = "buy"
    yes_price_dollars: str | None = None
    fill_count_fp: str | None = None
    remaining_count_fp: str | None = None
    client_order_id: str | None = None
    last_update_time: str | None = None


class WsUserOrder(msgspec.Struct, frozen=True, tag="user_order", tag_field="type", gc=False):
    msg: UserOrderMsg
    sid: int | None = None
    seq: int | None = None


class WsEventLifecycle(msgspec.Struct, frozen=True, tag="event_lifecycle", tag_field="type"):
    """An event was created (sent on the lifecycle channel); nothing canonical follows from it."""

    sid: int | None = None


WsMessage = (
    WsSubscribed
    | WsUnsubscribed
    | WsOk
    | WsError
    | WsOrderbookSnapshot
    | WsOrderbookDelta
    | WsTrade
    | WsTicker
    | WsTickerV2
    | WsLifecycle
    | WsEventLifecycle
    | WsFill
    | WsUserOrder
)
"""Every server message the client reads, told apart by ``type``."""


class TypeOnly(msgspec.Struct, frozen=True):
    """Used on the error path only, to tell an unknown ``type`` from a broken frame."""

    type: str | None = None


KNOWN_TYPES = frozenset(
    {
        "subscribed",
        "unsubscribed",
        "ok",
        "error",
        "orderbook_snapshot",
        "orderbook_delta",
        "trade",
        "ticker",
        "ticker_v2",
        "market_lifecycle_v2",
        "event_lifecycle",
        "fill",
        "user_order",
    }
)

ws_decoder: msgspec.json.Decoder[WsMessage] = msgspec.json.Decoder(WsMessage)
type_decoder = msgspec.json.Decoder(TypeOnly)
