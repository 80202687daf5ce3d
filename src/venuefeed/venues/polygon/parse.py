"""Pure Polygon.io (Massive) parsing: wire bytes -> canonical events (no I/O).

The same functions serve the live stream, REST backfills, replay, tests and
benchmarks (ARCHITECTURE rule 1).

Canonical mapping decisions, documented once here:

* **Trade ids.** Polygon's trade ``id`` is unique only per ticker, exchange and
  trade reporting facility, so the canonical ``trade_id`` is
  ``"{exchange}:{trf_id or ''}:{id}"`` -- e.g. ``"4:201:71675577320245"`` for a
  FINRA TRF print, ``"10::5096"`` for an exchange print. WebSocket ``T`` events
  (``x``, ``trfi``, ``i``) and ``/v3/trades`` rows (``exchange``, ``trf_id``,
  ``id``) give the same id for the same trade, so live and backfilled copies
  deduplicate on it.
* **Quotes** become :class:`~venuefeed.models.TopOfBook`. Sizes are kept **as
  sent**, i.e. in round lots (normally 100 shares) -- converting would need
  the per-symbol round-lot size, which the feed does not carry. A side quoted
  at price 0 means "no quote on that side" and becomes ``None``.
* **Timestamps.** WebSocket ``t``/``s``/``e`` and aggregate ``t`` are ms;
  ``/v3`` rows are ns (int64, kept exact). Everything becomes int ns.
* **Candles.** ``interval`` is venuefeed's canonical name, shared by every venue
  (``"1m"``, ``"1d"``; ``"1month"`` and longer keep Polygon's); ``open_time`` is
  the bar's ``t``, ``close_time`` is open plus the nominal span (see
  :class:`Interval`); ``ts_venue`` is the close time.

Bad input never raises out of :func:`parse_ws_frame`: it is counted in
``venue_frames_rejected_total{venue="polygon",reason}``, logged once per reason
and skipped, and good events of the same frame are kept. REST pages are
all-or-nothing: a page that does not decode raises :class:`PageError`, because
silently skipping part of a backfill would leave a hole nobody sees.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, NamedTuple, TypeVar

import msgspec

from venuefeed.exact import from_decimal
from venuefeed.log import get_logger
from venuefeed.models import Candle, Event, TopOfBook, Trade
from venuefeed.venues.rejects import Rejects

from .protocol import (
    AggsResponse,
    QuotesResponse,
    TradesResponse,
    WsAggregate,
    WsEvent,
    WsQuote,
    WsStatus,
    WsTrade,
)

__all__ = [
    "VENUE",
    "Interval",
    "PageError",
    "WsBatch",
    "parse_aggs_page",
    "parse_quotes_page",
    "parse_trades_page",
    "parse_ws_frame",
    "trade_id",
]

VENUE: Final = "polygon"
_MS: Final = 1_000_000
_log = get_logger(__name__)

_frame_decoder = msgspec.json.Decoder(list[WsEvent])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_event_decoder = msgspec.json.Decoder(WsEvent)
_KNOWN_EV: Final = frozenset({"T", "Q", "AM", "status"})


class _EvOnly(msgspec.Struct):
    ev: str | None = None


_ev_decoder = msgspec.json.Decoder(_EvOnly)


_Page = TypeVar("_Page", AggsResponse, TradesResponse, QuotesResponse)


class PageError(ValueError):
    """A REST page did not match the documented shape; the request should not be trusted."""


_rejects = Rejects(VENUE)


def _reject(reason: str, detail: str = "") -> None:
    """Count a skipped frame or event; log the first occurrence of each reason."""
    _rejects.reject(reason, detail)


# -- WebSocket ---------------------------------------------------------------------


class WsBatch(NamedTuple):
    """What one WebSocket frame held: canonical events, and status messages for the stream."""

    events: list[Event]
    statuses: list[WsStatus]


def trade_id(exchange: int, trf_id: int | None, venue_id: str) -> str:
    """The canonical trade id: Polygon ids are unique only per exchange and TRF."""
    return f"{exchange}:{trf_id or ''}:{venue_id}"


def parse_ws_frame(data: bytes | str, ts_recv: int) -> WsBatch:
    """Parse one WebSocket frame (a JSON array of events) into canonical events.

    The whole array decodes in one pass; only when that fails is it decoded
    element by element, so a bad or unknown element costs the good ones nothing.
    """
    try:
        items: list[WsEvent] = _frame_decoder.decode(data)
    except msgspec.DecodeError as exc:
        items = _salvage(data, exc)
    events: list[Event] = []
    statuses: list[WsStatus] = []
    for item in items:
        if type(item) is WsTrade:
            events.append(_ws_trade(item, ts_recv))
        elif type(item) is WsQuote:
            events.append(_ws_quote(item, ts_recv))
        elif type(item) is WsAggregate:
            events.append(_ws_candle(item, ts_recv))
        elif type(item) is WsStatus:
            statuses.append(item)
    return WsBatch(events, statuses)


def _salvage(data: bytes | str, error: msgspec.DecodeError) -> list[WsEvent]:
    try:
        raws = _raw_list_decoder.decode(data)
    except msgspec.DecodeError:
        _reject("not_an_array" if _is_json(data) else "malformed_json", str(error))
        return []
    good: list[WsEvent] = []
    for raw in raws:
        try:
            good.append(_event_decoder.decode(raw))
        except msgspec.DecodeError as exc:
            _reject(_classify(raw), str(exc))
    return good


def _is_json(data: bytes | str) -> bool:
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return True


def _classify(raw: msgspec.Raw) -> str:
    try:
        ev = _ev_decoder.decode(raw).ev
    except msgspec.DecodeError:
        return "invalid_event"
    return "invalid_event" if ev in _KNOWN_EV else "unknown_event"


def _ws_trade(m: WsTrade, ts_recv: int) -> Trade:
    return Trade(
        venue=VENUE,
        instrument=m.sym,
        ts_venue=m.t * _MS,
        ts_recv=ts_recv,
        trade_id=trade_id(m.x, m.trfi, m.i),
        price=from_decimal(m.p),
        size=from_decimal(m.s),
    )


def _side(price: Decimal | None, size: Decimal | None) -> tuple[str | None, str | None]:
    if price is None or not price:
        return None, None
    return from_decimal(price), None if size is None else from_decimal(size)


def _ws_quote(m: WsQuote, ts_recv: int) -> TopOfBook:
    bid_price, bid_size = _side(m.bp, m.bs)
    ask_price, ask_size = _side(m.ap, m.ask_size)
    return TopOfBook(
        venue=VENUE,
        instrument=m.sym,
        ts_venue=m.t * _MS,
        ts_recv=ts_recv,
        bid_price=bid_price,
        bid_size=bid_size,
        ask_price=ask_price,
        ask_size=ask_size,
        sequence=m.q,
    )


def _ws_candle(m: WsAggregate, ts_recv: int) -> Candle:
    close_time = m.e * _MS
    return Candle(
        venue=VENUE,
        instrument=m.sym,
        ts_venue=close_time,
        ts_recv=ts_recv,
        interval="1m",
        open_time=m.s * _MS,
        close_time=close_time,
        open=from_decimal(m.o),
        high=from_decimal(m.h),
        low=from_decimal(m.l),
        close=from_decimal(m.c),
        volume=from_decimal(m.v),
    )


# -- REST ----------------------------------------------------------------------------

_FIXED_SPANS_NS: Final = {
    "second": 1_000_000_000,
    "minute": 60_000_000_000,
    "hour": 3_600_000_000_000,
    "day": 86_400_000_000_000,
    "week": 7 * 86_400_000_000_000,
}
_MONTHS: Final = {"month": 1, "quarter": 3, "year": 12}
_SHORT: Final = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
"""venuefeed's canonical interval units (as Binance writes them): ``1m`` is ``1minute``."""
_SHORT_NAME: Final = {long: short for short, long in _SHORT.items()}


