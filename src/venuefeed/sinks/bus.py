"""What the event-bus sinks (Kafka, NATS) share: topics and the wire encoding.

Consumers of the bus see the canonical event shapes (:mod:`venuefeed.models`)
as JSON -- or msgpack, same fields -- with their ``type`` tag. A
:class:`~venuefeed.models.Market` is not a tagged event, so it is sent as its
msgspec encoding with ``"type": "market"`` added. Watermarks are bookkeeping
for stores and are not published.
"""

from __future__ import annotations

from typing import Any, Literal

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
    event_encoder,
)
from venuefeed.pipeline.whales import whale_event
from venuefeed.sinks.base import Record

__all__ = ["TOPICS", "WireFormat", "encode", "topic_for", "type_tag"]

WireFormat = Literal["json", "msgpack"]

TOPICS: dict[type[Any], str] = {
    WhaleTrade: "whale_activity",
    WhalePosition: "whale_activity",
    PairQuote: "arb_spreads",
    Trade: "market_trades",
    BookSnapshot: "order_books",
    BookDelta: "order_books",
    Market: "market_updates",
    MarketStatusChange: "market_updates",
    TopOfBook: "market_updates",
    PriceUpdate: "market_updates",
    Candle: "market_updates",
    BookState: "market_updates",
    DataGap: "market_updates",
    AccountFill: "account_activity",
    AccountOrder: "account_activity",
}
"""Record type -> topic. Types not listed (watermarks) are not published."""

_msgpack = msgspec.msgpack.Encoder()


def topic_for(record: Record) -> str | None:
    """The topic ``record`` is published on, or ``None`` if it is not published."""
    return TOPICS.get(type(record))


def encode(record: Record, fmt: WireFormat = "json") -> bytes:
    """The record's canonical wire form."""
    if isinstance(record, Market | WhaleTrade):
        body: dict[str, Any] = (
            {"type": "market", **msgspec.to_builtins(record)}
            if isinstance(record, Market)
            else {"type": "whale_trade", **whale_event(record)}
        )
        return msgspec.json.encode(body) if fmt == "json" else _msgpack.encode(body)
    if isinstance(record, WhalePosition):  # whale_activity carries seed 001's event_type
        position = {"event_type": "whale_position", **msgspec.to_builtins(record)}
        return msgspec.json.encode(position) if fmt == "json" else _msgpack.encode(position)
    if fmt == "json":
        return event_encoder.encode(record)
    return _msgpack.encode(record)


def type_tag(record: Record) -> str:
    """The ``type`` a consumer sees in the payload (``"trade"``, ``"market"`` ...)."""
    if isinstance(record, Market):
        return "market"
    tag = type(record).__struct_config__.tag
    return str(tag)
