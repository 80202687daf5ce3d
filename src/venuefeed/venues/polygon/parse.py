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

* **Checks.** Every price and size is a finite decimal, >= 0, in canonical
  text (Polygon sends JSON numbers; ``1e999``, ``NaN`` in a string and
  negative sizes are refused); venue times lie in the receive-time window.

Nothing here raises. Bad input is counted in the injected
:class:`~venuefeed.venues.rejects.Rejects` (``venue_frames_rejected_total
{venue="polygon",reason}``), logged once per reason and skipped; good events
of the same frame or page are kept. A REST page that is not the documented
shape at all is ``None``: the caller treats it as a failed request, because
silently ending a backfill there would leave a hole nobody sees.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, TypeVar

import msgspec

from venuefeed.models import Candle, Event, TopOfBook, Trade
from venuefeed.venues.checks import (
    DECODE_ERRORS,
    EARLIEST_NS,
    PRICES,
    SIZES,
    Invalid,
    in_window,
)
from venuefeed.venues.rejects import Rejects

from .protocol import (
    AggBar,
    AggsResponse,
    QuoteRow,
    QuotesResponse,
    TradeRow,
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
    "parse_candles",
    "parse_frame",
    "parse_quotes_page",
    "parse_trades_page",
    "trade_id",
]

VENUE: Final = "polygon"
_MS: Final = 1_000_000

_frame_decoder = msgspec.json.Decoder(list[WsEvent])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_event_decoder = msgspec.json.Decoder(WsEvent)
_KNOWN_EV: Final = frozenset({"T", "Q", "AM", "status"})


class _EvOnly(msgspec.Struct):
    ev: str | None = None


_ev_decoder = msgspec.json.Decoder(_EvOnly)
T = TypeVar("T")


# -- WebSocket ---------------------------------------------------------------------


def trade_id(exchange: int, trf_id: int | None, venue_id: str) -> str:
    """The canonical trade id: Polygon ids are unique only per exchange and TRF."""
    return f"{exchange}:{trf_id or ''}:{venue_id}"


def parse_frame(data: bytes | str, ts_recv: int, rejects: Rejects) -> list[Event | WsStatus]:
    """One WebSocket frame (a JSON array of events) -> canonical events and status messages.

    The whole array decodes in one pass; only when that fails is it decoded
    element by element, so a bad or unknown element costs the good ones nothing.
    Status messages are returned as they came: the stream acts on them.
    """
    try:
        items: list[WsEvent] = _frame_decoder.decode(data)
    except DECODE_ERRORS as exc:
        items = _salvage(data, exc, rejects)
    bounds = rejects.window.live(ts_recv)
    out: list[Event | WsStatus] = []
    for item in items:
        kind = type(item)
        try:  # per event: a bad one costs itself only
            if kind is WsTrade:
                assert isinstance(item, WsTrade)
                out.append(_ws_trade(item, ts_recv, bounds))
            elif kind is WsQuote:
                assert isinstance(item, WsQuote)
                out.append(_ws_quote(item, ts_recv, bounds))
            elif kind is WsAggregate:
                assert isinstance(item, WsAggregate)
                out.append(_ws_candle(item, ts_recv, bounds))
            else:
                assert isinstance(item, WsStatus)
                out.append(item)
        except Invalid as exc:
            rejects.invalid(exc, kind.__name__)
        except Exception as exc:  # a parser bug costs this event, never the stream
            rejects.bug(exc, kind.__name__)
    return out


def _salvage(data: bytes | str, error: Exception, rejects: Rejects) -> list[WsEvent]:
    try:
        raws = _raw_list_decoder.decode(data)
    except DECODE_ERRORS:
        rejects.reject("not_an_array" if _is_json(data) else "malformed_json", str(error)[:200])
        return []
    good: list[WsEvent] = []
    for raw in raws:
        try:
            good.append(_event_decoder.decode(raw))
        except DECODE_ERRORS as exc:
            rejects.reject(_classify(raw), str(exc)[:200])
    return good


def _is_json(data: bytes | str) -> bool:
    try:
        msgspec.json.decode(data)
    except DECODE_ERRORS:
        return False
    return True


