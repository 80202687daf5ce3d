"""Binance spot frames and REST bodies -> validated canonical events. Pure and total.

Combined-stream frames are ``{"stream": "<symbol>@<kind>", "data": {...}}``.
The stream name says what ``data`` is (spot ``bookTicker`` has no event type
at all), so the hot path reads the name from the frame's first bytes, picks the
typed envelope for that kind and decodes the whole frame in one ``msgspec``
call. Frames that do not start the usual way go through a slower but
order-independent path (raw envelope, then the payload).

Conventions fixed here:

* Times: the venue's milliseconds become nanoseconds.
* Trade side is the taker's: ``m`` (buyer is maker) true means the taker sold.
* Trade ids stay strings. ``@trade`` ids are the venue's decimal trade id;
  aggregate trades (``@aggTrade`` and REST ``aggTrades``) get an ``"a"``
  prefix (``"a966492862"``) because aggregate ids are a separate, smaller
  number space and would otherwise collide with plain trade ids.
* Every price and size is checked and canonical (:mod:`venuefeed.venues.checks`):
  finite, >= 0, ``"4.00000200"`` becomes ``"4.000002"``. Depth levels repeat
  from frame to frame, so this is a dict lookup per number on the hot path.
* An empty ``bookTicker`` side (price or quantity 0) is ``None``.

Bad input is a counted rejection in the injected
:class:`~venuefeed.venues.rejects.Rejects` with a short, low-cardinality
reason; nothing here raises. A control reply that reports an error is
counted as ``control_error``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, NamedTuple, TypeVar

import msgspec

from venuefeed.book import KERNEL
from venuefeed.models import BookDelta, BookLevel, BookSnapshot, Candle, Event, TopOfBook, Trade
from venuefeed.venues.binance import protocol as p
from venuefeed.venues.checks import (
    DECODE_ERRORS,
    EARLIEST_NS,
    PRICES,
    SIZES,
    Invalid,
    in_window,
    levels,
)
from venuefeed.venues.rejects import Rejects

if KERNEL == "c":
    from venuefeed import _kernel

__all__ = [
    "AGG_TRADE_ID_PREFIX",
    "VENUE",
    "AggTradesPage",
    "KlinesPage",
    "parse_book",
    "parse_candles",
    "parse_error",
    "parse_exchange_info",
    "parse_frame",
    "parse_recent_trades",
    "parse_server_time",
    "parse_trades_page",
    "stream_kind",
]

VENUE: Final = "binance"
AGG_TRADE_ID_PREFIX: Final = "a"
_MS: Final = 1_000_000
_PREFIX_B: Final = b'{"stream":"'
_PREFIX_S: Final = '{"stream":"'


def stream_kind(stream: str) -> str | None:
    """What a stream name carries: ``depth``, ``trade``, ``aggTrade``, ``bookTicker``, ``kline``.

    ``None`` for streams this client does not read (partial-depth ``@depth20``,
    tickers). ``btcusdt@depth@100ms`` -> ``depth``; ``btcusdt@kline_1m`` -> ``kline``.
    """
    _, at, rest = stream.partition("@")
    if not at:
        return None
    name, _, speed = rest.partition("@")
    if name == "depth":
        return "depth" if speed in ("", "100ms", "1000ms") else None
    if name in ("trade", "aggTrade", "bookTicker"):
        return name if not speed else None
    if name.startswith("kline_"):
        return "kline"
    return None


def _envelope(data_type: type[Any]) -> msgspec.json.Decoder[Any]:
    envelope = msgspec.defstruct(
        f"{data_type.__name__}Envelope", [("stream", str), ("data", data_type)], gc=False
    )
    return msgspec.json.Decoder(envelope)


_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "depth": _envelope(p.DepthUpdate),
    "trade": _envelope(p.TradeEvent),
    "aggTrade": _envelope(p.AggTradeEvent),
    "bookTicker": _envelope(p.BookTickerEvent),
    "kline": _envelope(p.KlineEvent),
}
_PAYLOAD_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "depth": msgspec.json.Decoder(p.DepthUpdate),
    "trade": msgspec.json.Decoder(p.TradeEvent),
    "aggTrade": msgspec.json.Decoder(p.AggTradeEvent),
    "bookTicker": msgspec.json.Decoder(p.BookTickerEvent),
    "kline": msgspec.json.Decoder(p.KlineEvent),
}
_envelope_decoder = msgspec.json.Decoder(p.Envelope)
_control_decoder = msgspec.json.Decoder(p.ControlReply)
_header_decoder = msgspec.json.Decoder(p.EventHeader)

_KINDS: dict[str | bytes, str | None] = {}
"""Stream name, as text or as the frame's bytes -> kind (a memo of :func:`stream_kind`,
bounded): a frame's stream name is looked up without decoding it."""
_KINDS_MAX: Final = 4096
_UNSEEN: Final = "?"


