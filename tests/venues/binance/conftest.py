"""A running Binance simulator and an adapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from venuefeed.config import Settings, VenueSettings
from venuefeed.sim.base import Faults
from venuefeed.transport import WsPolicy
from venuefeed.venues.binance import Adapter, Simulator


def make_adapter(sim: Simulator, *, max_in_flight: int = 8, **options: object) -> Adapter:
    settings = VenueSettings(urls=sim.urls(), options=dict(options))
    settings.retry.backoff_base_seconds = 0.01
    settings.retry.backoff_max_seconds = 0.05
    settings.rate_limit.requests_per_second = 1000
    settings.rate_limit.burst = 100
    settings.rate_limit.max_in_flight = max_in_flight
    adapter = Adapter(settings, Settings())
    adapter.ws_policy = WsPolicy(backoff_base=0.02, backoff_cap=0.1, idle_timeout=5.0)
    return adapter


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=7, faults=Faults(), events_per_second=100)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def adapter(sim: Simulator) -> AsyncIterator[Adapter]:
    client = make_adapter(sim)
    yield client
    await client.close()
