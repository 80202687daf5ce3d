"""The server side of every simulator's WebSocket: accept, registry, outbox, faults.

A venue module says what its frames mean (subscriptions, channels, replies);
this module owns what every venue's socket does the same way, so the fault
switches act identically everywhere (ARCHITECTURE rule 9):

* each socket has an ordered, bounded outbox drained by its own writer task --
  a client that stops reading fills it and is cut (``ws_cut`` with reason
  ``slow_consumer``), as a venue drops a slow consumer, never a silent loss;
* what a socket never sent is accounted when it closes: ``ws_close`` carries the
  frames queued, sent and not sent, and the venue is handed the frames it did not
  send (:meth:`~venuefeed.sim.base.SimulatorBase.undelivered`), so the ground
  truth says which printed trades never left the venue;
* ``publish`` sends a live data frame with the per-frame faults (malformed,
  duplicate, out-of-order); ``reply`` sends an answer to the client, unfaulted;
* protocol pings are answered by hand (not by aiohttp), so a silenced socket
  stops answering them too -- a half-open peer, which only the client's own
  liveness check can detect;
* the disconnect cadence and scripted cuts/silences act on the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from venuefeed.sim.base import SimulatorBase

__all__ = ["Heartbeat", "SimSocket", "Sockets"]

S = TypeVar("S")
OUTBOX_FRAMES = 20_000
"""Frames a socket may have waiting before its client counts as not reading."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The venue's server pings: every ``interval`` seconds, with ``payload``."""

    interval: float
    payload: bytes = b""


@dataclass(eq=False)
class SimSocket(Generic[S]):
    """One client WebSocket: the venue's ``state`` for it, its outbox and fault flags."""

    number: int
    ws: web.WebSocketResponse
    state: S
    opened: float = field(default_factory=time.monotonic)
    silent: bool = False
    closing: bool = False
    held: str | None = None
    outbox: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(OUTBOX_FRAMES))
    queued: int = 0
    """Frames put in the outbox."""
    sent: int = 0
    """Frames written to the connection."""
    lost: list[str] = field(default_factory=list)
    """Frames for this socket that never went into its outbox: it was full (the socket
    is being cut) or the socket was already closing."""

    @property
    def closed(self) -> bool:
        return self.ws.closed


