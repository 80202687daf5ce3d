"""A recorded session in place of a live one: what replay feeds a venue's stream.

Replay re-runs a venue's own stream -- its parser, its feed, its books --
over recorded frames, so the only thing it swaps is the transport: a
:class:`RecordedSession` stands where the stream's
:class:`~venuefeed.transport.WsSession` was and hands out the recorded
frames, with their recorded receive times and connections, in recorded order.
A recorded reconnect becomes the same :class:`~venuefeed.transport.Reconnected`
marker the live session queues, so the stream opens the same gap and resyncs
the same way.

Determinism is the point, and it comes from pulling instead of pushing: a live
session reads sockets in the background and the consumer takes whatever
accumulated, so batch boundaries -- and with them which book state the
pipeline persists -- depend on timing. Here nothing is read ahead. Every
frame is released by a :class:`ReplayClock` shared by all venues of one
replay, and only when every venue's consumer has finished with everything it
was given; the frame released is the one with the smallest receive time.
The events of one recording therefore reach the pipeline in the same order,
against the same book states, on every run.

Commands the stream sends on a connection (Kalshi's snapshot requests) are
not sent anywhere: the venue's answers are in the recording, at the time they
came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator

from venuefeed.lake.format import ConnEvent, Lost
from venuefeed.lake.reader import Recorded
from venuefeed.log import get_logger
from venuefeed.transport import Frame, Note, Reconnected, WsProtocolBase, WsSession, WsState
from venuefeed.transport.websocket import Item

__all__ = ["RecordedSession", "ReplayClock"]

log = get_logger("venuefeed.lake.replay")


class _Silent(WsProtocolBase):
    """The protocol of a session that never connects."""

    def url(self) -> str:
        return ""

    def subscribe(self, subs: object, initial: bool) -> tuple[str, ...]:
        return ()

    def unsubscribe(self, subs: object) -> tuple[str, ...]:
        return ()


class ReplayClock:
    """Releases recorded frames across venues in receive-time order, one at a time.

    A session asks for its turn with the receive time of its next item; the
    turn goes to the smallest time (ties: the venue that joined first) once
    every session still running is asking and every venue is idle -- its
    consumer has handed all it got to the pipeline and waits for more (the
    driver says so through ``idle``). ``speed`` > 0 paces releases against the
    wall clock (1 = as recorded); 0 replays as fast as the pipeline takes it.

    ``on_time`` hooks run just before an item received at ``ts`` is released,
    with everything received before it applied: the place to persist books on
    the recording's clock, or to sample them.
    """

    def __init__(self, speed: float = 0.0) -> None:
        self.speed = speed
        self.now = 0
        """Receive time of the last item released (ns): the replay's clock."""
        self.on_time: list[Callable[[int], Awaitable[None] | None]] = []
        self._order: dict[str, int] = {}
        self._idle: dict[str, Callable[[], bool]] = {}
        self._asking: dict[str, int] = {}
        self._running: set[str] = set()
        self._changed = asyncio.Event()
        self._origin: tuple[int, float] | None = None

    def join(self, venue: str, idle: Callable[[], bool] = lambda: True) -> None:
        self._order.setdefault(venue, len(self._order))
        self._idle[venue] = idle
        self._running.add(venue)

    def leave(self, venue: str) -> None:
        self._running.discard(venue)
        self._asking.pop(venue, None)
        self.poke()

    def poke(self) -> None:
        """Something a turn depends on changed (a consumer went idle, a note came)."""
        self._changed.set()

    async def turn(self, venue: str, ts: int, interrupted: Callable[[], bool]) -> bool:
        """Wait until ``venue``'s item received at ``ts`` may be released (True), or
        until ``interrupted()`` (False: the session has something to hand out first)."""
        self._asking[venue] = ts
        self.poke()
        while True:
            if interrupted():
                self._asking.pop(venue, None)
                return False
            if self._mine(venue):
                del self._asking[venue]
                await self._pace(ts)
                for hook in self.on_time:
                    result = hook(ts)
                    if result is not None:
                        await result
                self.now = max(self.now, ts)
                return True
            self._changed.clear()
            await self._changed.wait()

    async def finish(self) -> None:
        """Run the hooks once more after the last item: the final state is seen too."""
        for hook in self.on_time:
            result = hook(self.now + 1)
            if result is not None:
                await result

    def _mine(self, venue: str) -> bool:
        asking = self._asking
        if len(asking) < len(self._running):
            return False
        if not all(self._idle[v]() for v in self._running):
            return False
        return min(asking, key=lambda v: (asking[v], self._order[v])) == venue

    async def _pace(self, ts: int) -> None:
        if self.speed <= 0:
            return
        if self._origin is None:
            self._origin = (ts, time.monotonic())
        first_ts, started = self._origin
        delay = started + (ts - first_ts) / 1e9 / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class RecordedSession(WsSession):
    """One venue's recorded frames, served to its stream as a live session would.

    ``records`` is the venue's recording in time order
    (:func:`~venuefeed.lake.reader.iter_frames`). Subscriptions the stream
    asks for are kept (the stream's own bookkeeping reads them back); what is
    replayed is what was recorded, whatever they are.
    """

    def __init__(
        self,
        venue: str,
        records: Iterable[Recorded],
        clock: ReplayClock,
        idle: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__(venue, _Silent())
        self._records: Iterator[Recorded] = iter(records)
        self._clock = clock
        self._notes: list[Note] = []
        self._upcoming: Frame | Reconnected | None = None
        self._shard_subs: dict[int, list[str]] = {}
        self._wanted: dict[str, None] = {}
        self._done = False
        self.ended = asyncio.Event()
        """Set once the recording is exhausted (or the session stopped)."""
        self.sent = 0
        """Commands the stream sent (not sent anywhere: the answers are recorded)."""
        self.lost = 0
        """Frames the recorder marked as not recorded (a hole in the recording)."""
        self._state = WsState.CONNECTED
        clock.join(venue, idle)

    # -- what the stream reads -------------------------------------------------------

    @property
    def state(self) -> WsState:
        return WsState.STOPPED if self._done else WsState.CONNECTED

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(self._wanted)

    def shard_subscriptions(self, conn: int) -> list[str]:
        return list(self._shard_subs.get(conn, ()))

    @property
    def backlog(self) -> int:
        return len(self._notes)

    def complete_until(self, now: int) -> int:
        return now

    # -- lifecycle and commands ------------------------------------------------------

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        self._finish()

    async def subscribe(self, subs: Iterable[str]) -> None:
        self._wanted.update(dict.fromkeys(subs))

    async def unsubscribe(self, subs: Iterable[str]) -> None:
        for sub in subs:
            self._wanted.pop(sub, None)

    async def send(self, data: str | bytes, conn: int) -> None:
        self.sent += 1

    async def inject(self, note: Note) -> None:
        self._notes.append(note)
        self._clock.poke()

    # -- the frames --------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Frame | Reconnected]:
        return self._each()

    async def _each(self) -> AsyncIterator[Frame | Reconnected]:
        while True:
            item = await self._next()
            if item is None:
                return
            if type(item) is not Note:
                yield item  # type: ignore[misc]  # notes belong to batch consumers

    async def next_batch(self, limit: int = 1024) -> list[Item]:
        """One item per batch: the batch boundaries of a replay are the same every run."""
        item = await self._next()
        return [] if item is None else [item]

    async def _next(self) -> Item | None:
        while True:
            if self._notes:
                return self._notes.pop(0)
            item = self._upcoming if self._upcoming is not None else self._next_recorded()
            if item is None:
                self._finish()
                return None
            self._upcoming = item
            if await self._clock.turn(self.venue, item.ts_recv, lambda: bool(self._notes)):
                self._upcoming = None
                if type(item) is Frame:
                    self.frames += 1
                else:
                    self.reconnects += 1
                return item

    def _next_recorded(self) -> Frame | Reconnected | None:
        """The next recorded frame or reconnect; other records update the session."""
        for record in self._records:
            if type(record) is Frame:
                return record
            if type(record) is ConnEvent:
                marker = self._conn_event(record)
                if marker is not None:
                    return marker
            elif type(record) is Lost:
                self.lost += record.frames
                log.warning("the recording has a hole here", venue=self.venue,
                            since=record.since, until=record.ts_recv, frames=record.frames,
                            reason=record.reason)  # fmt: skip
        return None

    def _conn_event(self, event: ConnEvent) -> Reconnected | None:
        subs = self._shard_subs.setdefault(event.conn, [])
        if event.kind == "connected":
            subs[:] = list(event.subscriptions)
            if event.down_since is not None:
                return Reconnected(event.conn, event.ts_recv, event.down_since)
        elif event.kind == "subscribed":
            subs.extend(s for s in event.subscriptions if s not in subs)
        elif event.kind == "unsubscribed":
            gone = set(event.subscriptions)
            subs[:] = [s for s in subs if s not in gone]
        return None

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self.ended.set()
            self._clock.leave(self.venue)
