"""The one pump between the transport and any venue feed.

:class:`FeedStream` is the :class:`~venuefeed.venues.base.VenueStream` of
every venue. It owns the I/O a :class:`~venuefeed.venues.feed.VenueFeed`
must not do, written once:

* **Batches.** It takes every item the session has already received
  (:meth:`WsSession.next_batch`) and hands the frames to the feed as one list;
  the events come out as one list per batch (:meth:`FeedStream.batches`).
  One queue hop between the socket and the consumer, one wake-up per burst.
* **Reconnects.** A replaced connection becomes one ``disconnect`` gap listing
  the instruments it carried, reported through ``on_gap`` before anything
  else sees it (the completeness watermark must never pass it), and the feed
  is told so it can resync its books. The gap healer back-fills the trades.
* **Commands.** ``Send`` goes out on its connection at once; ``Resubscribe``
  drops and renews subscriptions; ``Fetch`` is queued per kind, coalesced,
  run in the background with the transport's retries, and its results come
  back through the session's queue -- so the feed sees them in order with its
  frames, on the same task.
* **Timers.** Every ``feed.timer_interval`` a tick goes the same way.
* **Counters** the service reads from the contract: frames, events, rejects
  by reason, reconnects, the last frame per connection.
* **Companions.** A venue whose own-account data comes on another socket
  (Polymarket's user channel) hands the stream companion streams: they are
  subscribed and closed with it, their batches come out of this one's, and
  their state and counters are in :meth:`FeedStream.stats` -- one stream for
  the service, each socket with its own session and feed.

Anything the feed raises ends the stream: the supervisor restarts it (and
status shows it), and the restart is a gap like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from venuefeed.book import OrderBook
from venuefeed.log import get_logger
from venuefeed.models import DataGap, Event
from venuefeed.transport import (
    Frame,
    Note,
    Reconnected,
    WsNotConnectedError,
    WsPolicy,
    WsProtocol,
    WsSession,
)
from venuefeed.venues.base import VenueStream, disconnect_gap
from venuefeed.venues.feed import Fetch, Output, Resubscribe, Send, VenueFeed
from venuefeed.venues.rejects import Rejects

__all__ = ["FeedStream", "Fetcher"]

Fetcher = Callable[[str, Sequence[str]], Awaitable[Sequence[Any]]]
"""``fetch(what, keys)``: the venue's REST answer to a :class:`Fetch` (its adapter)."""

_log = get_logger("venuefeed.venues.pump")


@dataclass(frozen=True, slots=True)
class _Fetched:
    what: str
    keys: tuple[str, ...]
    results: Sequence[Any] | None
    error: str
    ts_recv: int


@dataclass(frozen=True, slots=True)
class _Tick:
    now: int


