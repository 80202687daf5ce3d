"""Pure Polymarket parsing: wire bytes and structs in, canonical events out.

Nothing here does I/O (ARCHITECTURE rule 1), so the live stream, replays,
tests and the benchmark share it. Two layers:

* :class:`FrameDecoder` turns one WebSocket frame (an object, an array of
  objects, or a text notice such as ``PONG``) into typed
  :mod:`.protocol` messages. The fast path is a single ``msgspec`` decode into
  a tagged union; only when that fails does it fall back to decoding element
  by element, so one bad or unknown element never costs the good ones.
* Converters from those messages (and from REST responses) to canonical
  events. The stream uses them directly because it also needs the venue's
  own view of the top of book (``best_bid``/``best_ask`` on each change) to
  check its local book; :func:`parse_frame` composes them for replays.

Numbers stay canonical strings (:func:`venuefeed.exact.canon`); ``Decimal`` is
only built for the Data API and Gamma, whose numbers are JSON numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final

import msgspec

from venuefeed import exact
from venuefeed.models import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    Candle,
    Event,
    Market,
    MarketStatus,
    MarketStatusChange,
    Outcome,
    PriceUpdate,
    Side,
    TopOfBook,
    Trade,
)
from venuefeed.times import iso_to_ns
from venuefeed.venues.polymarket.protocol import (
    BestBidAskMsg,
    BookMsg,
    BookSummary,
    DataTrade,
    EventTypeOnly,
    GammaEvent,
    GammaMarket,
    HistoryPoint,
    LastTradeMsg,
    MarketResolvedMsg,
    NewMarketMsg,
    PriceChangeMsg,
    TickSizeMsg,
    WireLevel,
    WsMessage,
)
from venuefeed.venues.rejects import Rejects

__all__ = [
    "VENUE",
    "Change",
    "FrameDecoder",
    "Rejects",
    "book_hash",
    "book_snapshot",
    "candles",
    "data_trade",
    "gamma_market",
    "iso_to_ns",
    "market_resolved",
    "new_market",
    "parse_frame",
    "price_changes",
    "tick_size_change",
    "top_of_book",
    "trade_from_ws",
    "trade_id",
]

VENUE: Final = "polymarket"
_MS: Final = 1_000_000
_KNOWN_TYPES: Final = frozenset(
    {
        "book",
        "price_change",
        "last_trade_price",
        "tick_size_change",
        "best_bid_ask",
        "new_market",
        "market_resolved",
    }
)
_SIDES: Final[dict[str, Side]] = {"BUY": "buy", "SELL": "sell", "buy": "buy", "sell": "sell"}


class FrameDecoder:
    """One WebSocket frame -> typed market-channel messages; bad parts counted and skipped."""

    __slots__ = ("_any", "_fast", "_one", "_type_only", "rejects")

    def __init__(self, rejects: Rejects | None = None) -> None:
        self.rejects = rejects or Rejects(VENUE)
        self._fast = msgspec.json.Decoder(list[WsMessage] | WsMessage)
        self._one = msgspec.json.Decoder(WsMessage)
        self._any = msgspec.json.Decoder(list[msgspec.Raw] | dict[str, msgspec.Raw])
        self._type_only = msgspec.json.Decoder(EventTypeOnly)

    def decode(self, data: bytes | str) -> list[WsMessage]:
        """Decode a frame. Text notices (``PONG``, ``NO NEW ASSETS``) yield nothing."""
        if not data:
            return []
        if data[0] not in _JSON_START:
            data = data.strip()
            if not data or data[0] not in _JSON_START:
                return []
        try:
            msg = self._fast.decode(data)
        except msgspec.DecodeError:
            return self._slow(data)
        return msg if isinstance(msg, list) else [msg]

    def _slow(self, data: bytes | str) -> list[WsMessage]:
        try:
            outer = self._any.decode(data)
        except msgspec.DecodeError:
            self.rejects.reject("malformed_json", sample=data)
            return []
        raws: list[Any] = outer if isinstance(outer, list) else [msgspec.Raw(_as_bytes(data))]
        out: list[WsMessage] = []
        for raw in raws:
            try:
                out.append(self._one.decode(raw))
            except msgspec.DecodeError as exc:
                self._reject_element(raw, exc)
        return out

    def _reject_element(self, raw: msgspec.Raw, exc: msgspec.DecodeError) -> None:
        try:
            event_type = self._type_only.decode(raw).event_type
        except msgspec.DecodeError:
            event_type = ""
        if event_type and event_type not in _KNOWN_TYPES:
            self.rejects.reject("unknown_event_type", event_type)
        else:
            self.rejects.reject("invalid_fields", f"{event_type}: {exc}", bytes(raw))


_JSON_START: Final = frozenset({ord("{"), ord("["), "{", "["})


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


# -- small helpers -------------------------------------------------------------------


def ms_to_ns(text: str) -> int:
    """A venue millisecond timestamp (string) in ns."""
    return int(text) * _MS


def _canon(text: str) -> str:
    """:func:`exact.canon` without the call when there is nothing to strip (the common case)."""
    return exact.canon(text) if text[-1:] == "0" and "." in text else text


def _levels(levels: list[WireLevel], descending: bool) -> list[BookLevel]:
    """Canonical levels best-first, zero sizes dropped.

    The venue sends the best level *last* (and third-party docs claim the
    opposite), so the order is always established here rather than trusted.
    Polymarket prices lie in (0, 1]; for canonical text in that range
    (``"0.45"``, ``"0.455"``, ``"1"``) string order *is* numeric order, so
    the sort needs no ``float()`` per level.
    """
    out = [BookLevel(_canon(lv.price), _canon(lv.size)) for lv in levels if lv.size.strip("0.")]
    out.sort(key=_PRICE, reverse=descending)
    return out


_PRICE = attrgetter("price")


def trade_id(
    asset_id: str,
    side: str,
    size: str,
    price: str,
    transaction_hash: str = "",
    timestamp_ms: int = 0,
) -> str:
    """A deterministic trade id, so replays and the two trade sources deduplicate.

    Polymarket's public prints carry no trade id. When the on-chain
    ``transaction_hash`` is known (Data API rows always, WebSocket prints in
    the newer format) the id is derived from it plus asset, side, size and
    price -- the same fields in both sources, so a trade seen live and again
    in a backfill gets one id. Without it, the print's own timestamp stands
    in for the hash. All numbers must be canonical strings. Two fills in one
    transaction with identical asset, side, size and price collapse into one
    (accepted: they are indistinguishable in the public data).
    """
    if transaction_hash:
        key = f"{transaction_hash.lower()}|{asset_id}|{side}|{size}|{price}"
    else:
        key = f"ts:{timestamp_ms}|{asset_id}|{side}|{size}|{price}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


# -- WebSocket messages -> canonical events --------------------------------------------


def book_snapshot(
    msg: BookMsg | BookSummary, ts_recv: int, depth: int | None = None
) -> BookSnapshot:
    """A ``book`` frame or REST summary as a best-first snapshot (``depth`` levels per side)."""
    bids = _levels(msg.bids, descending=True)
    asks = _levels(msg.asks, descending=False)
    if depth is not None:
        bids, asks = bids[:depth], asks[:depth]
    return BookSnapshot(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=int(msg.timestamp) * _MS,
        ts_recv=ts_recv,
        bids=bids,
        asks=asks,
        checksum=msg.hash or None,
    )


Change = tuple[BookDelta, str | None, str | None]
"""One asset's delta from a ``price_change`` and the venue's top after it (bid, ask)."""


def price_changes(
    msg: PriceChangeMsg, ts_recv: int, rejects: Rejects | None = None
) -> list[Change]:
    """A ``price_change`` in any of its three shapes as one delta per asset.

    Sizes are absolute (``"0"`` removes the level); BUY is the bid side. The
    per-asset ``best_bid``/``best_ask`` of the current shape come back with
    each delta (the last item's, i.e. after all of that asset's changes) so the
    caller can check its book; older shapes have none.
    """
    ts = int(msg.timestamp) * _MS
    canon = _canon
    items = msg.price_changes
    if items is not None:
        grouped: dict[str, tuple[list[BookLevel], list[BookLevel], list[str | None]]] = {}
        for item in items:
            entry = grouped.get(item.asset_id)
            if entry is None:
                entry = grouped[item.asset_id] = ([], [], [None, None, None])
            side = item.side
            level = BookLevel(canon(item.price), canon(item.size))
            if side == "BUY":
                entry[0].append(level)
            elif side == "SELL":
                entry[1].append(level)
            else:
                _reject(rejects, "invalid_fields", f"price_change side {side!r}")
                continue
            top = entry[2]
            top[0], top[1], top[2] = item.best_bid, item.best_ask, item.hash
        return [
            (
                BookDelta(
                    venue=VENUE,
                    instrument=asset,
                    ts_venue=ts,
                    ts_recv=ts_recv,
                    bids=bids,
                    asks=asks,
                    checksum=top[2] or None,
                ),
                top[0],
                top[1],
            )
            for asset, (bids, asks, top) in grouped.items()
        ]
    if msg.asset_id is None:
        _reject(rejects, "invalid_fields", "price_change without price_changes or asset_id")
        return []
    if msg.changes is not None:
        raw = [(c.side, c.price, c.size) for c in msg.changes]
    elif msg.price is not None and msg.side is not None and msg.size is not None:
        raw = [(msg.side, msg.price, msg.size)]
    else:
        _reject(rejects, "invalid_fields", "price_change without changes")
        return []
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    for side, price, size in raw:
        if side in ("BUY", "SELL"):
            (bids if side == "BUY" else asks).append(BookLevel(canon(price), canon(size)))
        else:
            _reject(rejects, "invalid_fields", f"price_change side {side!r}")
    delta = BookDelta(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=ts,
        ts_recv=ts_recv,
        bids=bids,
        asks=asks,
        checksum=msg.hash or None,
    )
    return [(delta, None, None)]


def _reject(rejects: Rejects | None, reason: str, detail: str) -> None:
    if rejects is not None:
        rejects.reject(reason, detail)


def trade_from_ws(msg: LastTradeMsg, ts_recv: int) -> Trade | PriceUpdate:
    """A ``last_trade_price`` print: a :class:`Trade` when it has a size, else a price update.

    A print without size cannot be stored as a trade (the pipeline's G3 step
    may recover the size from REST trades), so it becomes a ``PriceUpdate``.
    """
    side = _SIDES.get(msg.side, "unknown")
    price = exact.canon(msg.price)
    ts_ms = int(msg.timestamp)
    if not msg.size:
        return PriceUpdate(
            venue=VENUE,
            instrument=msg.asset_id,
            ts_venue=ts_ms * _MS,
            ts_recv=ts_recv,
            price=price,
            side=side,
        )
    size = exact.canon(msg.size)
    return Trade(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=ts_ms * _MS,
        ts_recv=ts_recv,
        trade_id=trade_id(msg.asset_id, side, size, price, msg.transaction_hash, ts_ms),
        price=price,
        size=size,
        side=side,
        market_id=msg.market,
    )


def top_of_book(msg: BestBidAskMsg, ts_recv: int) -> TopOfBook:
    """The venue's own best bid/ask (sizes are not sent)."""
    return TopOfBook(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=int(msg.timestamp) * _MS,
        ts_recv=ts_recv,
        bid_price=exact.canon(msg.best_bid) if msg.best_bid else None,
        bid_size=None,
        ask_price=exact.canon(msg.best_ask) if msg.best_ask else None,
        ask_size=None,
    )


