"""Records -> table rows, shared by every SQL sink (and the Parquet writer).

Rows hold Python-native values in :meth:`Table.insert_columns` order:
decimals stay canonical strings (SQLite stores them as TEXT; the PostgreSQL
sink turns them into ``Decimal`` for NUMERIC), booleans are ``bool``.
Book snapshots and markets need more than one statement (levels reference
the snapshot id, markets keep versions) and are handled by the stores with
the helpers at the bottom.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from venuefeed import schema
from venuefeed.exact import canon
from venuefeed.models import (
    AccountFill,
    AccountOrder,
    BookDelta,
    BookSnapshot,
    Candle,
    DataGap,
    Market,
    MarketStatusChange,
    PairQuote,
    PriceUpdate,
    TopOfBook,
    Trade,
    WhalePosition,
    WhaleTrade,
)
from venuefeed.sinks.base import RawMessage

__all__ = [
    "ROW_BUILDERS",
    "level_rows",
    "market_row",
    "market_version_hash",
    "raw_row",
    "snapshot_digest",
    "snapshot_row",
]

Row = tuple[Any, ...]


def _seq(value: int | None) -> int:
    return -1 if value is None else value


def _trade(t: Trade) -> Iterator[Row]:
    yield (
        t.venue, t.instrument, t.trade_id, t.market_id, t.price, t.size, t.side,
        t.maker, t.taker, t.ts_venue, t.ts_recv, ",".join(t.flags),
    )  # fmt: skip


def _quote(q: TopOfBook) -> Iterator[Row]:
    yield (
        q.venue, q.instrument, q.ts_venue, q.ts_recv, _seq(q.sequence),
        q.bid_price, q.bid_size, q.ask_price, q.ask_size,
    )  # fmt: skip


def _price_update(p: PriceUpdate) -> Iterator[Row]:
    yield (p.venue, p.instrument, p.ts_venue, p.ts_recv, p.source, p.price, p.size, p.side)


def _candle(c: Candle) -> Iterator[Row]:
    yield (
        c.venue, c.instrument, c.interval, c.open_time, c.close_time, c.open, c.high, c.low,
        c.close, c.volume, c.trades, c.closed, c.ts_venue, c.ts_recv,
    )  # fmt: skip


def _delta(d: BookDelta) -> Iterator[Row]:
    seq = _seq(d.sequence)
    for side, levels in (("bid", d.bids), ("ask", d.asks)):
        for level in levels:  # delta levels carry the venue's text: canonical at rest
            yield (d.venue, d.instrument, d.ts_venue, d.ts_recv, seq, side,
                   canon(level.price), canon(level.size))  # fmt: skip


def _status(s: MarketStatusChange) -> Iterator[Row]:
    previous = s.previous.value if s.previous is not None else None
    yield (s.venue, s.instrument, s.ts_venue, s.ts_recv, s.status.value, previous, s.detail)


def _gap(g: DataGap) -> Iterator[Row]:
    healed_at = g.ts_recv if g.healed else None
    instruments = msgspec.json.encode(g.instruments).decode()
    yield (g.venue, g.instrument, g.cause, g.start, g.end, g.detail, g.healed, healed_at,
           instruments)  # fmt: skip


OPEN_GAPS_SQL = (
    "SELECT instrument, cause, start_ns, end_ns, detail, instruments FROM data_gaps "
    "WHERE venue = $1 AND NOT healed AND detail NOT LIKE 'not healable%' ORDER BY start_ns"
)
"""Open gaps of one venue (``$1``; SQLite callers use ``?``), as :func:`gap_from_row` reads them."""


def gap_from_row(venue: str, row: Row) -> DataGap:
    """A stored open gap back as an event (the ledger key fields are what matter)."""
    instrument, cause, start, end, detail, instruments = row
    listed = instruments if isinstance(instruments, str) else msgspec.json.encode(instruments)
    return DataGap(
        venue=venue,
        instrument=str(instrument),
        ts_venue=0,
        ts_recv=int(start),
        cause=str(cause),
        start=int(start),
        end=int(end or 0),
        detail=str(detail or ""),
        instruments=tuple(msgspec.json.decode(listed or "[]", type=list[str])),
    )


def _account_fill(f: AccountFill) -> Iterator[Row]:
    yield (
        f.venue, f.instrument, f.fill_id, f.order_id, f.trade_id, f.side, f.price, f.size,
        f.is_taker, f.fee, f.ts_venue, f.ts_recv,
    )  # fmt: skip


def _account_order(o: AccountOrder) -> Iterator[Row]:
    yield (
        o.venue, o.instrument, o.order_id, o.status, o.side, o.price, o.remaining_size,
        o.filled_size, o.client_order_id, o.ts_venue, o.ts_recv,
    )  # fmt: skip


def _whale(w: WhaleTrade) -> Iterator[Row]:
    yield (
        w.venue, w.trade_id, w.trader_address, w.market_id, w.instrument, w.side, w.size,
        w.price, w.amount, w.ts_venue, w.ts_recv, w.known_whale,
    )  # fmt: skip


def _whale_position(w: WhalePosition) -> Iterator[Row]:
    yield (
        w.venue, w.instrument, w.ts_venue, w.ts_recv, w.trader_address, w.action, w.size,
        w.previous, w.change, w.avg_price, w.market_id, w.title, w.outcome,
    )  # fmt: skip


def _pair_quote(q: PairQuote) -> Iterator[Row]:
    yield (
        q.venue, q.instrument, q.ts_venue, q.ts_recv, q.kalshi_market, q.polymarket_token,
        q.mapping, q.kalshi_bid, q.kalshi_ask, q.polymarket_bid, q.polymarket_ask,
        q.edge_buy_kalshi, q.edge_buy_polymarket, q.best_edge,
    )  # fmt: skip


ROW_BUILDERS: dict[type[Any], tuple[schema.Table, Callable[[Any], Iterator[Row]]]] = {
    Trade: (schema.TRADES, _trade),
    TopOfBook: (schema.QUOTES, _quote),
    PriceUpdate: (schema.PRICE_UPDATES, _price_update),
    Candle: (schema.CANDLES, _candle),
    BookDelta: (schema.BOOK_DELTAS, _delta),
    MarketStatusChange: (schema.MARKET_STATUS_CHANGES, _status),
    DataGap: (schema.DATA_GAPS, _gap),
    WhaleTrade: (schema.WHALE_ACTIVITY, _whale),
    AccountFill: (schema.ACCOUNT_FILLS, _account_fill),
    AccountOrder: (schema.ACCOUNT_ORDERS, _account_order),
    WhalePosition: (schema.WHALE_POSITIONS, _whale_position),
    PairQuote: (schema.PAIR_QUOTES, _pair_quote),
}
"""Event type -> (table, rows). Book snapshots and markets are handled separately."""

UPSERT_COLUMNS: dict[str, tuple[str, ...]] = {
    # A candle is re-sent while its bar is open; the last word wins.
    "candles": ("close_time", "high", "low", "close", "volume", "trades", "closed", "ts_recv"),
    # A gap is stored when opened and again when closed or healed.
    "data_gaps": ("end_ns", "detail", "healed", "healed_at", "instruments"),
}


def raw_row(m: RawMessage) -> Row:
    return (m.venue, m.channel, m.ts_recv, m.payload)


def snapshot_digest(s: BookSnapshot) -> str:
    """Digest of the levels: identifies a book state independently of when it was seen."""
    return hashlib.blake2b(msgspec.json.encode((s.bids, s.asks)), digest_size=12).hexdigest()


def snapshot_row(s: BookSnapshot) -> Row:
    return (
        s.venue, s.instrument, s.ts_venue, s.ts_recv, _seq(s.sequence), s.checksum,
        snapshot_digest(s),
    )  # fmt: skip


def level_rows(s: BookSnapshot, snapshot_id: int) -> list[Row]:
    return [
        (snapshot_id, side, i, canon(level.price), canon(level.size))
        for side, levels in (("bid", s.bids), ("ask", s.asks))
        for i, level in enumerate(levels)
    ]


def _outcomes_json(m: Market) -> str:
    return msgspec.json.encode(
        [{"name": o.name, "token_id": o.token_id} for o in m.outcomes]
    ).decode()


def market_version_hash(m: Market) -> str:
    """Digest of what makes a market version: rules and metadata, not status or prices."""
    identity = (
        m.title, m.rules, m.event_id, m.slug, _outcomes_json(m), m.open_time, m.close_time,
        m.resolution_time, m.tick_size, m.min_size, m.category,
    )  # fmt: skip
    return hashlib.sha256(msgspec.json.encode(identity)).hexdigest()[:32]


def market_row(m: Market, version: int, now_ns: int) -> Row:
    """A ``markets`` row (``first_seen`` and ``updated_at`` both ``now_ns``)."""
    return (
        m.venue, m.market_id, m.event_id, m.slug, m.title, m.rules, _outcomes_json(m),
        m.status.value, m.open_time, m.close_time, m.resolution_time, m.tick_size, m.min_size,
        m.category, m.raw_hash, market_version_hash(m), version, now_ns, now_ns,
    )  # fmt: skip


def market_version_row(m: Market, version: int, now_ns: int) -> Row:
    """A ``market_versions`` row."""
    return (
        m.venue, m.market_id, version, m.event_id, m.slug, m.title, m.rules, _outcomes_json(m),
        m.status.value, m.open_time, m.close_time, m.resolution_time, m.tick_size, m.min_size,
        m.category, m.raw_hash, market_version_hash(m), now_ns,
    )  # fmt: skip
