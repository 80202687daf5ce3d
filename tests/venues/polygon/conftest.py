"""Fixtures: a Polygon simulator on 127.0.0.1 and adapters pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from venuefeed.config import Settings, VenueSettings
from venuefeed.venues.polygon import Adapter, Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=7, events_per_second=40.0, basic_key="basic-key")
    await simulator.start()
    yield simulator
    await simulator.stop()


def _adapter_for(
    sim: Simulator,
    key: str | None = None,
    attempts: int = 2,
    backoff_base: float = 0.05,
    **options: Any,
) -> Adapter:
    settings = VenueSettings(
        enabled=True,
        urls=sim.urls(),
        credentials={"api_key": key} if key else sim.client_credentials(),
        rate_limit={"requests_per_second": 1000, "burst": 1000},
        retry={"attempts": attempts, "backoff_base_seconds": 0.001, "backoff_max_seconds": 0.005},
        websocket={"backoff_base_seconds": backoff_base, "backoff_cap_seconds": 0.5},
        options=options,
    )
    return Adapter(settings, Settings())


@pytest.fixture
async def make_adapter(sim: Simulator) -> AsyncIterator[Callable[..., Adapter]]:
    made: list[Adapter] = []

    def make(
        key: str | None = None, attempts: int = 2, backoff_base: float = 0.05, **options: Any
    ) -> Adapter:
        adapter = _adapter_for(sim, key, attempts, backoff_base, **options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
def adapter_for() -> Callable[..., Adapter]:
    """Build an adapter for a simulator a test starts itself (the caller closes it)."""
    return _adapter_for