def tick_size_change(msg: TickSizeMsg, ts_recv: int) -> MarketStatusChange:
    """A tick-size change; the market stays open but every price grid shifts."""
    return MarketStatusChange(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=int(msg.timestamp) * _MS,
        ts_recv=ts_recv,
        status=MarketStatus.OPEN,
        previous=MarketStatus.OPEN,
        detail=f"tick_size {exact.canon(msg.old_tick_size)} -> {exact.canon(msg.new_tick_size)}",
    )


def market_resolved(msg: MarketResolvedMsg, ts_recv: int) -> list[MarketStatusChange]:
    """One ``resolved`` status per outcome token, saying whether that token won."""
    ts = int(msg.timestamp) * _MS
    return [
        MarketStatusChange(
            venue=VENUE,
            instrument=asset,
            ts_venue=ts,
            ts_recv=ts_recv,
            status=MarketStatus.RESOLVED,
            detail=(
                f"won ({msg.winning_outcome})"
                if asset == msg.winning_asset_id
                else f"lost (winner {msg.winning_outcome})"
            ),
        )
        for asset in msg.assets_ids
    ]


def new_market(msg: NewMarketMsg) -> Market:
    """A ``new_market`` announcement as market metadata."""
    tokens = msg.clob_token_ids or msg.assets_ids
    outcomes = tuple(
        Outcome(name, token) for name, token in zip(msg.outcomes, tokens, strict=False)
    )
    market_id = msg.condition_id or msg.market
    tick = exact.canon(msg.order_price_min_tick_size) if msg.order_price_min_tick_size else None
    status = MarketStatus.OPEN if msg.active else MarketStatus.UPCOMING
    event_id = msg.event_message.id if msg.event_message and msg.event_message.id else None
    category = msg.tags[0] if msg.tags else None
    return Market(
        venue=VENUE,
        market_id=market_id,
        title=msg.question,
        event_id=event_id,
        slug=msg.slug or None,
        rules=msg.description,
        outcomes=outcomes,
        status=status,
        open_time=int(msg.timestamp) * _MS,
        tick_size=tick,
        category=category,
        raw_hash=_market_hash(market_id, msg.question, msg.description, outcomes, None, tick, None),
    )


