"""The Binance spot adapter: REST history and snapshots, live combined streams.

Binance has no markets to discover: the instruments to track are symbols
from config (``venues.binance.instruments``). Market data needs no key.

Endpoints: ``rest`` defaults to ``https://api.binance.com`` and ``ws`` to
``wss://stream.binance.com:9443``. The market-data-only hosts
``https://data-api.binance.vision`` and ``wss://data-stream.binance.vision``
serve the same public endpoints and streams and are a drop-in alternative
(``urls: {rest: ..., ws: ...}``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from venuefeed.log import get_logger
from venuefeed.models import BookSnapshot, Candle, Trade
from venuefeed.transport import HttpError, HttpPolicy, WsPolicy
from venuefeed.venues.base import (
    ALL_CHANNELS,
    Capability,
    Channel,
    CheckResult,
    VenueAdapter,
    VenueStream,
)
from venuefeed.venues.binance.feed import DEPTH, BinanceFeed, DepthFetched
from venuefeed.venues.binance.options import Options
from venuefeed.venues.binance.parse import VENUE
from venuefeed.venues.binance.protocol import BinanceProtocol
from venuefeed.venues.binance.rest import BinanceRest
from venuefeed.venues.options import load_options
from venuefeed.venues.pump import FeedStream

if TYPE_CHECKING:
    from venuefeed.config import Settings, VenueSettings

__all__ = ["Adapter"]

_log = get_logger("venuefeed.venues.binance")


class Adapter(VenueAdapter):
    """Binance spot (see the module docstring)."""

    name: ClassVar[str] = VENUE
    default_urls: ClassVar[Mapping[str, str]] = {
        "rest": "https://api.binance.com",
        "ws": "wss://stream.binance.com:9443",
    }
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"books", "trades", "candles", "stream"}
    )
    options_type: ClassVar[type[Options]] = Options

    def __init__(self, settings: VenueSettings, config: Settings) -> None:
        super().__init__(settings, config)
        self.options = load_options(self.options_type, VENUE, settings.options)
        self.rest = BinanceRest(
            self.url("rest"),
            HttpPolicy.from_settings(settings),
            weight_per_minute=self.options.weight_per_minute,
            weight_window_seconds=self.options.weight_window_seconds,
            rejects=self.rejects,
        )
        self.ws_policy = WsPolicy.from_settings(settings, config.ingestion)
        """Reconnect/heartbeat policy of the streams this adapter opens."""

    async def close(self) -> None:
        await self.rest.close()

    async def fetch_book(self, instrument: str, depth: int) -> BookSnapshot:
        return await self.rest.fetch_book(instrument.upper(), depth)

    def fetch_trades(self, instrument: str, start_ns: int, end_ns: int) -> AsyncIterator[Trade]:
        """Aggregate trades (ids ``"a<aggId>"``) in ``[start_ns, end_ns)``, oldest first."""
        return self.rest.fetch_trades(instrument.upper(), start_ns, end_ns)

    def fetch_candles(
        self, instrument: str, interval: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Candle]:
        """Klines opening in ``[start_ns, end_ns)``, oldest first."""
        return self.rest.fetch_candles(instrument.upper(), interval, start_ns, end_ns)

    async def check(self) -> CheckResult:
        started = time.perf_counter()
        try:
            await self.rest.ping()
            latency_ms = (time.perf_counter() - started) * 1000
            server_ns = await self.rest.server_time()
        except HttpError as exc:
            return CheckResult(VENUE, reachable=False, detail=str(exc))
        skew_ms = (time.time_ns() - server_ns) / 1e6
        return CheckResult(
            VENUE,
            reachable=True,
            latency_ms=round(latency_ms, 1),
            detail=f"server clock offset {skew_ms:+.0f} ms; used weight {self.rest.used_weight}",
            extra={"clock_offset_ms": skew_ms, "used_weight": self.rest.used_weight},
        )

    def open_stream(self, channels: frozenset[Channel] = ALL_CHANNELS) -> VenueStream:
        """The generic pump around a :class:`BinanceFeed`; its depth snapshots come from REST.

        Events leave as the pump's batches, so the only buffer between socket and
        consumer is the session's bounded queue ("everything is bounded").
        """
        return FeedStream(
            BinanceFeed(channels, self.options, self.rejects),
            BinanceProtocol(self.url("ws")),
            self.ws_policy,
            fetch=self._fetch,
        )

    async def _fetch(self, what: str, keys: Sequence[str]) -> list[DepthFetched]:
        """The depth snapshots a feed asked for, fetched side by side (the HTTP client
        bounds how many are in flight); a failed one is ``DepthFetched(symbol, None)``."""
        if what != DEPTH:
            raise ValueError(f"binance feeds fetch only {DEPTH!r}, not {what!r}")
        return await asyncio.gather(*(self._snapshot(symbol) for symbol in keys))

    async def _snapshot(self, symbol: str) -> DepthFetched:
        try:
            return DepthFetched(
                symbol, await self.rest.fetch_book(symbol, self.options.depth_limit)
            )
        except HttpError as exc:
            _log.warning("binance depth snapshot failed", symbol=symbol, error=str(exc))
            return DepthFetched(symbol, None)