def _kind(stream: str | bytes) -> str | None:
    kind = _KINDS.get(stream, _UNSEEN)
    if kind is _UNSEEN:
        text = stream.decode("ascii", "replace") if isinstance(stream, bytes) else stream
        kind = stream_kind(text)
        if len(_KINDS) < _KINDS_MAX:
            _KINDS[stream] = kind
    return kind


def _fast_kind(data: bytes | str) -> str | None:
    name: str | bytes
    if isinstance(data, bytes):
        if not data.startswith(_PREFIX_B):
            return None
        name = data[11 : data.find(b'"', 11)]
    else:
        if not data.startswith(_PREFIX_S):
            return None
        name = data[11 : data.find('"', 11)]
    kind = _KINDS.get(name, _UNSEEN)
    return _kind(name) if kind is _UNSEEN else kind


def parse_frame(data: bytes | str, ts_recv: int, rejects: Rejects) -> list[Event]:
    """One combined-stream frame -> its checked events; anything else counted. Never raises.

    ``serverShutdown`` notices and control acknowledgements yield no events
    (the transport sees the close that follows a shutdown).
    """
    kind: str | None = None
    try:
        kind = _fast_kind(data)
        payload: Any = None
        if kind is not None:
            try:
                payload = _DECODERS[kind].decode(data).data
            except DECODE_ERRORS:
                payload = None  # not the usual layout after all: take the general path
        if payload is None:
            kind, payload = _slow(data, rejects)
        if kind is None:
            return []
        return _CONVERT[kind](payload, ts_recv, rejects.window.live(ts_recv))
    except Invalid as exc:
        rejects.invalid(exc, kind or "frame", data)
    except Exception as exc:  # a parser bug must not end the stream: counted, logged once
        rejects.bug(exc, kind or "frame")
    return []


def _slow(data: bytes | str, rejects: Rejects) -> tuple[str | None, Any]:
    try:
        envelope = _envelope_decoder.decode(data)
    except DECODE_ERRORS:
        _control(data, rejects)
        return None, None
    kind = _kind(envelope.stream)
    if kind is None:
        try:
            header = _header_decoder.decode(envelope.data)
        except DECODE_ERRORS as exc:
            rejects.reject("malformed", str(exc)[:200], data)
            return None, None
        if header.e != "serverShutdown":
            rejects.reject("unknown_stream", envelope.stream[:60])
        return None, None
    try:
        return kind, _PAYLOAD_DECODERS[kind].decode(envelope.data)
    except DECODE_ERRORS as exc:
        rejects.reject("malformed", str(exc)[:200], data)
        return None, None


def _control(data: bytes | str, rejects: Rejects) -> None:
    """A reply to a control message: counted when it reports an error, else nothing."""
    try:
        reply = _control_decoder.decode(data)
    except DECODE_ERRORS as exc:
        rejects.reject("malformed", str(exc)[:200], data)
        return
    if reply.code is not None:
        rejects.reject("control_error", f"{reply.code}: {reply.msg} (id {reply.id})"[:300])
    elif reply.id is None:
        rejects.reject("unknown_message", sample=data)


# -- payload -> events -------------------------------------------------------------------


_KNOWN_PRICES: Final = PRICES.known
_KNOWN_SIZES: Final = SIZES.known
_COMPILED: Final = KERNEL == "c"
"""The levels are built by the C kernel (:func:`venuefeed.venues.checks.levels`' loop)."""