def parse_frame(
    data: bytes | str, ts_recv: int, decoder: FrameDecoder | None = None
) -> list[Event]:
    """Every canonical event in one WebSocket frame, without book bookkeeping (for replay).

    ``new_market`` carries metadata, not an event, and is left to
    :func:`new_market`; the live stream handles it.
    """
    dec = decoder or FrameDecoder()
    out: list[Event] = []
    for msg in dec.decode(data):
        if isinstance(msg, PriceChangeMsg):
            out.extend(change[0] for change in price_changes(msg, ts_recv, dec.rejects))
        elif isinstance(msg, BookMsg):
            out.append(book_snapshot(msg, ts_recv))
        elif isinstance(msg, LastTradeMsg):
            out.append(trade_from_ws(msg, ts_recv))
        elif isinstance(msg, BestBidAskMsg):
            out.append(top_of_book(msg, ts_recv))
        elif isinstance(msg, TickSizeMsg):
            out.append(tick_size_change(msg, ts_recv))
        elif isinstance(msg, MarketResolvedMsg):
            out.extend(market_resolved(msg, ts_recv))
    return out


# -- REST ------------------------------------------------------------------------------


def book_hash(summary: BookSummary) -> str:
    """The book digest as the official Python client computes it.

    SHA-1 of the compact JSON of the summary with ``hash`` blanked, keys in the
    client's field order, values exactly as received; fields the response
    lacked are ``null`` (the client's dataclass defaults). The server's
    algorithm has changed at least once, so a mismatch is an audit signal only.
    """
    body = {
        "market": summary.market,
        "asset_id": summary.asset_id,
        "timestamp": summary.timestamp,
        "hash": "",
        "bids": summary.bids,
        "asks": summary.asks,
        "min_order_size": summary.min_order_size,
        "tick_size": summary.tick_size,
        "neg_risk": summary.neg_risk,
        "last_trade_price": summary.last_trade_price,
    }
    return hashlib.sha1(msgspec.json.encode(body), usedforsecurity=False).hexdigest()


