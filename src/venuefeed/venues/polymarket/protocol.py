"""Polymarket wire structs: what Gamma, the CLOB, the Data API and the market WebSocket send.

Frames are decoded straight from bytes into these ``msgspec`` structs; there is
no intermediate dict. Field types follow the wire exactly (see
``shared/docs/venue-protocols.md`` section 1): CLOB and WebSocket prices,
sizes and millisecond timestamps are *strings*, Data-API numbers are JSON
numbers (decoded into ``Decimal`` so ``94.37`` stays exact), and Gamma nests
JSON arrays inside strings (``clobTokenIds``, ``outcomes``, ``outcomePrices``),
which :mod:`.parse` decodes a second time.

Optional fields are the ones the reference marks as newer or feature-gated;
everything a parser relies on is required, so a frame missing it is rejected
rather than half-read.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec

from venuefeed.transport import WsProtocolBase

__all__ = [
    "BestBidAskMsg",
    "BookMsg",
    "BookSummary",
    "DataTrade",
    "GammaEvent",
    "GammaEventRef",
    "GammaKeysetPage",
    "GammaMarket",
    "GammaTag",
    "HistoryPoint",
    "LastTradeMsg",
    "LegacyChange",
    "MarketChannel",
    "MarketResolvedMsg",
    "NewMarketMsg",
    "PriceChangeItem",
    "PriceChangeMsg",
    "PriceHistory",
    "TickSizeMsg",
    "UserChannel",
    "UserMessage",
    "UserOrderMsg",
    "UserTradeMsg",
    "WireLevel",
    "WsMessage",
]


class WireLevel(msgspec.Struct, frozen=True, gc=False):
    """A ``{"price": "0.5", "size": "100"}`` level as the CLOB sends it."""

    price: str
    size: str


# -- CLOB market WebSocket (event_type-tagged) ----------------------------------


class MarketChannel(WsProtocolBase):
    """What :class:`~venuefeed.transport.WsSession` says on the market channel.

    ``assets_ids`` with ``initial_dump`` so every book starts from a snapshot,
    and ``custom_feature_enabled`` for ``best_bid_ask``/``new_market``/
    ``market_resolved``. At most ``max_assets`` ids per connection (the
    transport shards beyond). ``PING`` is the app heartbeat and the transport
    sends it only after the subscribe: a ``PING`` first makes the venue close
    with 1008, in a loop.
    """

    app_ping: str | None = "PING"

    def __init__(self, url: str, max_assets: int = 200, ping_interval: float = 10.0) -> None:
        self._url = url
        self.max_subscriptions: int | None = max_assets
        self.app_ping_interval = ping_interval

    def url(self) -> str:
        return self._url

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        body: dict[str, object] = {"assets_ids": list(subs)}
        if initial:
            body["type"] = "market"
        else:
            body["operation"] = "subscribe"
        body["initial_dump"] = True
        body["custom_feature_enabled"] = True
        return (msgspec.json.encode(body).decode(),)

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        body = {"assets_ids": list(subs), "operation": "unsubscribe"}
        return (msgspec.json.encode(body).decode(),)

    def is_heartbeat_reply(self, data: bytes | str) -> bool:
        return data == "PONG" or data == b"PONG"


class UserChannel(MarketChannel):
    """What the session says on the user channel (``/ws/user``): the account's own orders
    and trades, by market (condition id).

    The first subscribe on a connection carries the API key, secret and passphrase
    (the venue authenticates the subscription, not the handshake); later ones add or
    drop markets with ``operation``. Heartbeats are the market channel's ``PING``.
    """

    def __init__(self, url: str, auth: dict[str, str], max_markets: int = 200,
                 ping_interval: float = 10.0) -> None:  # fmt: skip
        super().__init__(url, max_markets, ping_interval)
        self._auth = auth

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        body: dict[str, object] = {"markets": list(subs)}
        if initial:
            body["auth"] = self._auth
            body["type"] = "user"
        else:
            body["operation"] = "subscribe"
        return (msgspec.json.encode(body).decode(),)

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        body = {"markets": list(subs), "operation": "unsubscribe"}
        return (msgspec.json.encode(body).decode(),)

    def __repr__(self) -> str:  # the auth object is a secret: never in a log line
        return f"UserChannel({self._url!r})"


class _User(msgspec.Struct, tag_field="event_type", frozen=True, gc=False):
    """User-channel messages are tagged by ``event_type`` like the market channel's."""