def _depth(d: p.DepthUpdate, ts_recv: int, bounds: tuple[int, int]) -> list[Event]:
    """A diff-depth update: the hottest path of the venue, so written out.

    Each level is checked and made canonical through the number memos: a dict
    lookup per number seen before, and a check (then remembered) for one that
    was not -- per number, not per update: most sizes in a depth stream are new,
    so retrying the whole update on the first miss would check most of them twice.
    The loop runs in C when the kernel does (:data:`venuefeed.book.KERNEL`), with
    the list comprehensions' semantics.
    """
    if d.u < d.U:
        raise Invalid("invalid_sequence", f"U {d.U} > u {d.u}")
    ts = d.E * _MS
    if not bounds[0] <= ts <= bounds[1]:
        raise Invalid("timestamp_out_of_window", d.E)
    prices, sizes, new_price, new_size = _KNOWN_PRICES, _KNOWN_SIZES, PRICES.learn, SIZES.learn
    if _COMPILED:
        bids = _kernel.levels(d.b, prices, sizes, new_price, new_size)
        asks = _kernel.levels(d.a, prices, sizes, new_price, new_size)
    else:
        bids = [
            BookLevel(prices.get(p) or new_price(p), sizes.get(q) or new_size(q)) for p, q in d.b
        ]
        asks = [
            BookLevel(prices.get(p) or new_price(p), sizes.get(q) or new_size(q)) for p, q in d.a
        ]
    return [
        BookDelta(
            venue=VENUE,
            instrument=d.s,
            ts_venue=ts,
            ts_recv=ts_recv,
            bids=bids,
            asks=asks,
            sequence=d.u,
            first_sequence=d.U,
        )
    ]


def _trade(t: p.TradeEvent, ts_recv: int, bounds: tuple[int, int]) -> list[Event]:
    return [
        Trade(
            venue=VENUE,
            instrument=t.s,
            ts_venue=in_window(t.T * _MS, bounds),
            ts_recv=ts_recv,
            trade_id=str(t.t),
            price=PRICES[t.p],
            size=SIZES[t.q],
            side="sell" if t.m else "buy",
        )
    ]


def _agg_trade_event(t: p.AggTradeEvent, ts_recv: int, bounds: tuple[int, int]) -> list[Event]:
    return [_agg_trade(t, t.s, ts_recv, bounds)]


def _agg_trade(
    t: p.AggTradeEvent | p.AggTrade, symbol: str, ts_recv: int, bounds: tuple[int, int]
) -> Trade:
    return Trade(
        venue=VENUE,
        instrument=symbol,
        ts_venue=in_window(t.T * _MS, bounds),
        ts_recv=ts_recv,
        trade_id=f"{AGG_TRADE_ID_PREFIX}{t.a}",
        price=PRICES[t.p],
        size=SIZES[t.q],
        side="sell" if t.m else "buy",
    )


def _quote(price: str, size: str) -> tuple[str | None, str | None]:
    """One book-ticker side; an empty side (price or quantity 0) is ``(None, None)``."""
    price, size = PRICES[price], SIZES[size]
    return (None, None) if price == "0" or size == "0" else (price, size)


def _book_ticker(t: p.BookTickerEvent, ts_recv: int, bounds: tuple[int, int]) -> list[Event]:
    bid_price, bid_size = _quote(t.b, t.B)
    ask_price, ask_size = _quote(t.a, t.A)
    return [
        TopOfBook(
            venue=VENUE,
            instrument=t.s,
            ts_venue=0,
            ts_recv=ts_recv,
            bid_price=bid_price,
            bid_size=bid_size,
            ask_price=ask_price,
            ask_size=ask_size,
            sequence=t.u,
        )
    ]


def _bar_times(open_ms: int, close_ms: int, bounds: tuple[int, int]) -> tuple[int, int]:
    """A bar's open and close in ns: the open within history, the close not before it.

    A bar may open long before it is reported (monthly bars), so its open is
    checked against the history bounds, not the live window.
    """
    open_ns = in_window(open_ms * _MS, (EARLIEST_NS, bounds[1]))
    if close_ms < open_ms:
        raise Invalid("invalid_candle_times", f"close {close_ms} < open {open_ms}")
    return open_ns, close_ms * _MS


def _kline(e: p.KlineEvent, ts_recv: int, bounds: tuple[int, int]) -> list[Event]:
    k = e.k
    open_ns, close_ns = _bar_times(k.t, k.T, bounds)
    return [
        Candle(
            venue=VENUE,
            instrument=e.s,
            ts_venue=in_window(e.E * _MS, bounds),
            ts_recv=ts_recv,
            interval=k.i,
            open_time=open_ns,
            close_time=close_ns,
            open=PRICES[k.o],
            high=PRICES[k.h],
            low=PRICES[k.l],
            close=PRICES[k.c],
            volume=SIZES[k.v],
            trades=_non_negative(k.n),
            closed=k.x,
        )
    ]