def data_trade(row: DataTrade, ts_recv: int) -> Trade | None:
    """A Data-API trade row as a trade (None for non-trade activity rows).

    ``proxyWallet`` is the taker for ``/trades`` (``takerOnly`` defaults to
    true) and the wallet queried for ``/activity``; it is kept as ``taker``.
    """
    side = _SIDES.get(row.side)
    if side is None or row.type != "TRADE":
        return None
    price = exact.from_decimal(row.price)
    size = exact.from_decimal(row.size)
    return Trade(
        venue=VENUE,
        instrument=row.asset,
        ts_venue=row.timestamp * 1_000_000_000,
        ts_recv=ts_recv,
        trade_id=trade_id(row.asset, side, size, price, row.transaction_hash, row.timestamp * 1000),
        price=price,
        size=size,
        side=side,
        market_id=row.condition_id,
        taker=row.proxy_wallet or None,
    )


def candles(
    points: Iterable[HistoryPoint], instrument: str, interval_s: int, ts_recv: int
) -> list[Candle]:
    """Bars from ``/prices-history`` points: OHLC of the points inside each interval.

    The endpoint gives prices only, so ``volume`` is ``"0"`` and ``trades`` None.
    """
    out: list[Candle] = []
    bucket: int | None = None
    o = h = lo = c = Decimal(0)
    sec = 1_000_000_000

    def close_bar() -> None:
        assert bucket is not None
        out.append(
            Candle(
                venue=VENUE,
                instrument=instrument,
                ts_venue=bucket * sec,
                ts_recv=ts_recv,
                interval=_interval_name(interval_s),
                open_time=bucket * sec,
                close_time=(bucket + interval_s) * sec - 1,
                open=exact.from_decimal(o),
                high=exact.from_decimal(h),
                low=exact.from_decimal(lo),
                close=exact.from_decimal(c),
                volume="0",
            )
        )

    for point in sorted(points, key=lambda p: p.t):
        start = point.t - point.t % interval_s
        if start != bucket:
            if bucket is not None:
                close_bar()
            bucket, o, h, lo = start, point.p, point.p, point.p
        h, lo, c = max(h, point.p), min(lo, point.p), point.p
    if bucket is not None:
        close_bar()
    return out


