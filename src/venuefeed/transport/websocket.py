"""The one WebSocket session every venue uses: reconnect, heartbeat, resubscribe, sharding.

A venue describes its wire protocol in a small :class:`WsProtocol` object (what
to send on open, how to subscribe, what its ping looks like); this module keeps
the connection alive around it (ARCHITECTURE rule 2):

* Subscriptions live in the session and are replayed on every new connection,
  so a drop costs a few seconds of data, never a silently dead subscription.
* A venue's per-connection subscription limit is met by opening more
  connections ("shards"); a shard without subscriptions is closed, because
  venues close idle sockets anyway.
* A connection that delivers nothing -- not even a ping or a heartbeat reply --
  for ``idle_timeout`` is dead (a half-open TCP peer never says so) and is
  replaced.
* Every frame is stamped with ``time.time_ns()`` as it arrives and goes to the
  consumer through one bounded queue; when the consumer falls behind, the
  policy decides (block the sockets, or drop the oldest and count it).
* After a shard reconnects and resubscribes, a :class:`Reconnected` marker goes
  through the same queue, so the consumer resyncs its books and records the
  window in which data may be missing. That window starts at the last *data*
  frame of the old connection, however the connection ended: a peer that went
  silent and then closed lost everything since its last frame, not just what
  followed the close.
* :meth:`WsSession.complete_until` says up to when the data is known to be
  complete -- the start of the oldest window that is still open (a shard down,
  or its marker not yet taken by the consumer). The service stores it as a
  durable watermark, so a restart back-fills exactly from there.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiohttp
from aiohttp import WSCloseCode, WSMsgType
from aiohttp.http_websocket import WebSocketError

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.transport.backoff import Backoff

if TYPE_CHECKING:
    from venuefeed.config import IngestionSettings, VenueSettings

__all__ = [
    "Frame",
    "Note",
    "Reconnected",
    "SessionEvent",
    "SessionTap",
    "WsNotConnectedError",
    "WsPolicy",
    "WsProtocol",
    "WsSession",
    "WsState",
]


class WsState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Frame:
    """One data frame: text as ``str``, binary as ``bytes`` (some venues send JSON in binary)."""

    data: bytes | str
    ts_recv: int
    """``time.time_ns()`` when the frame was read off the socket."""
    conn: int
    """Index of the shard (connection) it arrived on."""


@dataclass(frozen=True, slots=True)
class Reconnected:
    """Shard ``conn`` is back and resubscribed; data in ``[down_since, ts_recv]`` may be missing."""

    conn: int
    ts_recv: int
    down_since: int


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A change of what a connection carries, for a :class:`SessionTap` (the recorder).

    ``connected``: connection ``conn`` is open and ``subscriptions`` were sent on it
    (``down_since`` is set when it replaces a dropped one); ``subscribed`` /
    ``unsubscribed``: a runtime change on the live connection; ``closed``: it ended.
    """

    kind: Literal["connected", "subscribed", "unsubscribed", "closed"]
    conn: int
    ts_recv: int
    subscriptions: tuple[str, ...] = ()
    down_since: int | None = None


class SessionTap(Protocol):
    """Sees every data frame and every subscription change of a session, in order.

    Called on the event loop, inside the read loop: an implementation must not
    block or do I/O (the recorder only queues for its writer thread).
    """

    def on_frame(self, data: bytes | str, ts_recv: int, conn: int) -> None: ...

    def on_session(self, event: SessionEvent) -> None: ...