@dataclass(frozen=True, slots=True)
class _Failed:
    """A companion stream ended with an exception: it ends this stream too."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class _Emit:
    """Events a feed produced outside the pump (on subscribe, on a resync request)."""

    events: list[Event]


class FeedStream(VenueStream):
    """A venue's live stream: a session, a feed, and the pump between them."""

    def __init__(
        self,
        feed: VenueFeed,
        protocol: WsProtocol,
        policy: WsPolicy,
        *,
        fetch: Fetcher | None = None,
        fetch_batch: int = 50,
        companions: Sequence[FeedStream] = (),
    ) -> None:
        self.feed = feed
        self.companions = tuple(companions)
        """Streams on other sockets whose events come out of this one (see the module doc)."""
        self._relays: list[asyncio.Task[None]] = []
        self.session: WsSession = WsSession(feed.venue, protocol, policy)
        self._fetch = fetch
        self._fetch_batch = fetch_batch
        self._pending: dict[str, dict[str, None]] = {}
        self._fetchers: dict[str, asyncio.Task[None]] = {}
        self._timer: asyncio.Task[None] | None = None
        self._subscribed: dict[str, None] = {}
        self._closed = False

    # -- VenueStream -------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.feed.state() or str(self.session.state)

    @property
    def rejects(self) -> Rejects:
        """The feed's rejections (the adapter's, shared with its REST client)."""
        return self.feed.rejects

    def book(self, instrument: str) -> OrderBook | None:
        return self.feed.book(self.feed.canonical(instrument))

    def tap_raw(self, tap: Callable[[bytes | str, int], None]) -> None:
        self.session.raw_tap = tap

    async def subscribe(self, instruments: Iterable[str]) -> None:
        instruments = list(instruments)
        for companion in self.companions:
            await companion.subscribe(instruments)
        canonical = self.feed.canonical
        new = [i for i in dict.fromkeys(map(canonical, instruments)) if i not in self._subscribed]
        for instrument in new:
            self._subscribed[instrument] = None
        if new:
            await self._carry_out(self.feed.on_subscribed(new))
            await self.session.subscribe(self.feed.subscriptions(new))
        await self._start()

    async def unsubscribe(self, instruments: Iterable[str]) -> None:
        instruments = list(instruments)
        for companion in self.companions:
            await companion.unsubscribe(instruments)
        names = dict.fromkeys(map(self.feed.canonical, instruments))
        gone = [i for i in names if self._subscribed.pop(i, 0) is None]
        if gone:
            await self.session.unsubscribe(self.feed.subscriptions(gone))
            await self._carry_out(self.feed.on_unsubscribed(gone))

    async def resync(self, instrument: str) -> None:
        await self._carry_out(self.feed.resync(self.feed.canonical(instrument), time.time_ns()))

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [*self._fetchers.values(), *([self._timer] if self._timer else []), *self._relays]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for companion in self.companions:
            await companion.close()
        await self.session.stop()

    def stats(self) -> dict[str, Any]:
        """The counters every venue reports alike."""
        counters = self.feed.counters
        return {
            "frames": counters.frames,
            "events": counters.events,
            "reconnects": self.session.reconnects,
            "rejects": dict(self.feed.rejects.counts),
            "last_frame_ns": dict(counters.last_frame_ns),
            "pending_fetches": {k: len(v) for k, v in self._pending.items() if v},
            **({"companions": [c.summary() for c in self.companions]} if self.companions else {}),
        }

    def summary(self) -> dict[str, Any]:
        """What status shows of a companion: its feed, state and own counters."""
        counters = self.feed.counters
        return {
            "feed": type(self.feed).__name__,
            "state": self.state,
            "frames": counters.frames,
            "events": counters.events,
            "reconnects": self.session.reconnects,
        }

    # -- the pump ----------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[list[Event]]:
        """The events of each batch of received items, in order; ends after :meth:`close`."""
        await self._start()
        session = self.session
        counters = self.feed.counters
        while True:
            items = await session.next_batch()
            if not items:
                return
            events: list[Event] = []
            frames: list[Frame] = []
            for item in items:
                if type(item) is Frame:
                    frames.append(item)
                    continue
                if frames:
                    await self._frames(frames, events)
                    frames = []
                if type(item) is Reconnected:
                    await self._reconnected(item, events)
                elif type(item) is Note:
                    await self._note(item.payload, events)
            if frames:
                await self._frames(frames, events)
            if events:
                counters.events += len(events)
                yield events

    async def _frames(self, frames: list[Frame], events: list[Event]) -> None:
        """Frames in a row (up to a marker, a fetch result or a tick): counted, then to the feed."""
        counters = self.feed.counters
        counters.frames += len(frames)
        for frame in frames:
            counters.last_frame_ns[frame.conn] = frame.ts_recv
        await self._carry_out(self.feed.on_frames(frames), events)

    async def _reconnected(self, item: Reconnected, events: list[Event]) -> None:
        instruments = self.feed.instruments(self.session.shard_subscriptions(item.conn))
        gap = disconnect_gap(self.feed.venue, item.conn, instruments, item.down_since, item.ts_recv)
        events.append(self.open_gap(gap))
        await self._carry_out(self.feed.on_reconnected(item.conn, item.ts_recv), events)

    async def _note(self, payload: object, events: list[Event]) -> None:
        feed = self.feed
        if type(payload) is _Fetched:
            if payload.results is None:
                out = feed.on_fetch_failed(payload.what, payload.keys, payload.error)
            else:
                out = feed.on_fetched(payload.what, payload.results, payload.ts_recv)
            await self._carry_out(out, events)
        elif type(payload) is _Tick:
            await self._carry_out(feed.on_timer(payload.now), events)
        elif type(payload) is _Emit:
            events.extend(payload.events)
        elif type(payload) is _Failed:
            raise payload.error

    async def _carry_out(self, out: Output, events: list[Event] | None = None) -> None:
        """Publish ``out``'s events (into ``events``, or through the queue) and run its commands.

        A gap the feed opened (a sequence gap, missed trades) reaches ``on_gap``
        before it is queued, like the pump's own disconnect gaps: the
        completeness watermark must never pass a window nobody heard of.
        """
        if out.markets and self.on_market is not None:
            for market in out.markets:
                self.on_market(market)
        if out.events:
            for event in out.events:
                if type(event) is DataGap and not event.healed:
                    self.open_gap(event)
            if events is not None:
                events.extend(out.events)
            else:  # from a call outside the pump (subscribe, resync): in order, via the queue
                await self.session.inject(Note(_Emit(out.events)))
        for command in out.commands:
            if type(command) is Send:
                with contextlib.suppress(WsNotConnectedError, ConnectionError):
                    # A connection going away resubscribes (and resyncs) on its own.
                    await self.session.send(command.frame, command.conn)
            elif type(command) is Fetch:
                self._request(command)
            elif type(command) is Resubscribe:
                await self._resubscribe(command.instruments)

    async def _resubscribe(self, instruments: Sequence[str]) -> None:
        subs = self.feed.subscriptions([i for i in instruments if i in self._subscribed])
        if subs:
            await self.session.unsubscribe(subs)
            await self.session.subscribe(subs)

    # -- background work ---------------------------------------------------------------

    async def _start(self) -> None:
        if self._closed:
            return
        await self.session.start()
        if self.companions and not self._relays:
            for companion in self.companions:
                companion.on_gap = self.on_gap
                self._relays.append(asyncio.create_task(
                    self._relay(companion), name=f"{self.feed.venue}-companion"))  # fmt: skip
        interval = self.feed.timer_interval
        if interval and self._timer is None:
            self._timer = asyncio.create_task(self._tick(interval), name=f"{self.feed.venue}-timer")

    async def _relay(self, companion: FeedStream) -> None:
        """A companion's batches into this stream's queue, in the order they were made."""
        try:
            async for batch in companion.batches():
                await self.session.inject(Note(_Emit(batch)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the feed contract: what a feed raises ends the stream
            await self.session.inject(Note(_Failed(exc)))

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.session.inject(Note(_Tick(time.time_ns())))

    def _request(self, command: Fetch) -> None:
        if self._fetch is None:
            self.feed.rejects.reject("fetch_unsupported", command.what)
            return
        pending = self._pending.setdefault(command.what, {})
        pending.update(dict.fromkeys(command.keys))
        task = self._fetchers.get(command.what)
        if task is None or task.done():
            self._fetchers[command.what] = asyncio.create_task(
                self._fetch_all(command.what), name=f"{self.feed.venue}-fetch-{command.what}"
            )

    async def _fetch_all(self, what: str) -> None:
        """Fetch the pending keys of one kind, a batch at a time, until none are left."""
        assert self._fetch is not None
        pending = self._pending[what]
        while pending:
            keys = tuple(list(pending)[: self._fetch_batch])
            for key in keys:
                del pending[key]
            try:
                results: Sequence[Any] | None = await self._fetch(what, keys)
                error = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the transport already retried; the feed decides
                results, error = None, f"{type(exc).__name__}: {exc}"
                _log.warning("feed fetch failed", venue=self.feed.venue, what=what,
                             keys=len(keys), error=error)  # fmt: skip
            await self.session.inject(Note(_Fetched(what, keys, results, error, time.time_ns())))