class Sockets(Generic[S]):
    """The open sockets of one simulator and the faults that act on them."""

    def __init__(
        self,
        sim: SimulatorBase,
        *,
        heartbeat: Heartbeat | None = None,
        max_msg_size: int = 4 * 1024 * 1024,
    ) -> None:
        self.sim = sim
        self.heartbeat = heartbeat
        self.max_msg_size = max_msg_size
        self._open: dict[int, SimSocket[S]] = {}
        self._numbers = itertools.count(1)

    def __iter__(self) -> Iterator[SimSocket[S]]:
        return iter(list(self._open.values()))

    def __len__(self) -> int:
        return len(self._open)

    # -- serving ------------------------------------------------------------------

    async def serve(
        self,
        request: web.Request,
        state: S,
        on_text: Callable[[SimSocket[S], str], Awaitable[None]],
        *,
        on_binary: Callable[[SimSocket[S], bytes], Awaitable[None]] | None = None,
        on_open: Callable[[SimSocket[S]], Awaitable[None]] | None = None,
        on_close: Callable[[SimSocket[S]], None] | None = None,
    ) -> web.WebSocketResponse:
        """Accept ``request`` as a WebSocket and serve it until either side closes it."""
        # A short close timeout: a cut must not wait on a client that stopped reading.
        ws = web.WebSocketResponse(autoping=False, max_msg_size=self.max_msg_size, timeout=2.0)
        await ws.prepare(request)
        sock = SimSocket(next(self._numbers), ws, state)
        self._open[sock.number] = sock
        truth = self.sim.truth
        truth.record("ws_open", conn=sock.number, conns=len(self._open))
        helpers = [asyncio.ensure_future(self._writer(sock))]
        if self.heartbeat is not None:
            helpers.append(asyncio.ensure_future(self._pinger(sock, self.heartbeat)))
        silence = self.sim.faults.silence_after_seconds
        if silence is not None:
            helpers.append(asyncio.ensure_future(self._silence_later(sock, silence)))
        try:
            if on_open is not None:
                await on_open(sock)
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await on_text(sock, msg.data)
                elif msg.type is WSMsgType.BINARY and on_binary is not None:
                    await on_binary(sock, msg.data)
                elif msg.type is WSMsgType.PING and not sock.silent:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.pong(msg.data)
        finally:
            self._open.pop(sock.number, None)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if on_close is not None:
                on_close(sock)
            # Not sent: refused at the outbox, still in it, the one a failed write took,
            # and a frame held back by the reorder fault.
            unsent = list(sock.lost)
            while not sock.outbox.empty():
                unsent.append(sock.outbox.get_nowait())
            if sock.held is not None:
                unsent.append(sock.held)
            count = sock.queued - sock.sent + len(sock.lost) + (sock.held is not None)
            truth.record("ws_close", conn=sock.number, queued=sock.queued, sent=sock.sent,
                         unsent=count)  # fmt: skip
            if unsent:
                self.sim.undelivered(sock.number, unsent)
        return ws

    async def _writer(self, sock: SimSocket[S]) -> None:
        while True:
            frame = await sock.outbox.get()
            if sock.ws.closed:
                return
            if sock.silent:
                continue
            try:
                await sock.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return
            sock.sent += 1

    async def _pinger(self, sock: SimSocket[S], beat: Heartbeat) -> None:
        while not sock.ws.closed:
            await asyncio.sleep(beat.interval)
            if not sock.silent:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await sock.ws.ping(beat.payload)

    async def _silence_later(self, sock: SimSocket[S], after: float) -> None:
        await asyncio.sleep(after)
        self.silence(sock)

    # -- sending ----------------------------------------------------------------------

    def reply(self, sock: SimSocket[S], frame: str) -> None:
        """An answer to the client (ack, error, pong, snapshot it asked for): never faulted."""
        if sock.silent:
            return
        if sock.closing or sock.ws.closed:
            sock.lost.append(frame)
            return
        try:
            sock.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            sock.lost.append(frame)
            self._slow_consumer(sock)
        else:
            sock.queued += 1

    def publish(self, sock: SimSocket[S], frame: str) -> None:
        """A live data frame, with the per-frame fault switches applied for this socket."""
        sim = self.sim
        faults = sim.faults
        if sim.chance(faults.malformed_rate):
            sim.truth.record("malformed_frame", conn=sock.number)
            self.reply(sock, sim.malformed(frame))
        if sock.held is None and sim.chance(faults.out_of_order_rate):
            sim.truth.record("out_of_order", conn=sock.number)
            sock.held = frame
            return
        self.reply(sock, frame)
        if sock.held is not None:
            held, sock.held = sock.held, None
            self.reply(sock, held)
        if sim.chance(faults.duplicate_rate):
            sim.truth.record("duplicate_frame", conn=sock.number)
            self.reply(sock, frame)

    def flush_held(self) -> None:
        """Send every frame held back by the reorder fault (the market went quiet)."""
        for sock in self:
            if sock.held is not None:
                held, sock.held = sock.held, None
                self.reply(sock, held)

    # -- connection faults ---------------------------------------------------------

    async def cut(self, sock: SimSocket[S], reason: str = "fault") -> None:
        """Close one socket now (frames still in its outbox are lost, as in a real cut)."""
        if sock.ws.closed or sock.closing:
            return
        sock.closing = True
        self.sim.truth.record("ws_cut", conn=sock.number, reason=reason)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await sock.ws.close(code=1001, message=b"going away")

    async def cut_all(self, reason: str = "fault") -> int:
        """Close every open socket; returns how many."""
        socks = [s for s in self if not s.ws.closed and not s.closing]
        await asyncio.gather(*(self.cut(sock, reason) for sock in socks))
        return len(socks)

    def silence(self, sock: SimSocket[S]) -> None:
        if not sock.silent and not sock.ws.closed:
            sock.silent = True
            self.sim.truth.record("ws_silence", conn=sock.number)

    def silence_all(self) -> int:
        socks = [s for s in self if not s.silent and not s.ws.closed]
        for sock in socks:
            self.silence(sock)
        return len(socks)

    async def disconnect_loop(self) -> None:
        """The ``disconnect_every_seconds`` switch: cut every socket on that cadence."""
        while True:
            every = self.sim.faults.disconnect_every_seconds
            if not every:
                await asyncio.sleep(0.1)
                continue
            await asyncio.sleep(every)
            if self.sim.faults.disconnect_every_seconds:
                await self.cut_all()

    def _slow_consumer(self, sock: SimSocket[S]) -> None:
        self.sim.spawn(self.cut(sock, "slow_consumer"))

    async def close_all(self, code: int = 1001, message: bytes = b"server shutdown") -> None:
        for sock in self:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await sock.ws.close(code=code, message=message)
