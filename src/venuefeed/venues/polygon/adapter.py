"""The Polygon.io (Massive) adapter: US stocks trades, NBBO quotes and aggregates.

Hosts
    Polygon.io renamed itself Massive in October 2025 and moved its hosts;
    keys and endpoints carried over. The defaults are the current hosts:
    ``rest`` = ``https://api.massive.com``, ``ws`` = ``wss://socket.massive.com/stocks``.
    Override them under ``venues.polygon.urls``: ``wss://delayed.massive.com/stocks``
    for the 15-minute delayed feed, or the pre-rename ``https://api.polygon.io`` /
    ``wss://socket.polygon.io/stocks`` (and ``delayed.polygon.io``).

Key
    ``venues.polygon.credentials.api_key`` (env
    ``VENUEFEED_VENUES__POLYGON__CREDENTIALS__API_KEY``), else the vendor
    client's ``MASSIVE_API_KEY`` or ``POLYGON_API_KEY``. It is registered with
    the log masker and sent only as an ``Authorization: Bearer`` header and in
    the WebSocket auth frame -- never in a URL.

Rate limit
    Without a ``rate_limit`` section the adapter assumes the free plan: 5
    requests per minute (burst 5). Paid plans set e.g.
    ``rate_limit: {requests_per_second: 50, burst: 50}``. 429s are retried by
    the transport.

Options (``venues.polygon.options``, :class:`~venuefeed.venues.polygon.options.Options`)
    ``page_limit`` (1..50000, default 50000): rows per REST page. WebSocket
    tuning is the shared ``venues.polygon.websocket`` section.

No L2 book exists for US stocks here: ``stream_books`` raises
:class:`~venuefeed.venues.base.Unsupported`; ``stream_quotes`` gives the NBBO
as :class:`~venuefeed.models.TopOfBook`.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Final

from venuefeed.log import register_secret
from venuefeed.models import Candle, Event, Trade
from venuefeed.transport import HttpError, HttpPolicy, HttpStatusError, WsPolicy
from venuefeed.venues.base import (
    ALL_CHANNELS,
    Capability,
    Channel,
    CheckResult,
    Unsupported,
    VenueAdapter,
)
from venuefeed.venues.options import load_options
from venuefeed.venues.pump import FeedStream

from .feed import CHANNEL_PREFIXES, PolygonFeed
from .options import Options
from .parse import VENUE, Interval
from .protocol import PolygonProtocol
from .rest import PolygonRest

if TYPE_CHECKING:
    from venuefeed.config import Settings, VenueSettings

__all__ = ["Adapter", "MissingApiKeyError"]

FREE_PLAN_RATE: Final = 5 / 60
"""Requests per second on the free (Basic) plan: 5 per minute."""
_KEY_ENV: Final = ("MASSIVE_API_KEY", "POLYGON_API_KEY")


def _api_key(settings: VenueSettings) -> str | None:
    secret = settings.credentials.get("api_key")
    if secret is not None:
        return secret.get_secret_value()
    return next((os.environ[name] for name in _KEY_ENV if os.environ.get(name)), None)


class MissingApiKeyError(ValueError):
    """No Polygon/Massive API key is configured."""


class Adapter(VenueAdapter):
    """Polygon/Massive stocks: v3 trades and aggregates over REST, T/Q/AM over WebSocket."""

    name: ClassVar[str] = VENUE
    default_urls: ClassVar[Mapping[str, str]] = {
        "rest": "https://api.massive.com",
        "ws": "wss://socket.massive.com/stocks",
    }
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"trades", "candles", "stream"})
    options_type: ClassVar[type[Options]] = Options

    @classmethod
    def why_no_data(cls, settings: VenueSettings) -> str:
        if not _api_key(settings):
            return "no credentials: set venues.polygon.credentials.api_key or MASSIVE_API_KEY"
        return super().why_no_data(settings)

    def __init__(self, settings: VenueSettings, config: Settings) -> None:
        super().__init__(settings, config)
        self.options = load_options(self.options_type, VENUE, settings.options)
        key = _api_key(settings)
        if not key:
            raise MissingApiKeyError(
                "polygon: no API key; set venues.polygon.credentials.api_key "
                "(VENUEFEED_VENUES__POLYGON__CREDENTIALS__API_KEY) or MASSIVE_API_KEY"
            )
        register_secret(key)
        self._api_key = key
        policy = HttpPolicy.from_settings(settings)
        if "rate_limit" not in settings.model_fields_set:
            policy = replace(policy, rate=FREE_PLAN_RATE, burst=5)
        self.rest = PolygonRest(
            self.url("rest"),
            key,
            policy,
            page_limit=self.options.page_limit,
            rejects=self.rejects,
        )
        self._ws_policy = WsPolicy.from_settings(settings, config.ingestion)

    async def close(self) -> None:
        await self.rest.close()

    # -- REST ------------------------------------------------------------------------

    async def fetch_trades(
        self, instrument: str, start_ns: int, end_ns: int, *, resume: str | None = None
    ) -> AsyncIterator[Trade]:
        """Trades in ``[start_ns, end_ns)``, oldest first.

        ``resume`` is a ``next_cursor`` stored from :meth:`PolygonRest.trade_pages`;
        see :mod:`venuefeed.venues.polygon.rest` for how resuming works.
        """
        async for page in self.rest.trade_pages(instrument, start_ns, end_ns, resume=resume):
            for trade in page.items:
                yield trade

    async def fetch_candles(
        self,
        instrument: str,
        interval: str,
        start_ns: int,
        end_ns: int,
        *,
        resume: str | None = None,
    ) -> AsyncIterator[Candle]:
        """Bars of ``interval`` opening in ``[start_ns, end_ns)``.

        ``interval`` is canonical (``"1m"``, ``"1d"``); Polygon's ``"1minute"`` works too.
        """
        pages = self.rest.candle_pages(
            instrument, Interval.parse(interval), start_ns, end_ns, resume=resume
        )
        async for page in pages:
            for candle in page.items:
                yield candle

    async def check(self) -> CheckResult:
        """Ask ``/v1/marketstatus/now``: it answers only to a valid key."""
        started = time.perf_counter()
        try:
            status = await self.rest.market_status()
        except HttpStatusError as exc:
            auth = exc.status in (401, 403)
            return CheckResult(
                VENUE,
                reachable=True,
                authenticated=False if auth else None,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail=f"HTTP {exc.status}: {exc.message}",
            )
        except HttpError as exc:
            return CheckResult(VENUE, reachable=False, detail=str(exc))
        return CheckResult(
            VENUE,
            reachable=True,
            authenticated=True,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=f"market {status.market}",
            extra={"server_time": status.serverTime},
        )

    # -- streaming -------------------------------------------------------------------

    def open_stream(self, channels: frozenset[Channel] = ALL_CHANNELS) -> FeedStream:
        """The generic pump around a :class:`PolygonFeed` of the supported channels among
        ``channels`` (trades, quotes, candles)."""
        if not any(name in channels for name in CHANNEL_PREFIXES):
            raise Unsupported(f"polygon streams trades, quotes and candles, not {sorted(channels)}")
        return FeedStream(
            PolygonFeed(channels, self.rejects),
            PolygonProtocol(self.url("ws"), self._api_key),
            self._ws_policy,
        )

    def stream_books(self, instruments: Iterable[str]) -> AsyncIterator[Event]:
        raise Unsupported(
            "polygon: US stocks have no L2 order book feed; use stream_quotes for the NBBO "
            "(top of book)"
        )
