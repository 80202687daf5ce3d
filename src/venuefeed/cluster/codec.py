"""Bus messages back into records: the inverse of :func:`venuefeed.sinks.bus.encode`.

Writers store exactly what workers published, so the decoding must be total
(ARCHITECTURE "parsing is pure and total"): a payload that is not a record
we know is a :class:`Undecodable` with its reason, never an exception that
stops the writer.
"""

from __future__ import annotations

from typing import Any

import msgspec

from venuefeed.models import Event, Market, WhaleTrade, event_decoder
from venuefeed.sinks.base import Record

__all__ = ["Undecodable", "decode"]


class Undecodable(Exception):
    """A message that is no record this version of venuefeed knows."""


def _whale(body: dict[str, Any]) -> WhaleTrade:
    """The documented ``whale_trade`` shape (:func:`venuefeed.pipeline.whales.whale_event`)."""
    fields = {
        "venue": body["venue"],
        "instrument": body["token_id"],
        "ts_venue": body["timestamp"],
        "ts_recv": body["detected_at"],
        "trade_id": body["trade_id"],
        "trader_address": body["trader_address"],
        "side": body["side"],
        "price": body["price"],
        "size": body["size"],
        "amount": body["amount"],
        "market_id": body.get("market_id"),
        "known_whale": body.get("known_whale", False),
    }
    return msgspec.convert(fields, WhaleTrade)


def decode(data: bytes) -> Record:
    """One published payload (JSON, as the cluster publishes it) as its record."""
    try:
        head = msgspec.json.decode(data, type=dict[str, Any])
        kind = head.get("type") or head.get("event_type")
        if kind == "market":
            head.pop("type")
            return msgspec.convert(head, Market)
        if kind == "whale_trade" and "event_type" in head:
            return _whale(head)
        event: Event = event_decoder.decode(data)
        return event
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError) as exc:
        raise Undecodable(f"{type(exc).__name__}: {exc}"[:300]) from None
