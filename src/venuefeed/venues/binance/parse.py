"""Binance spot frames and REST bodies -> canonical events. Pure: no I/O, no logging.

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
* Trade, ticker and kline prices and sizes are canonical strings
  (:mod:`venuefeed.exact`). Depth levels keep the venue's 8-decimal text:
  canonicalizing every level costs more than decoding the frame, and the book
  identifies levels by value and emits canonical text (see ``BookDelta``).

Bad input raises :class:`FrameError` with a short, low-cardinality reason;
the stream counts it, logs it once per reason and moves on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from venuefeed.exact import canon
from venuefeed.models import BookDelta, BookLevel, BookSnapshot, Candle, Event, TopOfBook, Trade
from venuefeed.venues.binance import protocol as p

__all__ = [
    "AGG_TRADE_ID_PREFIX",
    "VENUE",
    "FrameError",
    "Parser",
    "agg_trade_rows",
    "agg_trades_to_events",
    "kline_rows",
    "klines_to_candles",
    "parse_depth_snapshot",
    "parse_error",
    "parse_exchange_info",
    "parse_klines",
    "parse_server_time",
    "parse_trades",
    "stream_kind",
]

VENUE: Final = "binance"
AGG_TRADE_ID_PREFIX: Final = "a"
_MS: Final = 1_000_000
_PREFIX_B: Final = b'{"stream":"'
_PREFIX_S: Final = '{"stream":"'


class FrameError(ValueError):
    """A frame or body that cannot be turned into events; ``reason`` labels the metric."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


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


class Parser:
    """Turns combined-stream frames into canonical events.

    Holds no market state, only a cache of stream name -> kind. Depth levels
    are decoded straight into :class:`BookLevel` (no per-level Python work);
    the book identifies them by value and emits canonical text.
    """

    __slots__ = ("_kinds", "_to_events")

    def __init__(self) -> None:
        self._kinds: dict[str, str | None] = {}
        self._to_events: dict[str, Callable[[Any, int], list[Event]]] = {
            "depth": self._depth,
            "trade": self._trade,
            "aggTrade": self._agg_trade,
            "bookTicker": self._book_ticker,
            "kline": self._kline,
        }

    def parse(self, data: bytes | str, ts_recv: int) -> list[Event] | p.ControlReply:
        """One WebSocket frame -> its events, or the control reply it is.

        Raises :class:`FrameError` for frames that are not valid JSON of a
        known shape. ``serverShutdown`` notices yield no events: the transport
        sees the close that follows.
        """
        kind = self._fast_kind(data)
        if kind is not None:
            try:
                envelope = _DECODERS[kind].decode(data)
            except msgspec.DecodeError:
                pass  # not the usual layout after all: take the general path
            else:
                return self._to_events[kind](envelope.data, ts_recv)
        return self._parse_slow(data, ts_recv)

    def _fast_kind(self, data: bytes | str) -> str | None:
        if isinstance(data, bytes):
            if not data.startswith(_PREFIX_B):
                return None
            end = data.find(b'"', 11)
            name = data[11:end].decode("ascii", "replace")
        else:
            if not data.startswith(_PREFIX_S):
                return None
            end = data.find('"', 11)
            name = data[11:end]
        return self._kind(name)

    def _kind(self, stream: str) -> str | None:
        kinds = self._kinds
        try:
            return kinds[stream]
        except KeyError:
            kind = stream_kind(stream)
            if len(kinds) < 4096:
                kinds[stream] = kind
            return kind

    def _parse_slow(self, data: bytes | str, ts_recv: int) -> list[Event] | p.ControlReply:
        try:
            envelope = _envelope_decoder.decode(data)
        except msgspec.DecodeError:
            return self._control(data)
        kind = self._kind(envelope.stream)
        if kind is None:
            try:
                header = _header_decoder.decode(envelope.data)
            except msgspec.DecodeError as exc:
                raise FrameError("malformed", str(exc)) from None
            if header.e == "serverShutdown":
                return []
            raise FrameError("unknown_stream", envelope.stream)
        try:
            payload = _PAYLOAD_DECODERS[kind].decode(envelope.data)
        except msgspec.DecodeError as exc:
            raise FrameError("malformed", str(exc)) from None
        return self._to_events[kind](payload, ts_recv)

    @staticmethod
    def _control(data: bytes | str) -> p.ControlReply:
        try:
            reply = _control_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise FrameError("malformed", str(exc)) from None
        if reply.id is None and reply.code is None:
            raise FrameError("unknown_message")
        return reply

    # -- payload -> events ---------------------------------------------------

    def _depth(self, d: p.DepthUpdate, ts_recv: int) -> list[Event]:
        return [
            BookDelta(
                venue=VENUE,
                instrument=d.s,
                ts_venue=d.E * _MS,
                ts_recv=ts_recv,
                bids=d.b,
                asks=d.a,
                sequence=d.u,
                first_sequence=d.U,
            )
        ]

    def _trade(self, t: p.TradeEvent, ts_recv: int) -> list[Event]:
        return [
            Trade(
                venue=VENUE,
                instrument=t.s,
                ts_venue=t.T * _MS,
                ts_recv=ts_recv,
                trade_id=str(t.t),
                price=canon(t.p),
                size=canon(t.q),
                side="sell" if t.m else "buy",
            )
        ]

    def _agg_trade(self, t: p.AggTradeEvent, ts_recv: int) -> list[Event]:
        return [_agg_trade(t, t.s, ts_recv)]

    def _book_ticker(self, t: p.BookTickerEvent, ts_recv: int) -> list[Event]:
        return [
            TopOfBook(
                venue=VENUE,
                instrument=t.s,
                ts_venue=0,
                ts_recv=ts_recv,
                bid_price=canon(t.b),
                bid_size=canon(t.B),
                ask_price=canon(t.a),
                ask_size=canon(t.A),
                sequence=t.u,
            )
        ]

    def _kline(self, e: p.KlineEvent, ts_recv: int) -> list[Event]:
        k = e.k
        return [
            Candle(
                venue=VENUE,
                instrument=e.s,
                ts_venue=e.E * _MS,
                ts_recv=ts_recv,
                interval=k.i,
                open_time=k.t * _MS,
                close_time=k.T * _MS,
                open=canon(k.o),
                high=canon(k.h),
                low=canon(k.l),
                close=canon(k.c),
                volume=canon(k.v),
                trades=k.n,
                closed=k.x,
            )
        ]


