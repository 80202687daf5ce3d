"""The Binance live feed: combined streams in, canonical events out, books kept in sync.

What is sent (``BinanceProtocol``): one combined-stream connection per 1024
streams (``/stream``), subscriptions as ``{"method": "SUBSCRIBE", "params":
[...], "id": n}`` with an incrementing id. Every (re)subscription of a
connection is one message, never one per stream: the venue closes a socket
that sends more than 5 messages a second. The venue pings every 20 s and cuts
every connection after 24 h; the transport answers the pings and reconnects.

What comes out (``BinanceStream``): trades (``@trade``, or ``@aggTrade``
with the ``trade_stream`` option), quotes (``@bookTicker``), candles
(``@kline_<interval>``) as parsed, and books through one
:class:`~venuefeed.venues.binance.depth_sync.DepthSync` per symbol: the
stream fetches the REST snapshots it asks for, in the background, while the
socket keeps being read. After a reconnect every symbol of that connection
gets a ``DataGap`` for the time it was down, and its book is checked against
the new connection's first event instead of being thrown away.

Events are put on an unbounded queue by synchronous code right after each
state change, so a snapshot and the deltas that follow it can never swap
places; the frame reader pauses while more than ``max_pending`` events wait
(backpressure reaches the socket through the transport's own bounded queue).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Final

import msgspec

from venuefeed.book import OrderBook
from venuefeed.log import get_logger
from venuefeed.models import BookDelta, Event
from venuefeed.transport import Frame, HttpError, Reconnected, WsPolicy, WsProtocolBase, WsSession
from venuefeed.venues.base import Channel, VenueStream, disconnect_gap
from venuefeed.venues.binance.depth_sync import DepthSync
from venuefeed.venues.binance.options import Options
from venuefeed.venues.binance.parse import VENUE, parse_frame
from venuefeed.venues.binance.rest import BinanceRest
from venuefeed.venues.rejects import Rejects

__all__ = ["BinanceProtocol", "BinanceStream"]

MAX_STREAMS_PER_CONNECTION: Final = 1024


class BinanceProtocol(WsProtocolBase):
    """The combined-stream socket's wire protocol (a :class:`~venuefeed.transport.WsProtocol`)."""

    max_subscriptions: int | None = MAX_STREAMS_PER_CONNECTION
    app_ping: str | None = None  # the venue pings us; the transport pongs
    app_ping_interval: float = 0.0

    def __init__(self, ws_base_url: str) -> None:
        self._url = ws_base_url.rstrip("/") + "/stream"
        self._ids = itertools.count(1)

    def url(self) -> str:
        return self._url

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        return [self._control("SUBSCRIBE", subs)] if subs else []

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        return [self._control("UNSUBSCRIBE", subs)] if subs else []

    def _control(self, method: str, subs: Sequence[str]) -> str:
        message = {"method": method, "params": list(subs), "id": next(self._ids)}
        return msgspec.json.encode(message).decode()


