"""The planner: keeps the instrument universe current, one worker at a time.

Whichever worker holds the ``planner`` lease runs discovery for every venue
with market discovery (plus the instruments the configuration names), drops
markets that are no longer open, and writes the universe to the state bucket
split by shard (``universe.<venue>.<shard>``: each worker reads only the
shards it owns, and no value grows past the server's size limit). Markets it
found are published on the bus like any event, stamped with the planner's
lease. If the planner dies, its lease lapses and another worker carries on;
the universe in the bucket stays as it was meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import msgspec

from venuefeed.cluster.hashing import assign
from venuefeed.cluster.jetstream import Bus
from venuefeed.config import Settings
from venuefeed.log import get_logger
from venuefeed.models import MarketStatus
from venuefeed.pipeline.router import Pipeline
from venuefeed.venues.base import MarketQuery, VenueAdapter

__all__ = ["PLANNER_KEY", "Planner", "universe_key"]

log = get_logger("venuefeed.cluster.planner")

PLANNER_KEY = "planner"
_ACTIVE = frozenset({MarketStatus.OPEN, MarketStatus.UNKNOWN, MarketStatus.UPCOMING})


def universe_key(venue: str, shard: int) -> str:
    return f"universe.{venue}.{shard}"


class Planner:
    """Discovery for the whole cluster, run by the elected worker."""

    def __init__(
        self, bus: Bus, settings: Settings, adapters: Mapping[str, VenueAdapter], pipeline: Pipeline
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.adapters = adapters
        self.pipeline = pipeline
        self.last_run: float | None = None
        self.sizes: dict[str, int] = {}
        self._written: dict[str, bytes] = {}

    def due(self, now: float) -> bool:
        interval = self.settings.discovery.interval_seconds
        return self.last_run is None or now - self.last_run >= interval

    async def run_once(self) -> None:
        """Discover every venue, then write the shards whose instrument list changed."""
        discovery = self.settings.discovery
        query = MarketQuery(
            max_resolution_days=discovery.max_resolution_days,
            categories=tuple(discovery.categories),
            limit=discovery.max_markets,
        )
        for name, adapter in self.adapters.items():
            instruments = set(adapter.settings.instruments)
            if "markets" in adapter.capabilities:
                found = 0
                async for market in adapter.fetch_markets(query):
                    found += 1
                    await self.pipeline.process(market)
                    if market.status in _ACTIVE:
                        instruments.update(market.instruments)
                    if found >= discovery.max_markets:
                        break
            await self._write(name, instruments)
            self.sizes[name] = len(instruments)
        self.last_run = time.monotonic()

    async def _write(self, venue: str, instruments: set[str]) -> None:
        for shard, members in assign(venue, instruments, self.settings.cluster.shards).items():
            key = universe_key(venue, shard)
            value = msgspec.json.encode(members)
            if self._written.get(key) == value:
                continue
            await self.bus.state.put(key, value)
            self._written[key] = value
        log.info("universe written", venue=venue, instruments=len(instruments))
