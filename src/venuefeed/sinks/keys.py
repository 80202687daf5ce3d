"""Natural keys and deterministic message ids, one definition for every sink.

ARCHITECTURE rule 4 makes every sink idempotent on a record's natural key.
The SQL stores enforce it with unique constraints (:mod:`venuefeed.schema`);
the buses and the Parquet writer need the same identity as one string -- a
NATS ``Nats-Msg-Id`` the server deduplicates on, a Kafka header a consumer
can deduplicate on, a ``_id`` column in Parquet. Defining that identity here,
next to nothing else, keeps "the same fact" meaning the same thing in every
sink.

The key follows the table's natural key in :mod:`venuefeed.schema`. Where a
table upserts (candles while the bar is open, data gaps when they heal) the
changing fields are part of the identity too: an update is a new fact for a
bus, an exact repeat is not. ``ts_recv`` is never part of it -- the same
trade received again after a reconnect is the same trade.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from venuefeed.models import (
    AccountFill,
    AccountOrder,
    BookDelta,
    BookSnapshot,
    BookState,
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
from venuefeed.sinks import rows
from venuefeed.sinks.base import RawMessage, Record, Watermark

__all__ = ["message_id", "natural_key", "partition_key"]

_encode = msgspec.msgpack.Encoder().encode


def natural_key(record: Record) -> tuple[Any, ...]:
    """What identifies ``record``: its type tag followed by its natural-key fields."""
    r = record
    if isinstance(r, Trade):
        return ("trade", r.venue, r.instrument, r.trade_id)
    if isinstance(r, BookDelta):
        return ("book_delta", r.venue, r.instrument, r.ts_venue, r.sequence, r.bids, r.asks)
    if isinstance(r, TopOfBook):
        return ("top_of_book", r.venue, r.instrument, r.ts_venue, r.sequence)
    if isinstance(r, PriceUpdate):
        return ("price_update", r.venue, r.instrument, r.ts_venue, r.source, r.price)
    if isinstance(r, BookSnapshot):
        # Without a venue sequence, two book states can share a millisecond: the
        # digest of the levels tells them apart (as in the SQL stores' key).
        digest = rows.snapshot_digest(r)
        return ("book_snapshot", r.venue, r.instrument, r.ts_venue, r.sequence, digest)
    if isinstance(r, WhaleTrade):
        return ("whale_trade", r.venue, r.trade_id, r.trader_address)
    if isinstance(r, AccountFill):
        return ("account_fill", r.venue, r.fill_id)
    if isinstance(r, AccountOrder):
        return ("account_order", r.venue, r.order_id, r.status, r.filled_size)
    if isinstance(r, WhalePosition):
        return ("whale_position", r.venue, r.trader_address, r.instrument, r.ts_venue)
    if isinstance(r, PairQuote):
        return ("pair_quote", r.venue, r.instrument, r.ts_venue)
    if isinstance(r, Candle):
        return (
            "candle", r.venue, r.instrument, r.interval, r.open_time,
            r.high, r.low, r.close, r.volume, r.trades, r.closed,
        )  # fmt: skip
    if isinstance(r, MarketStatusChange):
        return ("market_status", r.venue, r.instrument, r.ts_venue, r.status.value)
    if isinstance(r, DataGap):
        return ("data_gap", r.venue, r.instrument, r.cause, r.start, r.end, r.detail, r.healed)
    if isinstance(r, BookState):
        return ("book_state", r.venue, r.instrument, r.ts_venue, r.state, r.reason)
    if isinstance(r, Market):
        # Any change to a market (status, prices in the outcomes) is news on a bus.
        return ("market", r.venue, r.market_id, hashlib.sha256(_encode(r)).hexdigest())
    if isinstance(r, Watermark):
        return ("watermark", r.key, r.value)
    if isinstance(r, RawMessage):
        return ("raw", r.venue, r.channel, r.ts_recv)
    raise TypeError(f"no natural key for {type(r).__name__}")


def message_id(record: Record) -> str:
    """A short, deterministic id of ``record``'s natural key (32 hex characters)."""
    return hashlib.blake2b(_encode(natural_key(record)), digest_size=16).hexdigest()


def partition_key(record: Record) -> str:
    """What orders records on a bus: the instrument (a market's id for markets)."""
    if isinstance(record, Market):
        return record.market_id
    if isinstance(record, Watermark):
        return record.key
    if isinstance(record, RawMessage):
        return record.venue
    return record.instrument
