"""venuefeed as a library, for notebooks and bots.

    async with venuefeed.open("venuefeed.yaml") as feed:
        markets = await feed.markets("polymarket")
        book = await feed.book("polymarket", markets[0].instruments[0])
        async for event in feed.stream("polymarket", markets=[markets[0].market_id]):
            print(event)

No storage and no service: the venue clients, their books and the canonical
events, nothing else. (Run ``venuefeed run`` for ingestion into storage.)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from venuefeed.config import Settings, load_config
from venuefeed.models import BookSnapshot, Event, Market, Trade
from venuefeed.venues.base import (
    ALL_CHANNELS,
    Channel,
    MarketQuery,
    VenueAdapter,
    adapter_class,
)

__all__ = ["Feed", "open"]


class Feed:
    """Venue clients behind one object; create it with :func:`open`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._adapters: dict[str, VenueAdapter] = {}
        self._markets: dict[tuple[str, str], Market] = {}

    def adapter(self, venue: str) -> VenueAdapter:
        adapter = self._adapters.get(venue)
        if adapter is None:
            settings = self.settings.venues.get(venue)
            if settings is None:
                raise KeyError(f"venue {venue!r} is not configured")
            adapter = self._adapters[venue] = adapter_class(venue)(settings, self.settings)
        return adapter

    async def markets(
        self, venue: str, query: MarketQuery | None = None, **filters: Any
    ) -> list[Market]:
        """Markets from discovery; ``filters`` are :class:`MarketQuery` fields."""
        if query is None:
            discovery = self.settings.discovery
            base = {
                "max_resolution_days": discovery.max_resolution_days,
                "categories": tuple(discovery.categories),
                "limit": discovery.max_markets,
            }
            query = MarketQuery(**{**base, **filters})
        found = []
        async for market in self.adapter(venue).fetch_markets(query):
            self._markets[(venue, market.market_id)] = market
            found.append(market)
            if query.limit is not None and len(found) >= query.limit:
                break
        return found

    async def book(self, venue: str, instrument: str, depth: int | None = None) -> BookSnapshot:
        depth = depth or self.settings.ingestion.book_depth
        return await self.adapter(venue).fetch_book(instrument, depth)

    async def trades(
        self, venue: str, instrument: str, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Trade]:
        end = end_ns if end_ns is not None else time.time_ns()
        start = start_ns if start_ns is not None else end - 3600 * 1_000_000_000
        return [t async for t in self.adapter(venue).fetch_trades(instrument, start, end)]

    async def stream(
        self,
        venue: str,
        markets: Iterable[str] = (),
        *,
        instruments: Iterable[str] = (),
        channels: Iterable[Channel] = ALL_CHANNELS,
    ) -> AsyncIterator[Event]:
        """Live canonical events. ``markets`` are market ids (expanded to their
        instruments when :meth:`markets` has seen them) or instrument ids."""
        wanted = list(instruments)
        for market_id in markets:
            market = self._markets.get((venue, market_id))
            wanted.extend(market.instruments if market is not None else [market_id])
        stream = self.adapter(venue).open_stream(frozenset(channels))
        async with stream:
            await stream.subscribe(wanted)
            async for event in stream:
                yield event

    async def close(self) -> None:
        for adapter in self._adapters.values():
            await adapter.close()
        self._adapters.clear()


@asynccontextmanager
async def open(
    config: Settings | str | Path | None = None, **overrides: Any
) -> AsyncIterator[Feed]:
    """A :class:`Feed` from settings, a YAML path, or the environment; closed on exit.

    ``overrides`` are dotted keys, e.g. ``{"venues.polymarket.urls": {...}}`` passed
    as ``**{"venues.polymarket.urls": ...}``.
    """
    settings = config if isinstance(config, Settings) else load_config(config, overrides)
    feed = Feed(settings)
    try:
        yield feed
    finally:
        await feed.close()
