"""Venue timestamps to integer nanoseconds (the canonical time unit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["iso_to_ns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def iso_to_ns(text: str | None) -> int | None:
    """ISO-8601/RFC3339 text (``"2026-08-19T15:37:39Z"``) as ns, exact to the µs.

    ``None`` for missing or unreadable text: venues leave optional times empty,
    and a bad time must not cost the rest of the record. A time without a zone
    is taken as UTC.
    """
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _US * 1000