def _non_negative(count: int) -> int:
    if count < 0:
        raise Invalid("invalid_size", count)
    return count


_CONVERT: Final[dict[str, Callable[[Any, int, tuple[int, int]], list[Event]]]] = {
    "depth": _depth,
    "trade": _trade,
    "aggTrade": _agg_trade_event,
    "bookTicker": _book_ticker,
    "kline": _kline,
}


# -- REST bodies --------------------------------------------------------------------

T = TypeVar("T")


class _RowTime(msgspec.Struct, gc=False):
    """What paging needs of an ``aggTrades`` row: its id and time (other keys ignored)."""

    a: int
    T: int


class _BarOpen(msgspec.Struct, array_like=True, gc=False):
    """What paging needs of a kline row: its open time (the rest of the array ignored)."""

    open_time: int


_depth_decoder = msgspec.json.Decoder(p.DepthSnapshot)
_agg_trades_decoder = msgspec.json.Decoder(list[p.AggTrade])
_agg_trade_decoder = msgspec.json.Decoder(p.AggTrade)
_row_times_decoder = msgspec.json.Decoder(list[_RowTime])
_trades_decoder = msgspec.json.Decoder(list[p.RestTrade])
_trade_decoder = msgspec.json.Decoder(p.RestTrade)
_klines_decoder = msgspec.json.Decoder(list[p.KlineRow])
_kline_decoder = msgspec.json.Decoder(p.KlineRow)
_bar_opens_decoder = msgspec.json.Decoder(list[_BarOpen])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_time_decoder = msgspec.json.Decoder(p.ServerTime)
_exchange_info_decoder = msgspec.json.Decoder(p.ExchangeInfo)
_error_decoder = msgspec.json.Decoder(p.ErrorBody)


def _rows(
    body: bytes,
    fast: msgspec.json.Decoder[list[T]],
    one: msgspec.json.Decoder[T],
    what: str,
    rejects: Rejects,
) -> list[T] | None:
    """An array body: all rows at once, or row by row when one is bad (counted, left out)."""
    try:
        return fast.decode(body)
    except DECODE_ERRORS:
        pass
    raws = rejects.decode(_raw_list_decoder, body, "malformed")
    if raws is None:
        return None
    return [row for row in rejects.decode_each(one, raws, f"malformed_{what}_row") if row]


def parse_book(body: bytes, symbol: str, ts_recv: int, rejects: Rejects) -> BookSnapshot | None:
    """``GET /api/v3/depth`` -> a snapshot whose ``sequence`` is ``lastUpdateId``, or ``None``.

    The body carries no time, so ``ts_venue`` is ``None`` (unknown, never a made-up 0).
    A crossed book is refused.
    """
    snap = rejects.decode(_depth_decoder, body, "malformed")
    return None if snap is None else rejects.guard("depth", _snapshot, snap, symbol, ts_recv)


def _snapshot(snap: p.DepthSnapshot, symbol: str, ts_recv: int) -> BookSnapshot:
    bids, asks = levels(snap.bids), levels(snap.asks)
    best_bid = max((Decimal(lv.price) for lv in bids if lv.size != "0"), default=None)
    best_ask = min((Decimal(lv.price) for lv in asks if lv.size != "0"), default=None)
    if best_bid is not None and best_ask is not None and best_bid >= best_ask:
        raise Invalid("crossed_book", f"{symbol}: {best_bid} >= {best_ask}")
    return BookSnapshot(
        venue=VENUE,
        instrument=symbol,
        ts_venue=None,
        ts_recv=ts_recv,
        bids=bids,
        asks=asks,
        sequence=snap.lastUpdateId,
    )


class AggTradesPage(NamedTuple):
    """A page of ``GET /api/v3/aggTrades``: the valid trades, and every row's (id, time ms).

    Paging walks on the rows the venue sent, refused ones included, so one
    bad row neither ends the walk early nor makes it fetch the same page again.
    """

    trades: list[Trade]
    rows: list[tuple[int, int]]