class UserOrderMsg(_User, tag="order", frozen=True):
    """A state of one of the account's orders: ``type`` PLACEMENT, UPDATE or CANCELLATION.

    ``timestamp`` is milliseconds as a string like the rest of the CLOB WebSocket.
    """

    id: str
    market: str
    asset_id: str
    side: str
    price: str
    original_size: str
    size_matched: str
    type: str
    timestamp: str
    outcome: str = ""
    owner: str = ""
    associate_trades: list[str] | None = None


class MakerOrder(msgspec.Struct, frozen=True, gc=False):
    """One resting order a trade matched against (the account's own when ``owner`` is)."""

    order_id: str
    owner: str
    matched_amount: str
    price: str
    asset_id: str
    maker_address: str = ""
    fee_rate_bps: str = ""
    outcome: str = ""


class UserTradeMsg(_User, tag="trade", frozen=True):
    """A trade the account took part in; ``status`` moves MATCHED -> MINED -> CONFIRMED
    (or RETRYING/FAILED). ``match_time`` is unix **seconds** as a string."""

    id: str
    taker_order_id: str
    market: str
    asset_id: str
    side: str
    size: str
    price: str
    status: str
    match_time: str
    owner: str
    trader_side: str = "TAKER"
    maker_orders: list[MakerOrder] = []
    fee_rate_bps: str = ""
    last_update: str = ""
    outcome: str = ""
    transaction_hash: str = ""


UserMessage = UserOrderMsg | UserTradeMsg
"""What the user channel sends (``event_type`` tagged)."""


class _Ws(msgspec.Struct, tag_field="event_type", frozen=True, gc=False):
    """Market-channel messages are tagged by ``event_type``."""


class BookMsg(_Ws, tag="book", frozen=True):
    """Full L2 snapshot; replaces the local book. Levels arrive best-last."""

    asset_id: str
    market: str
    bids: list[WireLevel]
    asks: list[WireLevel]
    timestamp: str
    hash: str = ""
    last_trade_price: str | None = None
    tick_size: str | None = None
    min_order_size: str | None = None
    neg_risk: bool | None = None


class PriceChangeItem(msgspec.Struct, frozen=True, gc=False):
    """One level change of the current (since 2025-09-15) ``price_changes[]`` shape.

    ``size`` is the new absolute size; ``hash`` is the venue's digest of that
    asset's book after the change; ``best_bid``/``best_ask`` its new top.
    """

    asset_id: str
    price: str
    size: str
    side: str
    hash: str = ""
    best_bid: str | None = None
    best_ask: str | None = None


class LegacyChange(msgspec.Struct, frozen=True, gc=False):
    """One entry of the legacy (before 2025-09-15) ``changes[]`` list."""

    price: str
    side: str
    size: str


class PriceChangeMsg(_Ws, tag="price_change", frozen=True):
    """All three ``price_change`` shapes share the tag; which fields are set tells them apart.

    * current: ``price_changes`` (several assets per message),
    * legacy: ``asset_id`` + ``hash`` + ``changes``,
    * oldest (Aug 2024 recordings): flat ``asset_id, price, side, size, hash``.
    """

    market: str
    timestamp: str
    price_changes: list[PriceChangeItem] | None = None
    changes: list[LegacyChange] | None = None
    asset_id: str | None = None
    hash: str | None = None
    price: str | None = None
    side: str | None = None
    size: str | None = None


class LastTradeMsg(_Ws, tag="last_trade_price", frozen=True):
    """A trade print. No trade id on the wire; ``transaction_hash`` only in newer docs."""

    asset_id: str
    market: str
    price: str
    timestamp: str
    side: str = ""
    size: str = ""
    fee_rate_bps: str = ""
    transaction_hash: str = ""


class TickSizeMsg(_Ws, tag="tick_size_change", frozen=True):
    asset_id: str
    market: str
    old_tick_size: str
    new_tick_size: str
    timestamp: str


class BestBidAskMsg(_Ws, tag="best_bid_ask", frozen=True):
    """Top of book (``custom_feature_enabled`` only); empty sides may be missing."""

    asset_id: str
    market: str
    timestamp: str
    best_bid: str | None = None
    best_ask: str | None = None
    spread: str | None = None