def _interval_name(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_str_list = msgspec.json.Decoder(list[str])


def _json_strings(text: str) -> list[str]:
    """Gamma's JSON-array-inside-a-string fields; malformed text is an empty list."""
    try:
        return _str_list.decode(text) if text else []
    except msgspec.DecodeError:
        return []


def gamma_market(m: GammaMarket, event: GammaEvent | None = None) -> Market:
    """A Gamma market (and its event, when listed through ``/events``) as metadata.

    Both outcome tokens are kept, in the venue's order. ``raw_hash`` covers
    the fields that define the contract (question, rules, outcomes, tokens,
    dates, tick and size rules, status), not volume or prices, so only a real
    change of terms creates a new market version.
    """
    names = _json_strings(m.outcomes)
    tokens = _json_strings(m.clob_token_ids)
    prices = _json_strings(m.outcome_prices)
    outcomes = tuple(
        Outcome(name, token, exact.validate(prices[i]) if i < len(prices) and prices[i] else None)
        for i, (name, token) in enumerate(zip(names, tokens, strict=False))
    )
    if m.closed:
        resolved = any(o.price == "1" for o in outcomes)
        status = MarketStatus.RESOLVED if resolved else MarketStatus.CLOSED
    elif not m.active:
        status = MarketStatus.UPCOMING
    elif m.accepting_orders is False:
        status = MarketStatus.PAUSED
    else:
        status = MarketStatus.OPEN
    ref = m.events[0] if m.events else None
    event_id = event.id if event is not None else (ref.id if ref is not None else None)
    tags = event.tags if event is not None else (ref.tags if ref is not None else [])
    category = m.category or (tags[0].label if tags else None)
    tick = exact.from_decimal(m.order_price_min_tick_size) if m.order_price_min_tick_size else None
    min_size = exact.from_decimal(m.order_min_size) if m.order_min_size is not None else None
    close_time = iso_to_ns(m.end_date)
    rules = m.description
    if m.resolution_source:
        rules = (
            f"{rules}\n\nResolution source: {m.resolution_source}" if rules else m.resolution_source
        )
    return Market(
        venue=VENUE,
        market_id=m.condition_id,
        title=m.question,
        event_id=event_id,
        slug=m.slug or None,
        rules=rules,
        outcomes=outcomes,
        status=status,
        open_time=iso_to_ns(m.start_date),
        close_time=close_time,
        resolution_time=iso_to_ns(m.closed_time),
        tick_size=tick,
        min_size=min_size,
        category=category,
        raw_hash=_market_hash(
            m.condition_id, m.question, rules, outcomes, close_time, tick, min_size, status, m.slug
        ),
    )


def _market_hash(
    market_id: str,
    title: str,
    rules: str,
    outcomes: tuple[Outcome, ...],
    close_time: int | None,
    tick: str | None,
    min_size: str | None,
    status: MarketStatus | None = None,
    slug: str = "",
) -> str:
    terms = [
        market_id,
        title,
        rules,
        [[o.name, o.token_id] for o in outcomes],
        close_time,
        tick,
        min_size,
        status.value if status is not None else None,
        slug,
    ]
    return hashlib.sha256(msgspec.json.encode(terms)).hexdigest()