def parse_trades_page(
    body: bytes, symbol: str, ts_recv: int, rejects: Rejects
) -> AggTradesPage | None:
    """``GET /api/v3/aggTrades`` -> trades with ``"a"``-prefixed ids, or ``None``.

    ``None`` (counted) when the body is not an array of rows with an id and a
    time: without those the range cannot be walked safely.
    """
    times = rejects.decode(_row_times_decoder, body, "malformed")
    rows = (
        _rows(body, _agg_trades_decoder, _agg_trade_decoder, "aggTrades", rejects) if times else []
    )
    if times is None or rows is None:
        return None
    bounds = rejects.window.history(ts_recv)
    trades = [rejects.guard("aggTrade", _agg_trade, row, symbol, ts_recv, bounds) for row in rows]
    return AggTradesPage([t for t in trades if t is not None], [(r.a, r.T) for r in times])


def parse_recent_trades(
    body: bytes, symbol: str, ts_recv: int, rejects: Rejects
) -> list[Trade] | None:
    """``GET /api/v3/trades`` -> trades with the venue's plain trade ids, or ``None``."""
    rows = _rows(body, _trades_decoder, _trade_decoder, "trades", rejects)
    if rows is None:
        return None
    bounds = rejects.window.history(ts_recv)
    trades = [rejects.guard("trade", _rest_trade, row, symbol, ts_recv, bounds) for row in rows]
    return [t for t in trades if t is not None]


def _rest_trade(row: p.RestTrade, symbol: str, ts_recv: int, bounds: tuple[int, int]) -> Trade:
    return Trade(
        venue=VENUE,
        instrument=symbol,
        ts_venue=in_window(row.time * _MS, bounds),
        ts_recv=ts_recv,
        trade_id=str(row.id),
        price=PRICES[row.price],
        size=SIZES[row.qty],
        side="sell" if row.isBuyerMaker else "buy",
    )


class KlinesPage(NamedTuple):
    """A page of ``GET /api/v3/klines``: the valid candles, and every row's open time (ms)."""

    candles: list[Candle]
    open_times: list[int]


def parse_candles(
    body: bytes, symbol: str, interval: str, ts_recv: int, rejects: Rejects
) -> KlinesPage | None:
    """``GET /api/v3/klines`` (rows of 12-element arrays) -> candles, or ``None``.

    A bar is ``closed`` once its close time is before ``ts_recv``.
    """
    opens = rejects.decode(_bar_opens_decoder, body, "malformed")
    rows = _rows(body, _klines_decoder, _kline_decoder, "klines", rejects) if opens else []
    if opens is None or rows is None:
        return None
    bounds = rejects.window.history(ts_recv)
    candles = [rejects.guard("kline", _bar, row, symbol, interval, ts_recv, bounds) for row in rows]
    return KlinesPage([c for c in candles if c is not None], [o.open_time for o in opens])


def _bar(
    row: p.KlineRow, symbol: str, interval: str, ts_recv: int, bounds: tuple[int, int]
) -> Candle:
    open_ns, close_ns = _bar_times(row.open_time, row.close_time, bounds)
    return Candle(
        venue=VENUE,
        instrument=symbol,
        ts_venue=close_ns,
        ts_recv=ts_recv,
        interval=interval,
        open_time=open_ns,
        close_time=close_ns,
        open=PRICES[row.open],
        high=PRICES[row.high],
        low=PRICES[row.low],
        close=PRICES[row.close],
        volume=SIZES[row.volume],
        trades=_non_negative(row.trades),
        closed=close_ns < ts_recv,
    )


def parse_server_time(body: bytes, rejects: Rejects) -> int | None:
    """``GET /api/v3/time`` -> the venue's clock in ns, or ``None``."""
    reply = rejects.decode(_time_decoder, body, "malformed")
    if reply is None:
        return None
    if not 0 < reply.serverTime < 1 << 53:
        rejects.reject("invalid_timestamp", str(reply.serverTime))
        return None
    return reply.serverTime * _MS


def parse_exchange_info(body: bytes, rejects: Rejects) -> p.ExchangeInfo | None:
    return rejects.decode(_exchange_info_decoder, body, "malformed")


def parse_error(body: bytes) -> p.ErrorBody | None:
    """The venue's ``{"code", "msg"}`` error body, or None if the body is something else."""
    try:
        return _error_decoder.decode(body)
    except DECODE_ERRORS:
        return None
