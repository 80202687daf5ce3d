"""The sans-IO side of a venue: frames in, events and commands out.

A :class:`VenueFeed` holds everything a venue's live data needs to be right --
books, sequence numbers, the checks that catch a missed update -- and none of
the I/O (ARCHITECTURE rule 2). It is given batches of frames and answers with
canonical events plus :data:`Command` values saying what the outside world
should do: send a frame on a connection, or fetch something over REST. The one
generic pump (:mod:`venuefeed.venues.pump`) does the I/O for every venue; the
feed is tested by feeding it bytes.

Never raising is part of the contract: a bad frame is a counted rejection in
:attr:`VenueFeed.rejects`, never an exception.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from venuefeed.book import OrderBook
from venuefeed.models import Event, Market
from venuefeed.transport import Frame
from venuefeed.venues.rejects import Rejects

__all__ = ["Command", "Fetch", "Output", "Resubscribe", "Send", "VenueFeed"]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``frame`` on connection ``conn`` (Kalshi's ``get_snapshot`` for one sid)."""

    conn: int
    frame: str | bytes


@dataclass(frozen=True, slots=True)
class Fetch:
    """Fetch ``keys`` of kind ``what`` over REST; the results come back to
    :meth:`VenueFeed.on_fetched` (or :meth:`VenueFeed.on_fetch_failed`).

    The pump coalesces the keys of fetches of one kind that are still pending,
    so asking twice costs one request.
    """

    what: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Resubscribe:
    """Drop and renew the subscriptions of ``instruments`` (still subscribed ones only).

    For venues whose subscription itself can go silent while the socket stays
    up (Polymarket's per-asset stalls): a fresh subscription brings a fresh
    snapshot, where a REST book alone would leave the subscription dead.
    """

    instruments: tuple[str, ...]


Command = Send | Fetch | Resubscribe


class Output(msgspec.Struct, frozen=True, gc=False):
    """What a feed answers: events to publish, commands to carry out, and markets
    it learned from the stream itself (they go to the stream's ``on_market``).

    A msgspec struct, not a NamedTuple: one is built per batch of frames, and a
    NamedTuple's Python-level constructor costs four times as much.
    """

    events: list[Event]
    commands: list[Command]
    markets: Sequence[Market] = ()


NOTHING = Output([], [])


@dataclass(eq=False)
class FeedCounters:
    """What the service reads about a feed, the same for every venue."""

    frames: int = 0
    events: int = 0
    last_frame_ns: dict[int, int] = field(default_factory=dict)
    """Receive time of the newest frame, per connection."""


class VenueFeed(abc.ABC):
    """One venue's live state machine. Subclasses keep books and sequences."""

    venue: str
    rejects: Rejects
    timer_interval: float | None = None
    """Seconds between :meth:`on_timer` calls (audits, retries); None: never."""

    def __init__(self) -> None:
        self.counters = FeedCounters()

    # -- subscriptions -------------------------------------------------------

    def canonical(self, instrument: str) -> str:
        """The venue's own spelling of ``instrument`` (Binance symbols are upper case),
        so a subscription made as ``btcusdt`` is found again as ``BTCUSDT``."""
        return instrument

    def subscriptions(self, instruments: Iterable[str]) -> list[str]:
        """The transport subscriptions that carry ``instruments`` (default: the same names)."""
        return list(instruments)

    def instruments(self, subscriptions: Iterable[str]) -> list[str]:
        """The instruments carried by transport ``subscriptions`` (the inverse)."""
        return list(dict.fromkeys(subscriptions))

    def on_subscribed(self, instruments: Sequence[str]) -> Output:
        """``instruments`` were added; the default needs nothing."""
        return NOTHING

    def on_unsubscribed(self, instruments: Sequence[str]) -> Output:
        """``instruments`` were dropped: forget their state."""
        return NOTHING

    # -- input ---------------------------------------------------------------

    @abc.abstractmethod
    def on_frames(self, frames: Sequence[Frame]) -> Output:
        """A batch of frames in arrival order."""

    def on_reconnected(self, conn: int, ts_recv: int) -> Output:
        """Connection ``conn`` was replaced and resubscribed (the pump records the gap)."""
        return NOTHING

    def on_fetched(self, what: str, results: Sequence[Any], ts_recv: int) -> Output:
        """Results of a :class:`Fetch`."""
        return NOTHING

    def on_fetch_failed(self, what: str, keys: Sequence[str], error: str) -> Output:
        """A :class:`Fetch` failed after the transport's retries; default: nothing."""
        return NOTHING

    def on_timer(self, now: int) -> Output:
        """Called every :attr:`timer_interval` seconds."""
        return NOTHING

    def resync(self, instrument: str, ts_recv: int) -> Output:
        """Rebuild one instrument's book (a liveness check found it silent and wrong)."""
        return NOTHING

    # -- state ---------------------------------------------------------------

    def book(self, instrument: str) -> OrderBook | None:
        return None

    def state(self) -> str | None:
        """A venue-level state that overrides the transport's (e.g. ``auth_failed``)."""
        return None