@dataclass(frozen=True, slots=True)
class Interval:
    """A bar size: ``multiplier`` x ``timespan``.

    Accepts venuefeed's canonical names (``"5m"``, ``"1h"``, ``"1d"``, shared by all
    venues, so stored candles of one interval carry one name) and Polygon's own
    (``"5minute"``); :attr:`name` is the canonical one (``"5m"``; ``"1month"`` and
    longer keep Polygon's, having no short form).

    Spans are nominal: a day is 24 h and months are calendar months counted in
    UTC, so a daily bar that spans a US daylight-saving switch reports a
    close time an hour off the exchange's local midnight. ``open_time`` (the
    venue's own ``t``) is what identifies a bar.
    """

    multiplier: int
    timespan: str

    @classmethod
    def parse(cls, text: str) -> Interval:
        """``"1m"``/``"1minute"``, ``"1d"``/``"1day"`` -> ``Interval``; raises ``ValueError``."""
        digits = len(text) - len(text.lstrip("0123456789"))
        timespan = _SHORT.get(text[digits:], text[digits:])
        if not digits or (timespan not in _FIXED_SPANS_NS and timespan not in _MONTHS):
            known = ", ".join([*_FIXED_SPANS_NS, *_MONTHS])
            raise ValueError(
                f"polygon interval {text!r}: expected <n><timespan>, timespan in {known}"
            )
        multiplier = int(text[:digits])
        if multiplier < 1:
            raise ValueError(f"polygon interval {text!r}: multiplier must be >= 1")
        return cls(multiplier, timespan)

    @property
    def name(self) -> str:
        return f"{self.multiplier}{_SHORT_NAME.get(self.timespan, self.timespan)}"

    def close_after(self, open_ns: int) -> int:
        """The end of the bar opening at ``open_ns`` (exclusive), in ns."""
        fixed = _FIXED_SPANS_NS.get(self.timespan)
        if fixed is not None:
            return open_ns + self.multiplier * fixed
        seconds, rest_ns = divmod(open_ns, 1_000_000_000)
        start = datetime.fromtimestamp(seconds, UTC)
        month0 = start.month - 1 + self.multiplier * _MONTHS[self.timespan]
        year, month = start.year + month0 // 12, month0 % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        end = start.replace(year=year, month=month, day=day)
        return int(end.timestamp()) * 1_000_000_000 + rest_ns


