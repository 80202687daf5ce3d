"""Both prediction-market simulators and a store holding what discovery found in them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.helpers import settings_for
from venuefeed.pairs.match import pair_id
from venuefeed.service import Service
from venuefeed.sim.shared_events import SHARED_EVENTS
from venuefeed.venues.kalshi import Simulator as KalshiSim
from venuefeed.venues.kalshi.sim import MARKETS_PER_EVENT
from venuefeed.venues.polymarket import Simulator as PolymarketSim


@dataclass
class Venues:
    kalshi: KalshiSim
    polymarket: PolymarketSim
    db: Path

    def true_pairs(self) -> dict[str, str]:
        """Ground truth: pair id -> mapping, for every event both simulators list."""
        out = {}
        by_question = {m.question: m for m in self.polymarket.markets}
        for k, event in enumerate(SHARED_EVENTS):
            ticker = self.kalshi.universe.market_ticker(k * MARKETS_PER_EVENT)
            poly = by_question[event.polymarket_question]
            mapping = "yes_no" if event.inverted else "yes_yes"
            out[pair_id(ticker, poly.condition_id)] = mapping
        return out


@pytest.fixture
async def venues(tmp_path: Path) -> AsyncIterator[Venues]:
    """Simulators whose books stand still (quotes are then exactly checkable), discovered."""
    async with (
        KalshiSim.for_demo(seed=3, events_per_second=0.001) as kalshi,
        PolymarketSim(seed=3, markets=60, events_per_second=0.001) as polymarket,
    ):
        db = tmp_path / "vf.db"
        settings = settings_for({"kalshi": kalshi, "polymarket": polymarket}, db)
        service = Service(settings)
        await service.start(continuous=False)
        try:
            await service.discover_markets()
        finally:
            await service.stop()
        yield Venues(kalshi, polymarket, db)  # type: ignore[arg-type]
