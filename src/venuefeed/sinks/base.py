"""The contract every sink keeps (ARCHITECTURE rule 4).

``write`` returns only once the batch is durable in that sink -- committed,
acknowledged by the broker, flushed to disk -- so the caller may acknowledge
upstream. Writes are idempotent on the records' natural keys: the router
delivers at least once (retries, spool replay, restarts), the sink stores
exactly once.

How a sink fails says what may happen to the batch (ARCHITECTURE rule 6):

* :class:`InvalidRecords` -- the sink *proves* the data is at fault (a
  constraint or data error): writing the same records again will fail again.
  The caller bisects the batch down to the offending record and sets that one
  aside in the dead-letter store (:mod:`venuefeed.sinks.deadletter`).
* :class:`SinkUnavailable` -- the backend cannot take the batch right now
  (disk full, I/O error, lock, timeout, connection refused or stalled). The
  batch is kept -- spooled or held -- and written again later.
* Anything else is a failure nobody could classify. It is treated exactly like
  :class:`SinkUnavailable`: keeping a batch too long costs time, dropping it
  costs data.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import msgspec

from venuefeed.models import DataGap, Event, Market

if TYPE_CHECKING:
    from venuefeed.sinks.deadletter import DeadLetterStore

__all__ = [
    "InvalidRecords",
    "RawMessage",
    "Record",
    "Sink",
    "SinkUnavailable",
    "Watermark",
    "failure_text",
]


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
    """The backend cannot store the batch right now; keep it and try again later.

    The message names the sink and the real cause (``"sqlite: disk full ..."``):
    it is what status shows an operator.
    """


class InvalidRecords(Exception):
    """The sink proves that (part of) the batch can never be stored as it is.

    Raised only for errors caused by the records' content -- a constraint or a
    value the backend refuses -- never for the state of the backend. Either
    the whole batch was rolled back and the caller finds the culprit by
    bisecting, or the sink knows each refusal individually (a broker's
    per-message report) and names the refused ``records``: then every other
    record of the batch *was* stored.
    """

    def __init__(self, sink: str, reason: str, records: Sequence[Record] | None = None) -> None:
        super().__init__(f"{sink}: {reason}")
        self.sink = sink
        self.reason = reason
        self.records = records


def failure_text(sink: str, exc: BaseException) -> str:
    """What an operator reads about a failed write: the sink and the real cause."""
    if isinstance(exc, SinkUnavailable | InvalidRecords):
        return str(exc)
    return f"{sink}: {type(exc).__name__}: {exc}"


class Sink(abc.ABC):
    """One destination for records."""

    name: ClassVar[str]
    dead_letters: DeadLetterStore | None = None
    """Where this sink sets aside the records it proves invalid, when it does so itself
    (the spool and the fan-out built by :func:`~venuefeed.sinks.fanout.build_sinks`);
    ``None`` leaves that to the caller."""

    async def start(self) -> None:
        """Connect and prepare (create tables, topics, streams)."""

    @abc.abstractmethod
    async def write(self, batch: Sequence[Record]) -> None:
        """Store ``batch`` durably and idempotently; raise SinkUnavailable if unreachable."""

    async def close(self) -> None:
        """Flush what is pending and release connections, within a bounded time."""

    def problems(self) -> list[str]:
        """Storage trouble this sink knows of right now, one line each (cheap: per status call)."""
        return []

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