class WsProtocol(Protocol):
    """What a venue says on its socket. Implemented in each ``venues/<v>/stream.py``."""

    max_subscriptions: int | None
    """Per connection; None means one connection takes them all."""
    app_ping: str | None
    """Text ping the venue expects (Polymarket ``"PING"``); None -> WebSocket protocol pings."""
    app_ping_interval: float

    def url(self) -> str:
        """Called on every (re)connect."""
        ...

    def handshake_headers(self) -> Mapping[str, str]:
        """Called on every (re)connect (Kalshi signs the upgrade request)."""
        ...

    def on_open(self) -> Sequence[str | bytes]:
        """Frames sent right after connecting, before subscriptions (Polygon auth)."""
        ...

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        """Frames subscribing ``subs``; ``initial`` for the first on a fresh connection."""
        ...

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]: ...

    def is_heartbeat_reply(self, data: bytes | str) -> bool:
        """True for the venue's ping reply (``"PONG"``): liveness, not data."""
        ...


class WsProtocolBase:
    """Defaults for the parts of :class:`WsProtocol` most venues do not need.

    No subscription cap, protocol-level pings, no handshake headers, nothing
    before the subscribe, no text heartbeat replies. A venue overrides what it
    says differently and always defines ``url``, ``subscribe`` and ``unsubscribe``.
    """

    max_subscriptions: int | None = None
    app_ping: str | None = None
    app_ping_interval: float = 0.0

    def handshake_headers(self) -> Mapping[str, str]:
        return {}

    def on_open(self) -> Sequence[str | bytes]:
        return ()

    def is_heartbeat_reply(self, data: bytes | str) -> bool:
        return False


@dataclass(frozen=True)
class WsPolicy:
    idle_timeout: float = 30.0
    """Nothing received (data, heartbeat reply or server ping) for this long -> replace."""
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    jitter: bool = True
    """Full jitter on reconnect delays; off only where a fixed schedule is wanted (tests)."""
    stable_after: float = 30.0
    """A connection that lived this long resets the reconnect backoff when it drops."""
    connect_timeout: float = 10.0
    protocol_ping_interval: float | None = 20.0
    """Our WebSocket pings when the venue has no text ping; a missing pong after half
    the interval drops the connection. None: rely on the idle timeout alone."""
    queue_size: int = 10_000
    queue_policy: Literal["block", "drop_oldest"] = "block"
    max_frame_bytes: int = 16 * 2**20
    close_timeout: float = 1.0
    """How long to wait for the peer's close reply when we close (a dead peer never sends it)."""

    @classmethod
    def from_settings(
        cls, venue: VenueSettings, ingestion: IngestionSettings, **overrides: Any
    ) -> WsPolicy:
        """The policy a venue's config asks for; ``overrides`` are what the venue's
        protocol dictates (e.g. no protocol pings where it has text pings)."""
        ws = venue.websocket
        values: dict[str, Any] = {
            "idle_timeout": ws.idle_timeout_seconds,
            "backoff_base": ws.backoff_base_seconds,
            "backoff_cap": ws.backoff_cap_seconds,
            "stable_after": ws.stable_after_seconds,
            "protocol_ping_interval": ws.ping_interval_seconds,
            "queue_size": ingestion.queue_size,
            "queue_policy": ingestion.queue_full_policy,
        }
        values.update(overrides)
        return cls(**values)


class WsNotConnectedError(ConnectionError):
    """:meth:`WsSession.send` to a shard that has no live connection right now."""


@dataclass(frozen=True, slots=True)
class Note:
    """Something the consumer of a session put into its queue itself (:meth:`WsSession.inject`):
    REST results and timer ticks reach a venue feed in order with its frames."""

    payload: object


Item = Frame | Reconnected | Note


@dataclass(eq=False)
class _Shard:
    index: int
    subs: dict[str, None] = field(default_factory=dict)
    """Wanted subscriptions, in the order they were asked for."""
    sent: set[str] = field(default_factory=set)
    """Subscriptions sent on the current connection."""
    state: WsState = WsState.DISCONNECTED
    ws: aiohttp.ClientWebSocketResponse | None = None
    """Set only while connected and subscribed: runtime sends go here."""
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_rx: int = 0
    """When anything last arrived (data, ping or pong), ns: the idle watchdog reads it."""
    last_data: int = 0
    """When the last data frame arrived (or the connection opened), ns."""
    down_since: int | None = None
    """Set while the shard is down: data may be missing since this time."""
    lost_since: int | None = None
    """Receive time of the oldest frame dropped at a full queue (``drop_oldest``): the
    connection is replaced, so the loss becomes an ordinary reconnect window."""
    idle_expired: bool = False