def _classify(raw: msgspec.Raw) -> str:
    try:
        ev = _ev_decoder.decode(raw).ev
    except DECODE_ERRORS:
        return "invalid_event"
    return "invalid_event" if ev in _KNOWN_EV else "unknown_event"


_PRICE_TEXT: Final = PRICES.known_decimals
_SIZE_TEXT: Final = SIZES.known_decimals


def _ws_trade(m: WsTrade, ts_recv: int, bounds: tuple[int, int]) -> Trade:
    ts = m.t * _MS
    if not bounds[0] <= ts <= bounds[1]:
        raise Invalid("timestamp_out_of_window", m.t)
    # Most frames are trades: the number checks are written out (one memo lookup each).
    price = _PRICE_TEXT.get(str(m.p)) or PRICES.learn_decimal(m.p)
    size = _SIZE_TEXT.get(str(m.s)) or SIZES.learn_decimal(m.s)
    return Trade(
        venue=VENUE,
        instrument=m.sym,
        ts_venue=ts,
        ts_recv=ts_recv,
        trade_id=trade_id(m.x, m.trfi, m.i),
        price=price,
        size=size,
    )


def _side(price: Decimal | None, size: Decimal | None) -> tuple[str | None, str | None]:
    """One quote side; a side quoted at price 0 (or size 0) is empty: ``(None, None)``."""
    if price is None:
        return None, None
    text = PRICES.decimal(price)
    size_text = None if size is None else SIZES.decimal(size)
    if text == "0" or size_text == "0":
        return None, None
    return text, size_text


def _ws_quote(m: WsQuote, ts_recv: int, bounds: tuple[int, int]) -> TopOfBook:
    bid_price, bid_size = _side(m.bp, m.bs)
    ask_price, ask_size = _side(m.ap, m.ask_size)
    return TopOfBook(
        venue=VENUE,
        instrument=m.sym,
        ts_venue=in_window(m.t * _MS, bounds),
        ts_recv=ts_recv,
        bid_price=bid_price,
        bid_size=bid_size,
        ask_price=ask_price,
        ask_size=ask_size,
        sequence=m.q,
    )


def _bar_open(open_ns: int, bounds: tuple[int, int]) -> int:
    """A bar's open: anywhere in history up to the window's end (bars open before they report)."""
    return in_window(open_ns, (EARLIEST_NS, bounds[1]))


