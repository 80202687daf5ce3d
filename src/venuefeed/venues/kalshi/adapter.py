"""The Kalshi :class:`~venuefeed.venues.base.VenueAdapter`.

Hosts (KD ``getting_started/api_environments.md``): production REST
``https://external-api.kalshi.com/trade-api/v2`` and WebSocket
``wss://external-api-ws.kalshi.com/trade-api/ws/v2`` (the defaults); the demo
environment is ``https://external-api.demo.kalshi.co/trade-api/v2`` and
``wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2`` -- set them in
``venues.kalshi.urls`` (``rest``, ``ws``).

Credentials (``venues.kalshi.credentials``): ``api_key_id`` plus either
``private_key`` (the PEM text, e.g. from ``VENUEFEED_VENUES__KALSHI__CREDENTIALS__PRIVATE_KEY``)
or ``private_key_path``. Market data over REST works without them; the
WebSocket needs them even for public channels.

The live stream is the generic :class:`~venuefeed.venues.pump.FeedStream`
driving :class:`~venuefeed.venues.kalshi.feed.KalshiFeed`; the only Kalshi
piece on the transport side is :class:`KalshiWsProtocol` (what to say on a
connection: the signed upgrade and the subscribe commands).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from venuefeed.models import BookSnapshot, Candle, Market, MarketStatus, Trade
from venuefeed.transport import HttpPolicy, HttpStatusError, WsPolicy, WsProtocolBase
from venuefeed.transport.http import HttpError
from venuefeed.venues.base import (
    ALL_CHANNELS,
    Capability,
    Channel,
    CheckResult,
    MarketQuery,
    VenueAdapter,
    VenueStream,
)
from venuefeed.venues.kalshi.auth import CredentialsError, Signer, load_signer
from venuefeed.venues.kalshi.feed import KalshiFeed
from venuefeed.venues.kalshi.options import Options
from venuefeed.venues.kalshi.rest import KalshiRest
from venuefeed.venues.options import load_options
from venuefeed.venues.pump import FeedStream

if TYPE_CHECKING:
    from venuefeed.config import Settings, VenueSettings

__all__ = ["Adapter", "KalshiWsProtocol"]


class KalshiWsProtocol(WsProtocolBase):
    """The Kalshi side of :class:`~venuefeed.transport.WsProtocol`.

    Kalshi's server sends protocol Ping frames (body ``heartbeat``) every 10 s
    and aiohttp answers them, so there is no application ping.
    """

    app_ping: str | None = None
    app_ping_interval: float = 10.0

    def __init__(self, ws_url: str, signer: Signer, feed: KalshiFeed, per_connection: int) -> None:
        self._url = ws_url
        self._path = urlsplit(ws_url).path or "/trade-api/ws/v2"
        self._signer = signer
        self._feed = feed
        self.max_subscriptions: int | None = per_connection

    def url(self) -> str:
        return self._url

    def handshake_headers(self) -> Mapping[str, str]:
        # Signed on every (re)connect: the signature embeds a fresh timestamp.
        return self._signer.headers("GET", self._path)

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        return self._feed.subscribe_frames(subs)

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        return self._feed.unsubscribe_frames(subs)


class Adapter(VenueAdapter):
    name = "kalshi"
    default_urls: ClassVar[dict[str, str]] = {
        "rest": "https://external-api.kalshi.com/trade-api/v2",
        "ws": "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
    }
    demo_urls: ClassVar[dict[str, str]] = {
        "rest": "https://external-api.demo.kalshi.co/trade-api/v2",
        "ws": "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
    }
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"markets", "books", "trades", "candles", "stream"}
    )

    def __init__(self, settings: VenueSettings, config: Settings) -> None:
        super().__init__(settings, config)
        self.options = load_options(Options, self.name, settings.options)
        self.signer: Signer | None = load_signer(
            self.credential("api_key_id"),
            self.credential("private_key"),
            self.credential("private_key_path"),
        )
        self.rest = KalshiRest(
            self.url("rest"),
            HttpPolicy.from_settings(settings),
            self.signer,
            self.rejects,
            historical_tier=self.options.historical_tier,
            cutoff_ttl=self.options.cutoff_refresh_seconds,
        )

    async def close(self) -> None:
        await self.rest.close()

    @classmethod
    def why_no_data(cls, settings: VenueSettings) -> str:
        if "api_key_id" not in settings.credentials:
            return "no credentials: the live stream needs venues.kalshi.credentials.api_key_id"
        return super().why_no_data(settings)

    def require_signer(self) -> Signer:
        """The signer, or a clear error naming what to configure."""
        if self.signer is None:
            raise CredentialsError(
                "kalshi: this needs an API key -- set venues.kalshi.credentials.api_key_id and "
                "private_key (PEM text) or private_key_path"
            )
        return self.signer

    # -- REST ----------------------------------------------------------------

    async def fetch_markets(self, query: MarketQuery) -> AsyncIterator[Market]:
        """Markets for discovery: the close-time window is filtered by the venue.

        Kalshi accepts ``min_close_ts``/``max_close_ts`` only without a status
        filter (or with ``closed``), so with a window the ``open`` status is
        checked here instead; without one ``status=open`` goes to the venue.
        """
        params: dict[str, object] = {}
        days = query.max_resolution_days
        if days > 0:
            now = int(time.time())
            params["min_close_ts"] = now
            params["max_close_ts"] = now + int(days * 86_400)
        elif query.active_only:
            params["status"] = "open"
        scopes: list[tuple[dict[str, object], str | None]] = []
        if query.categories:
            for name in query.categories:
                found = await self.rest.series_tickers(name)
                scopes.extend(({**params, "series_ticker": series}, name) for series in found)
        else:
            scopes.append((params, None))
        count = 0
        for scope, category in scopes:
            async for market in self.rest.markets(scope, category):
                if query.active_only and market.status is not MarketStatus.OPEN:
                    continue
                yield market
                count += 1
                if query.limit is not None and count >= query.limit:
                    return

    async def fetch_book(self, instrument: str, depth: int) -> BookSnapshot:
        return await self.rest.orderbook(instrument, depth)

    def fetch_trades(self, instrument: str, start_ns: int, end_ns: int) -> AsyncIterator[Trade]:
        return self.rest.trades(instrument, start_ns, end_ns)

    def fetch_candles(
        self, instrument: str, interval: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Candle]:
        return self.rest.candles(instrument, interval, start_ns, end_ns)

    async def check(self) -> CheckResult:
        """Reachability (exchange status) and, with a key configured, a signed portfolio call."""
        result = CheckResult(venue=self.name, reachable=False)
        start = time.perf_counter()
        try:
            await self.rest.get("/exchange/status", endpoint="exchange")
        except HttpStatusError as exc:
            # The venue answered: it is reachable. Signed requests it rejects mean a bad key.
            result.reachable = True
            if exc.status in (401, 403):
                result.authenticated = False
                result.detail = f"API key rejected (HTTP {exc.status}): {exc.message}"
            else:
                result.detail = f"reachable, but HTTP {exc.status}: {exc.message}"
            return result
        except HttpError as exc:
            result.detail = f"unreachable: {exc}"
            return result
        result.reachable = True
        result.latency_ms = round((time.perf_counter() - start) * 1000, 1)
        if self.signer is None:
            result.detail = (
                "reachable; no API key configured (REST market data works, the live stream needs "
                "venues.kalshi.credentials)"
            )
            return result
        try:
            await self.rest.get("/portfolio/balance", endpoint="portfolio")
        except HttpStatusError as exc:
            result.authenticated = False
            result.detail = f"API key rejected (HTTP {exc.status}): {exc.message}"
            return result
        except HttpError as exc:
            result.detail = f"reachable; auth check failed: {exc}"
            return result
        result.authenticated = True
        result.detail = f"reachable; API key {self.signer.key_id} accepted"
        return result

    # -- streaming -----------------------------------------------------------

    def open_stream(self, channels: frozenset[Channel] = ALL_CHANNELS) -> VenueStream:
        """The generic pump around a :class:`KalshiFeed` of the wanted channels."""
        policy = WsPolicy.from_settings(self.settings, self.config.ingestion)
        feed = KalshiFeed(
            channels, self.rejects, self.options.quote_channel, self.options.account_channels
        )
        protocol = KalshiWsProtocol(
            self.url("ws"), self.require_signer(), feed, self.options.markets_per_connection
        )
        return FeedStream(feed, protocol, policy)
