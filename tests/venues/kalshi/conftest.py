"""Fixtures for the Kalshi tests: a test key pair and a small signed simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.venues.kalshi.kalshi_support import ANCHOR
from venuefeed.venues.kalshi.auth import generate_test_keypair
from venuefeed.venues.kalshi.sim import Simulator


@pytest.fixture(scope="session")
def keypair() -> tuple[bytes, bytes]:
    return generate_test_keypair()


@pytest.fixture
async def sim(keypair: tuple[bytes, bytes]) -> AsyncIterator[Simulator]:
    simulator = Simulator(
        seed=7, markets=400, public_key_pem=keypair[1], anchor_ts=ANCHOR, trading_markets=0
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()