def _decode_page(decoder: msgspec.json.Decoder[_Page], body: bytes, what: str) -> _Page:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        _reject(f"bad_{what}_page", str(exc))
        raise PageError(f"polygon {what} page does not match the documented shape: {exc}") from None


_aggs_decoder = msgspec.json.Decoder(AggsResponse)
_trades_decoder = msgspec.json.Decoder(TradesResponse)
_quotes_decoder = msgspec.json.Decoder(QuotesResponse)


def parse_aggs_page(
    body: bytes, symbol: str, interval: Interval, ts_recv: int
) -> tuple[list[Candle], str | None]:
    """An aggregates page -> (candles in the page's order, ``next_url`` or None).

    A bar whose window has not ended at ``ts_recv`` (today's daily bar) is
    marked ``closed=False``: the venue will report it again with more volume.
    """
    page = _decode_page(_aggs_decoder, body, "aggs")
    candles = []
    name = interval.name
    for bar in page.results:
        open_time = bar.t * _MS
        close_time = interval.close_after(open_time)
        candles.append(
            Candle(
                venue=VENUE,
                instrument=symbol,
                ts_venue=close_time,
                ts_recv=ts_recv,
                interval=name,
                open_time=open_time,
                close_time=close_time,
                open=from_decimal(bar.o),
                high=from_decimal(bar.h),
                low=from_decimal(bar.l),
                close=from_decimal(bar.c),
                volume=from_decimal(bar.v),
                trades=bar.n,
                closed=close_time <= ts_recv,
            )
        )
    return candles, page.next_url or None


def parse_trades_page(body: bytes, symbol: str, ts_recv: int) -> tuple[list[Trade], str | None]:
    """A ``/v3/trades`` page -> (trades in the page's order, ``next_url`` or None)."""
    page = _decode_page(_trades_decoder, body, "trades")
    trades = [
        Trade(
            venue=VENUE,
            instrument=symbol,
            ts_venue=row.sip_timestamp,
            ts_recv=ts_recv,
            trade_id=trade_id(row.exchange, row.trf_id, row.id),
            price=from_decimal(row.price),
            size=from_decimal(row.size),
        )
        for row in page.results
    ]
    return trades, page.next_url or None


def parse_quotes_page(body: bytes, symbol: str, ts_recv: int) -> tuple[list[TopOfBook], str | None]:
    """A ``/v3/quotes`` page -> (top-of-book events in the page's order, ``next_url`` or None)."""
    page = _decode_page(_quotes_decoder, body, "quotes")
    quotes = []
    for row in page.results:
        bid_price, bid_size = _side(row.bid_price, row.bid_size)
        ask_price, ask_size = _side(row.ask_price, row.ask_size)
        quotes.append(
            TopOfBook(
                venue=VENUE,
                instrument=symbol,
                ts_venue=row.sip_timestamp,
                ts_recv=ts_recv,
                bid_price=bid_price,
                bid_size=bid_size,
                ask_price=ask_price,
                ask_size=ask_size,
                sequence=row.sequence_number,
            )
        )
    return quotes, page.next_url or None
