"""Binance spot wire structs: what the venue sends, field for field.

Field names are the venue's own one-letter keys so ``msgspec`` decodes bytes
straight into these structs with no renaming table and no intermediate dict
(ARCHITECTURE rule 10). Keys the venue sends that we do not use (``M``, the
removed trade-stream order ids ``b``/``a`` in old recordings, the testnet
``st``) are simply not declared: ``msgspec`` skips unknown keys.

Book levels are decoded as ``tuple[str, str]``: the parser checks each
number and builds the canonical ``BookLevel`` itself.

Sources: BSD ``web-socket-streams.md`` and ``rest-api.md`` (see
``shared/docs/venue-protocols.md`` section 3) and the captures in
``shared/captures/binance``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final

import msgspec

from venuefeed.transport import WsProtocolBase

__all__ = [
    "INTERVAL_MS",
    "KLINE_INTERVALS",
    "MAX_STREAMS_PER_CONNECTION",
    "AggTrade",
    "AggTradeEvent",
    "BinanceProtocol",
    "BookTickerEvent",
    "ControlReply",
    "DepthSnapshot",
    "DepthUpdate",
    "Envelope",
    "ErrorBody",
    "EventHeader",
    "ExchangeInfo",
    "KlineBar",
    "KlineEvent",
    "KlineRow",
    "RateLimit",
    "RestTrade",
    "ServerTime",
    "SymbolInfo",
    "TradeEvent",
    "depth_weight",
]

INTERVAL_MS: Final[dict[str, int]] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
"""Kline intervals of fixed length (``1M``, calendar months, is the one without)."""
KLINE_INTERVALS: Final = (*INTERVAL_MS, "1M")
MAX_STREAMS_PER_CONNECTION: Final = 1024


def depth_weight(limit: int) -> int:
    """Request weight of ``GET /api/v3/depth`` for ``limit`` levels: it scales with the limit."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


Level = tuple[str, str]
"""``[price, quantity]`` as sent; quantity ``"0.00000000"`` removes the level."""


# -- WebSocket market streams ---------------------------------------------------


class DepthUpdate(msgspec.Struct, gc=False):
    """``<symbol>@depth`` / ``@depth@100ms``: changed levels between update ids ``U``..``u``.

    Spot has no ``pu`` (previous ``u``); continuity is ``U == previous u + 1``.
    """

    E: int
    s: str
    U: int
    u: int
    b: list[Level]
    a: list[Level]


class TradeEvent(msgspec.Struct, gc=False):
    """``<symbol>@trade``: one execution. ``m`` true means the buyer was the maker."""

    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class AggTradeEvent(msgspec.Struct, gc=False):
    """``<symbol>@aggTrade``: fills of one taker order at one price, trade ids ``f``..``l``."""

    E: int
    s: str
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 -- the venue's key
    T: int
    m: bool


class BookTickerEvent(msgspec.Struct, gc=False):
    """``<symbol>@bookTicker``: best bid/ask. Spot sends no event type and no time."""

    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class KlineBar(msgspec.Struct, gc=False):
    """The ``k`` object of a kline event."""

    t: int
    T: int
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741 -- the venue's key
    v: str
    n: int
    x: bool


class KlineEvent(msgspec.Struct, gc=False):
    """``<symbol>@kline_<interval>``: the current bar, pushed every 1-2 s until closed."""

    E: int
    s: str
    k: KlineBar


class EventHeader(msgspec.Struct, gc=False):
    """Just the event type, for payloads whose stream name does not say what they are."""

    e: str = ""


class Envelope(msgspec.Struct, gc=False):
    """A combined-stream frame ``{"stream": name, "data": event}``.

    ``data`` stays raw until the stream name picks its decoder; the parser's
    fast path decodes whole frames into typed envelopes instead, this one is
    the fallback for frames it does not recognise from their first bytes.
    """

    stream: str
    data: msgspec.Raw


class ControlReply(msgspec.Struct, gc=False):
    """Answer to a control message: ``{"result": null, "id": 1}`` or an error.

    Errors look like ``{"code": 2, "msg": "Invalid request: ...", "id": 1}``.
    ``result`` is the list of streams for ``LIST_SUBSCRIPTIONS``.
    """

    id: int | str | None = None
    result: list[str] | None = None
    code: int | None = None
    msg: str | None = None


class BinanceProtocol(WsProtocolBase):
    """What the client says on the combined-stream socket (a transport ``WsProtocol``).

    One connection per 1024 streams (``/stream``); subscriptions as
    ``{"method": "SUBSCRIBE", "params": [...], "id": n}`` with an incrementing
    id. Every (re)subscription of a connection is one message, never one per
    stream: the venue closes a socket that sends more than 5 messages a
    second. The venue pings every 20 s and cuts every connection after 24 h;
    the transport answers the pings and reconnects.
    """

    max_subscriptions: int | None = MAX_STREAMS_PER_CONNECTION
    app_ping: str | None = None  # the venue pings us; the transport pongs
    app_ping_interval: float = 0.0

    def __init__(self, ws_base_url: str) -> None:
        self._url = ws_base_url.rstrip("/") + "/stream"
        self._ids = itertools.count(1)

    def url(self) -> str:
        return self._url

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        return [self._control("SUBSCRIBE", subs)] if subs else []

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        return [self._control("UNSUBSCRIBE", subs)] if subs else []

    def _control(self, method: str, subs: Sequence[str]) -> str:
        message = {"method": method, "params": list(subs), "id": next(self._ids)}
        return msgspec.json.encode(message).decode()


# -- REST -------------------------------------------------------------------------


class DepthSnapshot(msgspec.Struct, gc=False):
    """``GET /api/v3/depth``: the book at update id ``lastUpdateId``."""

    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]


class AggTrade(msgspec.Struct, gc=False):
    """One row of ``GET /api/v3/aggTrades`` (chronological)."""

    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 -- the venue's key
    T: int
    m: bool


class RestTrade(msgspec.Struct, gc=False):
    """One row of ``GET /api/v3/trades`` (recent trades)."""

    id: int
    price: str
    qty: str
    time: int
    isBuyerMaker: bool


class KlineRow(msgspec.Struct, array_like=True, gc=False):
    """One row of ``GET /api/v3/klines``: a 12-element array; the last element is unused."""

    open_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time: int
    quote_volume: str
    trades: int
    taker_buy_base: str
    taker_buy_quote: str
    ignore: str


class ServerTime(msgspec.Struct, gc=False):
    """``GET /api/v3/time``."""

    serverTime: int


class RateLimit(msgspec.Struct, gc=False):
    """One entry of ``exchangeInfo.rateLimits``."""

    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class SymbolInfo(msgspec.Struct, gc=False):
    """The part of an ``exchangeInfo`` symbol we use."""

    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str


class ExchangeInfo(msgspec.Struct, gc=False):
    """``GET /api/v3/exchangeInfo``."""

    serverTime: int
    rateLimits: list[RateLimit]
    symbols: list[SymbolInfo]


class ErrorBody(msgspec.Struct, gc=False):
    """An error body: ``{"code": -1121, "msg": "Invalid symbol."}``."""

    code: int
    msg: str
