"""The contract every sink keeps (ARCHITECTURE rule 4).

``write`` returns only once the batch is durable in that sink -- committed,
acknowledged by the broker, flushed to disk -- so the caller may acknowledge
upstream. Writes are idempotent on the records' natural keys: the router
delivers at least once (retries, spool replay, restarts), the sink stores
exactly once. A sink that cannot reach its backend raises
:class:`SinkUnavailable`; the router then spools the batch and retries.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import msgspec

from venuefeed.models import DataGap, Event, Market

__all__ = ["RawMessage", "Record", "Sink", "SinkUnavailable", "Watermark"]


class Watermark(msgspec.Struct, frozen=True):
    """Progress of a resumable job (a backfill chunk done, a poller's last id).

    Written in the same transaction as the data it vouches for, so a job that
    is killed resumes exactly where its stored data ends. Stores with
    transactions keep it; buses ignore it.
    """

    key: str
    value: str


class RawMessage(msgspec.Struct, frozen=True):
    """A venue frame exactly as received (``storage.raw_messages``: off by default).

    For debugging a parser against what the venue really sent. SQL stores keep
    it in ``raw_messages``; buses and Parquet do not carry it.
    """

    venue: str
    channel: str
    ts_recv: int
    payload: bytes


Record = Event | Market | Watermark | RawMessage
"""Anything a sink receives: canonical events, market metadata, watermarks, raw frames."""


class SinkUnavailable(Exception):
    """The backend is unreachable right now; the batch was not stored."""


class Sink(abc.ABC):
    """One destination for records."""

    name: ClassVar[str]

    async def start(self) -> None:
        """Connect and prepare (create tables, topics, streams)."""

    @abc.abstractmethod
    async def write(self, batch: Sequence[Record]) -> None:
        """Store ``batch`` durably and idempotently; raise SinkUnavailable if unreachable."""

    async def close(self) -> None:
        """Flush what is pending and release connections."""

    async def read_watermarks(self, prefix: str) -> dict[str, str]:
        """Stored watermarks whose key starts with ``prefix`` (resumable jobs read them).

        Sinks without transactions (buses, files) hold none and return ``{}``.
        """
        return {}

    async def read_open_gaps(self, venue: str) -> list[DataGap]:
        """Gaps of ``venue`` stored as open (not healed, not given up), oldest first.

        After a restart the service heals them like fresh ones, so the ledger
        never keeps an entry open that was in fact recovered. Sinks that cannot
        be queried hold none.
        """
        return []

    async def __aenter__(self) -> Sink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