def _ws_candle(m: WsAggregate, ts_recv: int, bounds: tuple[int, int]) -> Candle:
    open_time = _bar_open(m.s * _MS, bounds)
    close_time = in_window(m.e * _MS, bounds)
    if close_time < open_time:
        raise Invalid("invalid_candle_times", f"e {m.e} < s {m.s}")
    return Candle(
        venue=VENUE,
        instrument=m.sym,
        ts_venue=close_time,
        ts_recv=ts_recv,
        interval="1m",
        open_time=open_time,
        close_time=close_time,
        open=PRICES.decimal(m.o),
        high=PRICES.decimal(m.h),
        low=PRICES.decimal(m.l),
        close=PRICES.decimal(m.c),
        volume=SIZES.decimal(m.v),
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


class _RawPage(msgspec.Struct):
    """A page with its rows still raw: the slow path when one row does not decode."""

    status: str
    results: list[msgspec.Raw] = []
    next_url: str | None = None


_raw_page_decoder = msgspec.json.Decoder(_RawPage)
_aggs_decoder = msgspec.json.Decoder(AggsResponse)
_trades_decoder = msgspec.json.Decoder(TradesResponse)
_quotes_decoder = msgspec.json.Decoder(QuotesResponse)
_bar_decoder = msgspec.json.Decoder(AggBar)
_trade_row_decoder = msgspec.json.Decoder(TradeRow)
_quote_row_decoder = msgspec.json.Decoder(QuoteRow)

_Page = TypeVar("_Page", AggsResponse, TradesResponse, QuotesResponse)


def _rows(
    body: bytes,
    fast: msgspec.json.Decoder[_Page],
    one: msgspec.json.Decoder[T],
    what: str,
    rejects: Rejects,
) -> tuple[list[T], str | None] | None:
    """A page's rows and ``next_url``: all at once, or row by row when one is bad (counted).

    ``None`` (counted) when the body is not a page at all.
    """
    try:
        page = fast.decode(body)
        return list(page.results), page.next_url or None  # type: ignore[arg-type]
    except DECODE_ERRORS:
        pass
    raw = rejects.decode(_raw_page_decoder, body, f"bad_{what}_page")
    if raw is None:
        return None
    rows = rejects.decode_each(one, raw.results, f"invalid_{what}_row")
    return [row for row in rows if row is not None], raw.next_url or None


def parse_candles(
    body: bytes, symbol: str, interval: Interval, ts_recv: int, rejects: Rejects
) -> tuple[list[Candle], str | None] | None:
    """An aggregates page -> (candles in the page's order, ``next_url`` or None), or ``None``.

    A bar whose window has not ended at ``ts_recv`` (today's daily bar) is
    marked ``closed=False``: the venue will report it again with more volume.
    """
    page = _rows(body, _aggs_decoder, _bar_decoder, "aggs", rejects)
    if page is None:
        return None
    bounds = rejects.window.history(ts_recv)
    name = interval.name

    def candle(bar: AggBar) -> Candle:
        open_time = _bar_open(bar.t * _MS, bounds)
        close_time = interval.close_after(open_time)
        return Candle(
            venue=VENUE,
            instrument=symbol,
            ts_venue=close_time,
            ts_recv=ts_recv,
            interval=name,
            open_time=open_time,
            close_time=close_time,
            open=PRICES.decimal(bar.o),
            high=PRICES.decimal(bar.h),
            low=PRICES.decimal(bar.l),
            close=PRICES.decimal(bar.c),
            volume=SIZES.decimal(bar.v),
            trades=_count(bar.n),
            closed=close_time <= ts_recv,
        )

    candles = [rejects.guard("bar", candle, bar) for bar in page[0]]
    return [c for c in candles if c is not None], page[1]


def _count(count: int | None) -> int | None:
    if count is not None and count < 0:
        raise Invalid("invalid_size", count)
    return count


def parse_trades_page(
    body: bytes, symbol: str, ts_recv: int, rejects: Rejects
) -> tuple[list[Trade], str | None] | None:
    """A ``/v3/trades`` page -> (trades in the page's order, ``next_url`` or None), or ``None``."""
    page = _rows(body, _trades_decoder, _trade_row_decoder, "trades", rejects)
    if page is None:
        return None
    bounds = rejects.window.history(ts_recv)

    def trade(row: TradeRow) -> Trade:
        return Trade(
            venue=VENUE,
            instrument=symbol,
            ts_venue=in_window(row.sip_timestamp, bounds),
            ts_recv=ts_recv,
            trade_id=trade_id(row.exchange, row.trf_id, row.id),
            price=PRICES.decimal(row.price),
            size=SIZES.decimal(row.size),
        )

    trades = [rejects.guard("trade", trade, row) for row in page[0]]
    return [t for t in trades if t is not None], page[1]


def parse_quotes_page(
    body: bytes, symbol: str, ts_recv: int, rejects: Rejects
) -> tuple[list[TopOfBook], str | None] | None:
    """A ``/v3/quotes`` page -> (top-of-book events in order, ``next_url`` or None), or ``None``."""
    page = _rows(body, _quotes_decoder, _quote_row_decoder, "quotes", rejects)
    if page is None:
        return None
    bounds = rejects.window.history(ts_recv)

    def quote(row: QuoteRow) -> TopOfBook:
        bid_price, bid_size = _side(row.bid_price, row.bid_size)
        ask_price, ask_size = _side(row.ask_price, row.ask_size)
        return TopOfBook(
            venue=VENUE,
            instrument=symbol,
            ts_venue=in_window(row.sip_timestamp, bounds),
            ts_recv=ts_recv,
            bid_price=bid_price,
            bid_size=bid_size,
            ask_price=ask_price,
            ask_size=ask_size,
            sequence=row.sequence_number,
        )

    quotes = [rejects.guard("quote", quote, row) for row in page[0]]
    return [q for q in quotes if q is not None], page[1]