class WsSession:
    """A venue's live connection(s), kept alive until :meth:`stop`.

    Iterate it (one consumer) for :class:`Frame` and :class:`Reconnected` items.
    """

    def __init__(
        self,
        venue: str,
        protocol: WsProtocol,
        policy: WsPolicy = WsPolicy(),  # frozen: a shared default is safe
        *,
        on_state: Callable[[WsState], Awaitable[None]] | None = None,
    ) -> None:
        self.venue = venue
        self.protocol = protocol
        self.policy = policy
        self.reconnects = 0
        self.dropped = 0
        self.frames = 0
        self.rejected = 0
        self._on_state = on_state
        self.raw_tap: Callable[[bytes | str, int], None] | None = None
        """Called with every data frame and its receive time (raw capture); off when None."""
        self.tap: SessionTap | None = None
        """Sees frames with their connection and the subscriptions of each connection
        (the recorder); off when None."""
        self._state = WsState.DISCONNECTED
        self._shards: list[_Shard] = []
        self._where: dict[str, _Shard] = {}
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=policy.queue_size)
        self._closing: set[asyncio.Task[Any]] = set()
        self._queued_windows: dict[int, int] = {}
        """``id(marker) -> down_since`` of Reconnected markers not yet taken by the consumer."""
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self._stopped = False
        self._ended = False
        self._log = get_logger("venuefeed.transport.websocket", venue=venue)
        self._m_text = metrics.WS_MESSAGES.labels(venue=venue, type="text")
        self._m_binary = metrics.WS_MESSAGES.labels(venue=venue, type="binary")
        self._m_dropped = metrics.QUEUE_DROPPED.labels(venue=venue)
        self._m_reconnects = metrics.WS_RECONNECTIONS.labels(venue=venue)
        self._m_streams = metrics.ACTIVE_STREAMS.labels(venue=venue)
        self._publish_state(self._state)

    # -- public state --------------------------------------------------------

    @property
    def state(self) -> WsState:
        return self._state

    @property
    def shard_states(self) -> list[WsState]:
        return [shard.state for shard in self._shards]

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(self._where)

    def shard_subscriptions(self, conn: int) -> list[str]:
        """The subscriptions assigned to shard ``conn``, in subscription order."""
        return list(self._shards[conn].subs)

    @property
    def backlog(self) -> int:
        """Items received and not yet taken by the consumer."""
        return self._queue.qsize()

    def complete_until(self, now: int) -> int:
        """The time up to which every frame of every subscription has reached the consumer.

        ``now`` while all is well; otherwise the start of the oldest window in
        which data may be missing and which the consumer has not been told of
        yet (a shard still down, or its :class:`Reconnected` marker still
        queued). Once the consumer takes the marker, keeping that window is its
        job (it records a gap).
        """
        oldest = now
        for shard in self._shards:
            if shard.down_since is not None and shard.subs:
                oldest = min(oldest, shard.down_since)
        for since in self._queued_windows.values():
            oldest = min(oldest, since)
        return oldest

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> WsSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect every shard that has subscriptions; later ones connect as they get some."""
        if self._started:
            return
        if self._stopped:
            raise RuntimeError("a stopped WsSession cannot be restarted")
        self._started = True
        self._session = aiohttp.ClientSession()
        for shard in self._shards:
            self._launch(shard)

    async def stop(self) -> None:
        """Close every connection and end iteration (after the queued items)."""
        if self._stopped:
            return
        self._stopped = True
        tasks = [shard.task for shard in self._shards if shard.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        for shard in self._shards:
            shard.state = WsState.STOPPED
        await self._update_state()
        if not self._queue.full():
            self._queue.put_nowait(None)
        self._log.info("websocket session stopped", frames=self.frames, reconnects=self.reconnects)

    def __aiter__(self) -> AsyncIterator[Frame | Reconnected]:
        """Item by item (frames and reconnect markers); batch consumers use :meth:`next_batch`."""
        return self._items()

    async def next_batch(self, limit: int = 1024) -> list[Item]:
        """Every item already queued (at most ``limit``), waiting for the first one.

        Returns ``[]`` once the session is stopped and drained. Taking what has
        accumulated in one call is what lets the consumer work in batches: one
        wake-up per burst instead of one per frame.
        """
        queue = self._queue
        if self._ended and queue.empty():
            return []
        item = await queue.get()
        batch: list[Item] = []
        while True:
            if item is None:
                self._ended = True
                break
            if type(item) is Reconnected:
                self._queued_windows.pop(id(item), None)
            batch.append(item)
            if len(batch) >= limit or queue.empty():
                break
            item = queue.get_nowait()
        return batch

    async def inject(self, note: Note) -> None:
        """Queue ``note`` behind the frames already received."""
        await self._queue.put(note)

    async def _items(self) -> AsyncIterator[Frame | Reconnected]:
        queue = self._queue
        while True:
            if self._stopped and queue.empty():
                return
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, Note):
                continue  # notes belong to a batch consumer (the pump), which injects them
            if isinstance(item, Reconnected):
                self._queued_windows.pop(id(item), None)
            yield item

    # -- subscriptions -------------------------------------------------------

    async def subscribe(self, subs: Iterable[str]) -> None:
        """Add subscriptions; they go to shards with room, opening shards as needed."""
        added: dict[int, list[str]] = {}
        for sub in dict.fromkeys(subs):
            if sub in self._where:
                continue
            shard = self._shard_with_room()
            shard.subs[sub] = None
            self._where[sub] = shard
            added.setdefault(shard.index, []).append(sub)
        for index, new in added.items():
            shard = self._shards[index]
            if self._started and not self._stopped:
                self._launch(shard)
                shard.wake.set()
            await self._send_runtime(shard, new, subscribe=True)

    async def unsubscribe(self, subs: Iterable[str]) -> None:
        """Remove subscriptions; a shard left with none is closed."""
        removed: dict[int, list[str]] = {}
        for sub in dict.fromkeys(subs):
            shard = self._where.pop(sub, None)
            if shard is None:
                continue
            del shard.subs[sub]
            removed.setdefault(shard.index, []).append(sub)
        for index, gone in removed.items():
            shard = self._shards[index]
            if shard.subs:
                await self._send_runtime(shard, gone, subscribe=False)
            elif shard.ws is not None:
                await shard.ws.close()

    async def send(self, data: str | bytes, conn: int) -> None:
        """Send a venue command on shard ``conn`` (e.g. a snapshot request)."""
        ws = self._shards[conn].ws if 0 <= conn < len(self._shards) else None
        if ws is None or ws.closed:
            raise WsNotConnectedError(f"{self.venue}: websocket shard {conn} is not connected")
        await _send_frame(ws, data)

    def _shard_with_room(self) -> _Shard:
        limit = self.protocol.max_subscriptions
        for shard in self._shards:
            if limit is None or len(shard.subs) < limit:
                return shard
        shard = _Shard(len(self._shards))
        self._shards.append(shard)
        return shard

    async def _send_runtime(self, shard: _Shard, subs: list[str], *, subscribe: bool) -> None:
        """Send a runtime (un)subscribe on a live shard; a shard still connecting sends it
        in its initial subscribe instead, so nothing is sent twice."""
        async with shard.lock:
            ws = shard.ws
            if ws is None or ws.closed:
                return
            if subscribe:
                todo = [s for s in subs if s in shard.subs and s not in shard.sent]
                frames = self.protocol.subscribe(todo, False) if todo else ()
                shard.sent.update(todo)
            else:
                todo = [s for s in subs if s in shard.sent]
                frames = self.protocol.unsubscribe(todo) if todo else ()
                shard.sent.difference_update(todo)
            try:
                for frame in frames:
                    await _send_frame(ws, frame)
            except (ConnectionError, aiohttp.ClientError) as exc:
                # The reader sees the drop and the reconnect replays every subscription.
                self._log.info("websocket send failed", conn=shard.index, error=str(exc))
            if todo and self.tap is not None:
                kind: Literal["subscribed", "unsubscribed"] = (
                    "subscribed" if subscribe else "unsubscribed"
                )
                self.tap.on_session(SessionEvent(kind, shard.index, time.time_ns(), tuple(todo)))

    # -- per-shard connection loop -------------------------------------------

    def _launch(self, shard: _Shard) -> None:
        if shard.task is None:
            shard.task = asyncio.create_task(
                self._run_shard(shard), name=f"ws-{self.venue}-{shard.index}"
            )

    async def _run_shard(self, shard: _Shard) -> None:
        """Connect, serve, and after any drop reconnect with backoff -- until cancelled by stop."""
        policy = self.policy
        backoff = Backoff(policy.backoff_base, policy.backoff_cap, jitter=policy.jitter)
        down_since: int | None = None
        while True:
            shard.down_since = down_since
            if not shard.subs:
                down_since = None
                shard.down_since = None
                backoff.reset()
                await self._set_shard_state(shard, WsState.DISCONNECTED)
                shard.wake.clear()
                await shard.wake.wait()
                continue
            fresh = down_since is None and backoff.attempts == 0
            await self._set_shard_state(
                shard, WsState.CONNECTING if fresh else WsState.RECONNECTING
            )
            try:
                ws = await self._connect()
            except Exception as exc:  # network, handshake, or the venue's url()/headers()
                delay = backoff.next_delay()
                self._log.warning(
                    "websocket connect failed",
                    conn=shard.index,
                    error=str(exc) or type(exc).__name__,
                    retry_in=round(delay, 3),
                )
                await self._set_shard_state(shard, WsState.RECONNECTING)
                await asyncio.sleep(delay)
                continue
            connected_at = time.monotonic()
            try:
                await self._serve(shard, ws, down_since)
            except Exception:
                # A bug in the venue's frame builders must not leave a shard silently dead.
                self._log.exception("websocket shard failed; reconnecting", conn=shard.index)
            if not shard.subs:
                continue  # closed on purpose: unsubscribed from everything
            if time.monotonic() - connected_at >= policy.stable_after:
                backoff.reset()
            # Data may be missing since the last data frame, whatever ended the connection.
            down_since = shard.last_data
            if shard.lost_since is not None:
                down_since, shard.lost_since = min(down_since, shard.lost_since), None
            shard.down_since = down_since
            await self._set_shard_state(shard, WsState.RECONNECTING)
            await asyncio.sleep(backoff.next_delay())

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        protocol = self.protocol
        heartbeat = None if protocol.app_ping else self.policy.protocol_ping_interval
        async with asyncio.timeout(self.policy.connect_timeout):
            return await self._session.ws_connect(
                protocol.url(),
                headers=dict(protocol.handshake_headers()),
                # Pings are answered in _read, so that they count as liveness there.
                autoping=False,
                heartbeat=heartbeat,
                max_msg_size=self.policy.max_frame_bytes,
                timeout=aiohttp.ClientWSTimeout(ws_close=self.policy.close_timeout),
            )

    async def _serve(
        self, shard: _Shard, ws: aiohttp.ClientWebSocketResponse, down_since: int | None
    ) -> None:
        """Subscribe, then read until the connection ends (``shard.last_data`` says since
        when data may be missing)."""
        self._m_streams.inc()
        pinger: asyncio.Task[None] | None = None
        watchdog: asyncio.Task[None] | None = None
        opened = time.time_ns()
        shard.last_rx = opened
        shard.idle_expired = False
        try:
            async with shard.lock:
                subs = list(shard.subs)
                if not subs:
                    return
                for frame in self.protocol.on_open():
                    await _send_frame(ws, frame)
                for frame in self.protocol.subscribe(subs, True):
                    await _send_frame(ws, frame)
                shard.sent = set(subs)
                shard.ws = ws
                if self.tap is not None:
                    self.tap.on_session(SessionEvent(
                        "connected", shard.index, time.time_ns(), tuple(subs), down_since
                    ))  # fmt: skip
            # From here on frames flow: the live data is complete again from ``opened``.
            shard.last_data = opened
            await self._set_shard_state(shard, WsState.CONNECTED)
            if down_since is not None:
                self.reconnects += 1
                self._m_reconnects.inc()
                now = time.time_ns()
                self._log.info(
                    "websocket reconnected",
                    conn=shard.index,
                    down_ms=round((now - down_since) / 1e6, 1),
                    subscriptions=len(subs),
                )
                marker = Reconnected(shard.index, now, down_since)
                self._queued_windows[id(marker)] = down_since
                shard.down_since = None
                await self._put(marker)
            else:
                self._log.info("websocket connected", conn=shard.index, subscriptions=len(subs))
            watchdog = asyncio.create_task(
                self._watch_idle(shard, ws), name=f"ws-{self.venue}-{shard.index}-idle"
            )
            if self.protocol.app_ping:
                # Only after the subscribe frames: Polymarket closes (1008) on a PING first.
                pinger = asyncio.create_task(
                    self._app_ping(ws, self.protocol.app_ping),
                    name=f"ws-{self.venue}-{shard.index}-ping",
                )
            await self._read(shard, ws)
        except (ConnectionError, aiohttp.ClientError) as exc:
            self._log.warning("websocket send failed", conn=shard.index, error=str(exc))
        finally:
            if shard.ws is not None and self.tap is not None:
                self.tap.on_session(SessionEvent("closed", shard.index, time.time_ns()))
            shard.ws = None
            shard.sent = set()
            for task in (pinger, watchdog):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await ws.close()
            self._m_streams.dec()

    async def _read(self, shard: _Shard, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The hot loop: stamp, count, queue; returns when the connection is gone.

        No per-frame timer: a watchdog task (:meth:`_watch_idle`) enforces the
        idle timeout. Wrapping each ``receive()`` in a timeout cost about a
        third of the per-frame overhead.
        """
        index = shard.index
        is_heartbeat = self.protocol.is_heartbeat_reply
        m_text, m_binary = self._m_text, self._m_binary
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                now = shard.last_rx = time.time_ns()
                (m_text if kind is WSMsgType.TEXT else m_binary).inc()
                data = msg.data
                if is_heartbeat(data):
                    continue
                shard.last_data = now
                if self.raw_tap is not None:
                    self.raw_tap(data, now)
                if self.tap is not None:
                    self.tap.on_frame(data, now, index)
                self.frames += 1
                await self._put(Frame(data, now, index))
            elif kind is WSMsgType.PING:
                shard.last_rx = time.time_ns()  # alive, but no data: not a data timestamp
                await ws.pong(msg.data)  # same payload back (Binance, Kalshi "heartbeat")
            elif kind is WSMsgType.PONG:
                shard.last_rx = time.time_ns()
            elif kind is WSMsgType.ERROR:
                self._reject(index, msg.data)
                return
            elif kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                if shard.subs and not shard.idle_expired:
                    self._log.warning("websocket closed by peer", conn=index, code=ws.close_code)
                return

    async def _watch_idle(self, shard: _Shard, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Replace a connection on which nothing at all arrived for ``idle_timeout``.

        A server that is silent with TCP still open (half-open) sends neither
        data nor pings nor pongs, so this catches it.
        """
        idle_ns = int(self.policy.idle_timeout * 1e9)
        step = min(1.0, self.policy.idle_timeout / 4)
        while not ws.closed:
            await asyncio.sleep(step)
            if time.time_ns() - shard.last_rx > idle_ns:
                self._log.warning(
                    "websocket idle timeout; replacing connection",
                    conn=shard.index,
                    idle_timeout=self.policy.idle_timeout,
                )
                shard.idle_expired = True
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"idle timeout")
                return

    def _reject(self, index: int, error: object) -> None:
        """A frame aiohttp refused (too large, invalid UTF-8 text): the socket is gone too."""
        reason = "protocol_error"
        if isinstance(error, WebSocketError):
            reason = "frame_too_large" if error.code == WSCloseCode.MESSAGE_TOO_BIG else reason
        self.rejected += 1
        metrics.REJECTED_FRAMES.labels(venue=self.venue, reason=reason).inc()
        self._log.warning("websocket frame rejected", conn=index, reason=reason, error=str(error))

    async def _app_ping(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        interval = self.protocol.app_ping_interval
        while not ws.closed:
            await asyncio.sleep(interval)
            try:
                await ws.send_str(text)
            except (ConnectionError, aiohttp.ClientError):
                return  # the reader notices the drop

    async def _put(self, item: Item) -> None:
        queue = self._queue
        if self.policy.queue_policy == "block":
            await queue.put(item)
            return
        for _ in range(queue.qsize()):
            if not queue.full():
                break
            oldest = queue.get_nowait()
            if type(oldest) is not Frame:
                queue.put_nowait(oldest)  # a loss window is never dropped: a frame goes instead
                continue
            self._lose(oldest)
        queue.put_nowait(item)

    def _lose(self, frame: Frame) -> None:
        """``drop_oldest``: count the dropped frame and replace its connection.

        Dropping is the operator's choice of latency over completeness, but it
        is not silent: the shard reconnects, which resyncs its books and hands
        the window since the dropped frame to the consumer as a gap to heal.
        """
        self.dropped += 1
        self._m_dropped.inc()
        if _is_power_of_ten(self.dropped):
            self._log.warning("websocket queue full; dropping oldest", dropped=self.dropped)
        shard = self._shards[frame.conn]
        if shard.lost_since is None or frame.ts_recv < shard.lost_since:
            shard.lost_since = frame.ts_recv
        ws = shard.ws
        if ws is not None and not ws.closed:
            task = asyncio.get_running_loop().create_task(ws.close(code=WSCloseCode.GOING_AWAY))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # -- state ---------------------------------------------------------------

    async def _set_shard_state(self, shard: _Shard, state: WsState) -> None:
        if shard.state is not state:
            shard.state = state
            await self._update_state()

    async def _update_state(self) -> None:
        state = self._aggregate()
        if state is self._state:
            return
        self._publish_state(state)
        self._state = state
        if self._on_state is not None:
            try:
                await self._on_state(state)
            except Exception:
                self._log.exception("websocket state callback failed", state=str(state))

    def _aggregate(self) -> WsState:
        if self._stopped:
            return WsState.STOPPED
        active = [s.state for s in self._shards if s.subs or s.state is not WsState.DISCONNECTED]
        if not active:
            return WsState.DISCONNECTED
        if all(state is WsState.CONNECTED for state in active):
            return WsState.CONNECTED
        for state in (WsState.RECONNECTING, WsState.CONNECTING):
            if state in active:
                return state
        return WsState.DISCONNECTED

    def _publish_state(self, state: WsState) -> None:
        for candidate in WsState:
            value = 1 if candidate is state else 0
            metrics.WS_STATE.labels(venue=self.venue, state=candidate.value).set(value)


async def _send_frame(ws: aiohttp.ClientWebSocketResponse, frame: str | bytes) -> None:
    if isinstance(frame, str):
        await ws.send_str(frame)
    else:
        await ws.send_bytes(frame)


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1