def _agg_trade(t: p.AggTradeEvent | p.AggTrade, symbol: str, ts_recv: int) -> Trade:
    return Trade(
        venue=VENUE,
        instrument=symbol,
        ts_venue=t.T * _MS,
        ts_recv=ts_recv,
        trade_id=f"{AGG_TRADE_ID_PREFIX}{t.a}",
        price=canon(t.p),
        size=canon(t.q),
        side="sell" if t.m else "buy",
    )


# -- REST bodies --------------------------------------------------------------------

_depth_decoder = msgspec.json.Decoder(p.DepthSnapshot)
_agg_trades_decoder = msgspec.json.Decoder(list[p.AggTrade])
_trades_decoder = msgspec.json.Decoder(list[p.RestTrade])
_klines_decoder = msgspec.json.Decoder(list[p.KlineRow])
_time_decoder = msgspec.json.Decoder(p.ServerTime)
_exchange_info_decoder = msgspec.json.Decoder(p.ExchangeInfo)
_error_decoder = msgspec.json.Decoder(p.ErrorBody)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes, what: str) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise FrameError("malformed", f"{what}: {exc}") from None


def _canon_levels(levels: list[p.Level]) -> list[BookLevel]:
    return [BookLevel(canon(price), canon(size)) for price, size in levels]


def parse_depth_snapshot(body: bytes, symbol: str, ts_recv: int) -> BookSnapshot:
    """``GET /api/v3/depth`` -> a snapshot whose ``sequence`` is ``lastUpdateId``.

    The body carries no time, so ``ts_venue`` is 0.
    """
    snap: p.DepthSnapshot = _decode(_depth_decoder, body, "depth")
    return BookSnapshot(
        venue=VENUE,
        instrument=symbol,
        ts_venue=0,
        ts_recv=ts_recv,
        bids=_canon_levels(snap.bids),
        asks=_canon_levels(snap.asks),
        sequence=snap.lastUpdateId,
    )


def agg_trade_rows(body: bytes) -> list[p.AggTrade]:
    """The typed rows of an ``aggTrades`` body, for callers that page on ``a``/``T``."""
    rows: list[p.AggTrade] = _decode(_agg_trades_decoder, body, "aggTrades")
    return rows


def agg_trades_to_events(rows: list[p.AggTrade], symbol: str, ts_recv: int) -> list[Trade]:
    return [_agg_trade(row, symbol, ts_recv) for row in rows]


def parse_trades(body: bytes, symbol: str, ts_recv: int) -> list[Trade]:
    """``GET /api/v3/trades`` -> trades with the venue's plain trade ids."""
    rows: list[p.RestTrade] = _decode(_trades_decoder, body, "trades")
    return [
        Trade(
            venue=VENUE,
            instrument=symbol,
            ts_venue=row.time * _MS,
            ts_recv=ts_recv,
            trade_id=str(row.id),
            price=canon(row.price),
            size=canon(row.qty),
            side="sell" if row.isBuyerMaker else "buy",
        )
        for row in rows
    ]


def kline_rows(body: bytes) -> list[p.KlineRow]:
    """The typed rows of a ``klines`` body, for callers that page on open time."""
    rows: list[p.KlineRow] = _decode(_klines_decoder, body, "klines")
    return rows


def klines_to_candles(
    rows: list[p.KlineRow], symbol: str, interval: str, ts_recv: int, now_ms: int
) -> list[Candle]:
    """Kline rows -> candles; a bar is ``closed`` once its close time is before ``now_ms``."""
    return [
        Candle(
            venue=VENUE,
            instrument=symbol,
            ts_venue=row.close_time * _MS,
            ts_recv=ts_recv,
            interval=interval,
            open_time=row.open_time * _MS,
            close_time=row.close_time * _MS,
            open=canon(row.open),
            high=canon(row.high),
            low=canon(row.low),
            close=canon(row.close),
            volume=canon(row.volume),
            trades=row.trades,
            closed=row.close_time < now_ms,
        )
        for row in rows
    ]


def parse_klines(
    body: bytes, symbol: str, interval: str, ts_recv: int, now_ms: int
) -> list[Candle]:
    """``GET /api/v3/klines`` (rows of 12-element arrays) -> candles."""
    return klines_to_candles(kline_rows(body), symbol, interval, ts_recv, now_ms)


def parse_server_time(body: bytes) -> int:
    """``GET /api/v3/time`` -> the venue's clock in ns."""
    reply: p.ServerTime = _decode(_time_decoder, body, "time")
    return reply.serverTime * _MS


def parse_exchange_info(body: bytes) -> p.ExchangeInfo:
    info: p.ExchangeInfo = _decode(_exchange_info_decoder, body, "exchangeInfo")
    return info


def parse_error(body: bytes) -> p.ErrorBody | None:
    """The venue's ``{"code", "msg"}`` error body, or None if the body is something else."""
    try:
        return _error_decoder.decode(body)
    except msgspec.DecodeError:
        return None
