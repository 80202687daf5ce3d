"""Kalshi's authenticated WebSocket on top of the shared transport session.

:class:`KalshiWsProtocol` tells :class:`~venuefeed.transport.WsSession` what
to say (the signed upgrade request, ``subscribe`` commands); the session keeps
the connection alive and replays subscriptions after a drop. Kalshi's server
sends protocol Ping frames (body ``heartbeat``) every 10 s and aiohttp answers
them, so there is no application ping. :class:`KalshiStream` runs the frames
through :class:`~venuefeed.venues.kalshi.feed.KalshiFeed` and sends the
snapshot requests it asks for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from venuefeed.book import OrderBook
from venuefeed.models import DataGap, Event
from venuefeed.transport import Frame, WsNotConnectedError, WsPolicy, WsProtocolBase, WsSession
from venuefeed.venues.base import VenueStream, disconnect_gap
from venuefeed.venues.kalshi.auth import Signer
from venuefeed.venues.kalshi.feed import KalshiFeed
from venuefeed.venues.rejects import Rejects

__all__ = ["KalshiStream", "KalshiWsProtocol"]


class KalshiWsProtocol(WsProtocolBase):
    """The Kalshi side of :class:`~venuefeed.transport.WsProtocol`."""

    max_subscriptions: int | None = 1000
    """Markets per connection; more open another connection (Kalshi error 26 guards a cap)."""
    app_ping: str | None = None
    app_ping_interval: float = 10.0

    def __init__(self, ws_url: str, signer: Signer, feed: KalshiFeed) -> None:
        self._url = ws_url
        self._path = urlsplit(ws_url).path or "/trade-api/ws/v2"
        self._signer = signer
        self._feed = feed

    def url(self) -> str:
        return self._url

    def handshake_headers(self) -> Mapping[str, str]:
        # Signed on every (re)connect: the signature embeds a fresh timestamp.
        return self._signer.headers("GET", self._path)

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        return self._feed.subscribe_frames(subs)

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        return self._feed.unsubscribe_frames(subs)


class KalshiStream(VenueStream):
    """Books, trades and quotes of a changing set of Kalshi markets, as canonical events."""

    def __init__(
        self,
        ws_url: str,
        signer: Signer,
        channels: Iterable[str],
        policy: WsPolicy | None = None,
        rejects: Rejects | None = None,
    ) -> None:
        self.feed = KalshiFeed(channels, rejects)
        self.protocol = KalshiWsProtocol(ws_url, signer, self.feed)
        self.session: WsSession = WsSession("kalshi", self.protocol, policy or WsPolicy())
        self.snapshot_requests = 0

    async def subscribe(self, instruments: Iterable[str]) -> None:
        await self.session.subscribe(instruments)
        await self.session.start()

    async def unsubscribe(self, instruments: Iterable[str]) -> None:
        await self.session.unsubscribe(instruments)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        feed = self.feed
        async for item in self.session:
            if isinstance(item, Frame):
                events, commands = feed.on_frame(item.data, item.ts_recv, item.conn)
                for conn, frame in commands:
                    self.snapshot_requests += 1
                    # If the connection is going, the reconnect resubscribes and resnapshots.
                    with contextlib.suppress(WsNotConnectedError, ConnectionError):
                        await self.session.send(frame, conn)
            else:
                tickers = self.session.shard_subscriptions(item.conn)
                gap = disconnect_gap("kalshi", item.conn, tickers, item.down_since, item.ts_recv)
                events = [self.open_gap(gap), *feed.on_reconnected(item.conn, item.ts_recv)]
            for event in events:
                if type(event) is DataGap and not event.healed:
                    self.open_gap(event)
                yield event

    def tap_raw(self, tap: Callable[[bytes | str, int], None]) -> None:
        self.session.raw_tap = tap

    def book(self, instrument: str) -> OrderBook | None:
        return self.feed.books.find(instrument)

    async def close(self) -> None:
        await self.session.stop()

    @property
    def state(self) -> str:
        return str(self.session.state)
