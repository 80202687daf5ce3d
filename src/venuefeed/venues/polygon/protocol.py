"""Polygon.io (Massive) wire structs: REST pages and WebSocket events as typed msgspec structs.

Frames are decoded straight from bytes into these structs (ARCHITECTURE rule 10).
Polygon sends prices and sizes as JSON *numbers*; they are decoded into
``Decimal`` so the text on the wire is kept exactly (``114.125`` stays
``114.125`` -- a float would round-trip most values, but not by construction).
Integer timestamps stay ``int``: v3 nanosecond values exceed float precision.

Units differ by endpoint, and the same single-letter key means different
things in different events (``z`` is the tape in ``T``/``Q`` but the average
trade size in ``AM``); the struct per event type keeps them apart.

Sources: the official Massive REST/WebSocket specs and client test mocks
(``polygon-io/client-python``), summarised in ``docs/venue-protocols.md`` §4.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec

from venuefeed.transport import WsProtocolBase

__all__ = [
    "AggBar",
    "AggsResponse",
    "ClientAction",
    "MarketStatusNow",
    "PolygonProtocol",
    "QuoteRow",
    "QuotesResponse",
    "TradeRow",
    "TradesResponse",
    "WsAggregate",
    "WsEvent",
    "WsQuote",
    "WsStatus",
    "WsTrade",
]

# -- WebSocket: every server frame is a JSON array of these ------------------------


class WsTrade(msgspec.Struct, tag_field="ev", tag="T", gc=False):
    """``T``: one trade. ``t`` is SIP time in **ms**; ``i`` is unique per exchange and TRF only."""

    sym: str
    x: int
    i: str
    p: Decimal
    s: Decimal
    t: int
    q: int = 0
    z: int = 0
    c: list[int] = []
    trfi: int | None = None
    trft: int | None = None


class WsQuote(msgspec.Struct, tag_field="ev", tag="Q", gc=False):
    """``Q``: the NBBO. ``bs``/``as`` are in **round lots** (normally 100 shares), as sent."""

    sym: str
    bp: Decimal
    bs: Decimal
    ap: Decimal
    ask_size: Decimal = msgspec.field(name="as")
    t: int = 0
    bx: int = 0
    ax: int = 0
    q: int | None = None
    z: int = 0
    c: int = 0
    i: list[int] = []


class WsAggregate(msgspec.Struct, tag_field="ev", tag="AM", gc=False):
    """``AM``: a minute bar. ``s``/``e`` are window start/end in ms; ``z`` is average trade size."""

    sym: str
    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - the venue's key
    c: Decimal
    v: Decimal
    s: int
    e: int
    vw: Decimal | None = None
    av: Decimal | None = None
    op: Decimal | None = None
    a: Decimal | None = None
    z: Decimal | None = None
    otc: bool = False


class WsStatus(msgspec.Struct, tag_field="ev", tag="status", gc=False):
    """Connection and subscription status: ``connected``, ``auth_success``, ``success``,
    ``auth_failed``, ``auth_timeout``, ``max_connections``, ``force_disconnect``,
    ``slow_consumer``, ``error``.
    """

    status: str
    message: str = ""


WsEvent = WsTrade | WsQuote | WsAggregate | WsStatus


class ClientAction(msgspec.Struct):
    """What a client sends: ``auth``, ``subscribe`` or ``unsubscribe``.

    ``params`` is one comma-separated string (``"T.AAPL,Q.AAPL"``), not a list.
    """

    action: str
    params: str


_encoder = msgspec.json.Encoder()


class PolygonProtocol(WsProtocolBase):
    """What the client says on ``/stocks`` (a :class:`~venuefeed.transport.WsProtocol`).

    The conversation (docs/venue-protocols.md §4.4): the server greets with
    ``[{"ev":"status","status":"connected"}]``; the client sends
    ``{"action":"auth","params":KEY}`` and gets ``auth_success``; then
    ``{"action":"subscribe","params":"T.AAPL,Q.AAPL,AM.AAPL"}`` -- one
    comma-separated string -- acknowledged per channel. The auth frame goes
    out in :meth:`on_open`, before the transport replays subscriptions, and
    the server handles a connection's frames in order, so every reconnect
    re-authenticates before it resubscribes.
    """

    def __init__(self, url: str, api_key: str) -> None:
        self._url = url
        self._api_key = api_key

    def url(self) -> str:
        return self._url

    def on_open(self) -> Sequence[str | bytes]:
        return [_encoder.encode(ClientAction("auth", self._api_key)).decode()]

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        return self._action("subscribe", subs)

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        return self._action("unsubscribe", subs)

    @staticmethod
    def _action(action: str, subs: Sequence[str]) -> list[str | bytes]:
        if not subs:
            return []
        return [_encoder.encode(ClientAction(action, ",".join(subs))).decode()]


# -- REST ----------------------------------------------------------------------------


class AggBar(msgspec.Struct, gc=False):
    """One aggregate bar. ``t`` is the window **start** in ms; ``n`` the transaction count."""

    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - the venue's key
    c: Decimal
    v: Decimal
    t: int
    vw: Decimal | None = None
    n: int | None = None
    otc: bool = False


class AggsResponse(msgspec.Struct):
    """``GET /v2/aggs/ticker/{t}/range/{m}/{span}/{from}/{to}``; no ``results`` when empty."""

    status: str
    ticker: str = ""
    request_id: str = ""
    results: list[AggBar] = []
    adjusted: bool = True
    next_url: str | None = None


class TradeRow(msgspec.Struct, gc=False):
    """One ``/v3/trades`` row. Timestamps are int64 **ns**; ``id`` is unique per exchange+TRF."""

    id: str
    exchange: int
    price: Decimal
    size: Decimal
    sip_timestamp: int
    sequence_number: int = 0
    participant_timestamp: int | None = None
    trf_timestamp: int | None = None
    trf_id: int | None = None
    tape: int | None = None
    correction: int | None = None
    conditions: list[int] = []


class TradesResponse(msgspec.Struct):
    """``GET /v3/trades/{ticker}``: a page of rows and, if more exist, ``next_url``."""

    status: str
    request_id: str = ""
    results: list[TradeRow] = []
    next_url: str | None = None


class QuoteRow(msgspec.Struct, gc=False):
    """One ``/v3/quotes`` row (NBBO). Sizes are in round lots, as sent; timestamps ns."""

    sip_timestamp: int
    bid_price: Decimal | None = None
    bid_size: Decimal | None = None
    ask_price: Decimal | None = None
    ask_size: Decimal | None = None
    bid_exchange: int | None = None
    ask_exchange: int | None = None
    participant_timestamp: int | None = None
    sequence_number: int | None = None
    tape: int | None = None
    conditions: list[int] = []
    indicators: list[int] = []


class QuotesResponse(msgspec.Struct):
    """``GET /v3/quotes/{ticker}``, paginated like trades."""

    status: str
    request_id: str = ""
    results: list[QuoteRow] = []
    next_url: str | None = None


class MarketStatusNow(msgspec.Struct):
    """``GET /v1/marketstatus/now``: cheap and authenticated, so it doubles as the key check."""

    market: str
    serverTime: str = ""  # the venue's camelCase key
    exchanges: dict[str, str] = {}