class NewMarketEvent(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    slug: str = ""
    title: str = ""


class NewMarketMsg(_Ws, tag="new_market", frozen=True):
    """A market was created (``custom_feature_enabled`` only)."""

    id: str
    market: str
    question: str
    timestamp: str
    assets_ids: list[str]
    outcomes: list[str]
    slug: str = ""
    description: str = ""
    condition_id: str = ""
    active: bool = True
    clob_token_ids: list[str] = []
    order_price_min_tick_size: str | None = None
    tags: list[str] = []
    event_message: NewMarketEvent | None = None


class MarketResolvedMsg(_Ws, tag="market_resolved", frozen=True):
    """A market resolved (``custom_feature_enabled`` only)."""

    id: str
    market: str
    assets_ids: list[str]
    timestamp: str
    winning_asset_id: str = ""
    winning_outcome: str = ""


WsMessage = (
    BookMsg
    | PriceChangeMsg
    | LastTradeMsg
    | TickSizeMsg
    | BestBidAskMsg
    | NewMarketMsg
    | MarketResolvedMsg
)
"""Every market-channel event type the reference documents."""


class EventTypeOnly(msgspec.Struct, frozen=True, gc=False):
    """Just enough of an element to name an unknown or broken event (slow path only)."""

    event_type: str = ""


# -- CLOB REST ---------------------------------------------------------------------


class BookSummary(msgspec.Struct, frozen=True, gc=False):
    """``GET /book`` / ``POST /books`` OrderBookSummary. Levels arrive best-last.

    The newer fields are optional (missing from 2024 recordings); the hash
    check needs to know which were present, so absent stays ``None``.
    """

    market: str
    asset_id: str
    timestamp: str
    bids: list[WireLevel]
    asks: list[WireLevel]
    hash: str = ""
    min_order_size: str | None = None
    tick_size: str | None = None
    neg_risk: bool | None = None
    last_trade_price: str | None = None


class HistoryPoint(msgspec.Struct, frozen=True, gc=False):
    t: int
    p: Decimal


class PriceHistory(msgspec.Struct, frozen=True):
    """``GET /prices-history``: ``t`` in unix seconds, ``p`` a JSON number."""

    history: list[HistoryPoint]


# -- Data API ------------------------------------------------------------------------


class DataTrade(msgspec.Struct, rename="camel", frozen=True, gc=False):
    """A row of Data-API ``/trades`` or a ``TRADE`` row of ``/activity``.

    ``timestamp`` is unix seconds; ``size``/``price`` are JSON numbers.
    ``/activity`` rows for non-trades have an empty ``side`` and are skipped
    by the parser.
    """

    proxy_wallet: str
    asset: str
    condition_id: str
    size: Decimal
    price: Decimal
    timestamp: int
    side: str = ""
    transaction_hash: str = ""
    type: str = "TRADE"
    usdc_size: Decimal | None = None
    outcome: str = ""
    title: str = ""
    slug: str = ""


# -- Gamma -------------------------------------------------------------------------------


class GammaTag(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    label: str = ""
    slug: str = ""


class GammaEventRef(msgspec.Struct, rename="camel", frozen=True):
    """The event a Gamma market belongs to (``markets[].events[]``)."""

    id: str
    slug: str = ""
    title: str = ""
    tags: list[GammaTag] = []


class GammaMarket(msgspec.Struct, rename="camel", frozen=True):
    """A Gamma market. ``clob_token_ids``, ``outcomes`` and ``outcome_prices`` are
    JSON arrays *inside strings*; ``order_price_min_tick_size`` and
    ``order_min_size`` are numbers."""

    id: str
    question: str
    condition_id: str
    slug: str = ""
    description: str = ""
    resolution_source: str = ""
    start_date: str | None = None
    end_date: str | None = None
    closed_time: str | None = None
    outcomes: str = "[]"
    outcome_prices: str = "[]"
    clob_token_ids: str = "[]"
    active: bool = False
    closed: bool = False
    archived: bool = False
    accepting_orders: bool | None = None
    enable_order_book: bool | None = None
    order_price_min_tick_size: Decimal | None = None
    order_min_size: Decimal | None = None
    neg_risk: bool = False
    category: str | None = None
    uma_resolution_statuses: str = "[]"
    events: list[GammaEventRef] = []


class GammaEvent(msgspec.Struct, rename="camel", frozen=True):
    """A Gamma event with its nested markets (``GET /events``)."""

    id: str
    slug: str = ""
    title: str = ""
    tags: list[GammaTag] = []
    markets: list[GammaMarket] = []


class GammaKeysetPage(msgspec.Struct, frozen=True):
    """A Gamma keyset page: ``{"markets": [...], "next_cursor": "..."}`` from
    ``/markets/keyset``, ``{"events": [...], ...}`` from ``/events/keyset``.

    Items stay raw so each is decoded alone: one odd market costs that market,
    not the page. ``next_cursor`` is absent on the last page.
    """

    markets: list[msgspec.Raw] = []
    events: list[msgspec.Raw] = []
    next_cursor: str | None = None