class BinanceStream(VenueStream):
    """Live Binance events for a changing set of symbols (see the module docstring)."""

    def __init__(
        self,
        rest: BinanceRest,
        ws_base_url: str,
        channels: frozenset[Channel],
        options: Options,
        policy: WsPolicy,
        rejects: Rejects | None = None,
    ) -> None:
        self._rest = rest
        self._options = options
        self._books_on = "books" in channels
        self._suffixes = _suffixes(channels, options)
        self.session: WsSession = WsSession(VENUE, BinanceProtocol(ws_base_url), policy)
        self._syncs: dict[str, DepthSync] = {}
        self._symbols: dict[str, None] = {}
        self._fetches: set[asyncio.Task[None]] = set()
        self._out: asyncio.Queue[Event | None] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self._rejects = rejects or Rejects(VENUE)
        self._log = get_logger("venuefeed.venues.binance.stream")

    @property
    def state(self) -> str:
        return self.session.state.value

    # -- subscriptions ------------------------------------------------------------------

    async def subscribe(self, instruments: Iterable[str]) -> None:
        symbols = [s.upper() for s in instruments if s.upper() not in self._symbols]
        for symbol in symbols:
            self._symbols[symbol] = None
            if self._books_on:
                self._syncs[symbol] = DepthSync(symbol)
        await self.session.subscribe(self._streams(symbols))
        if self._pump is None and not self._closed:
            await self.session.start()
            self._pump = asyncio.create_task(self._run(), name="binance-stream")

    async def unsubscribe(self, instruments: Iterable[str]) -> None:
        symbols = [s.upper() for s in instruments if s.upper() in self._symbols]
        for symbol in symbols:
            del self._symbols[symbol]
            self._syncs.pop(symbol, None)
        await self.session.unsubscribe(self._streams(symbols))

    def _streams(self, symbols: Iterable[str]) -> list[str]:
        return [f"{s.lower()}@{suffix}" for s in symbols for suffix in self._suffixes]

    def backlog(self) -> int:
        return super().backlog() + self._out.qsize()

    def tap_raw(self, tap: Callable[[bytes | str, int], None]) -> None:
        self.session.raw_tap = tap

    def book(self, instrument: str) -> OrderBook | None:
        sync = self._syncs.get(instrument.upper())
        return sync.book if sync is not None else None

    async def resync(self, instrument: str) -> None:
        """A fresh REST snapshot for one symbol; the socket stays as it is."""
        sync = self._syncs.get(instrument.upper())
        if sync is None:
            return
        for event in sync.restart(time.time_ns()):
            self._out.put_nowait(event)
        if sync.wants_snapshot:
            self._fetch_snapshot(sync)

    # -- consuming --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        out = self._out
        room = self._room
        low_water = self._options.max_pending // 2
        while True:
            event = await out.get()
            if event is None:
                return
            if not room.is_set() and out.qsize() <= low_water:
                room.set()
            yield event

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._fetches):
            task.cancel()
        await asyncio.gather(*self._fetches, return_exceptions=True)
        await self.session.stop()
        if self._pump is not None:
            self._room.set()
            await self._pump
        else:
            self._out.put_nowait(None)

    # -- the reader --------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async for item in self.session:
                if isinstance(item, Frame):
                    self._on_frame(item)
                else:
                    self._on_reconnected(item)
                if self._out.qsize() >= self._options.max_pending:
                    self._room.clear()
                    await self._room.wait()
        finally:
            self._out.put_nowait(None)

    def _on_frame(self, frame: Frame) -> None:
        put = self._out.put_nowait
        for event in parse_frame(frame.data, frame.ts_recv, self._rejects):
            if type(event) is BookDelta:
                sync = self._syncs.get(event.instrument)
                if sync is None:
                    continue  # unsubscribed while the frame was in flight
                for out in sync.on_delta(event):
                    put(out)
                if sync.wants_snapshot:
                    self._fetch_snapshot(sync)
            elif event.instrument in self._symbols:
                put(event)

    def _on_reconnected(self, item: Reconnected) -> None:
        symbols = list(
            dict.fromkeys(
                stream.partition("@")[0].upper()
                for stream in self.session.shard_subscriptions(item.conn)
            )
        )
        gap = disconnect_gap(VENUE, item.conn, symbols, item.down_since, item.ts_recv)
        self._out.put_nowait(self.open_gap(gap))
        for symbol in symbols:
            sync = self._syncs.get(symbol)
            if sync is not None:
                sync.on_reconnect()

    # -- snapshots ---------------------------------------------------------------------------

    def _fetch_snapshot(self, sync: DepthSync) -> None:
        sync.snapshot_started()
        task = asyncio.create_task(self._snapshot(sync), name=f"binance-depth-{sync.symbol}")
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    async def _snapshot(self, sync: DepthSync) -> None:
        put = self._out.put_nowait
        try:
            snap = await self._rest.fetch_book(sync.symbol, self._options.depth_limit)
        except HttpError as exc:
            self._log.warning("binance depth snapshot failed", symbol=sync.symbol, error=str(exc))
            for event in sync.snapshot_failed(time.time_ns()):
                put(event)
            return
        if self._syncs.get(sync.symbol) is not sync:
            return  # unsubscribed meanwhile
        for event in sync.on_snapshot(snap):
            put(event)
        if sync.wants_snapshot:
            self._fetch_snapshot(sync)


def _suffixes(channels: frozenset[Channel], options: Options) -> list[str]:
    suffixes = []
    if "books" in channels:
        suffixes.append("depth" if options.depth_speed == "1000ms" else "depth@100ms")
    if "trades" in channels:
        suffixes.append(options.trade_stream)
    if "quotes" in channels:
        suffixes.append("bookTicker")
    if "candles" in channels:
        suffixes.append(f"kline_{options.kline_interval}")
    return suffixes
