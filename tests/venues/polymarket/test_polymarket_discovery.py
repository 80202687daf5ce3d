"""Gamma discovery over real sockets: keyset pages first, the legacy offset list as the
fallback, a repeating keyset stopped, and one odd market refused alone (protocol doc 7.1)."""

from __future__ import annotations

from typing import Any

import pytest

from venuefeed.venues.base import MarketQuery
from venuefeed.venues.polymarket import Simulator

from .helpers import make_adapter

EVERYTHING = MarketQuery(max_resolution_days=0)


def open_ids(sim: Simulator) -> set[str]:
    return {m.condition_id for m in sim.markets if not m.closed}


@pytest.mark.parametrize(
    ("mode", "keyset_requests", "legacy_requests"),
    [
        ("ok", 3, 0),  # 230 markets, 100 a page, the last without next_cursor
        # The legacy list ends on an empty page (a short page may be the venue's cap): 4.
        ("absent", 1, 4),  # 404: the legacy list answers everything
        ("ignore_cursor", 2, 4),  # the cursor comes back again: stop, then the legacy list
    ],
)
async def test_every_market_once_whatever_the_keyset_does(
    mode: Any, keyset_requests: int, legacy_requests: int
) -> None:
    async with Simulator(seed=31, markets=230, events_per_second=0.001) as sim:
        assert isinstance(sim, Simulator)
        sim.gamma_keyset = mode
        async with make_adapter(sim) as adapter:
            listed = [m async for m in adapter.fetch_markets(EVERYTHING)]
        ids = [m.market_id for m in listed]
        assert len(ids) == len(set(ids)) and set(ids) == open_ids(sim)
        assert len(ids) > 200
        assert sim.requests.get("gamma_markets_keyset", 0) == keyset_requests
        assert sim.requests.get("gamma_markets", 0) == legacy_requests


@pytest.mark.parametrize("keyset", [True, False])
async def test_one_odd_market_is_refused_alone(keyset: bool) -> None:
    async with Simulator(seed=32, markets=150, events_per_second=0.001) as sim:
        assert isinstance(sim, Simulator)
        odd = next(m for m in sim.markets if not m.closed)
        sim.odd_markets.add(odd.condition_id)
        async with make_adapter(sim, gamma_keyset=keyset) as adapter:
            listed = {m.market_id async for m in adapter.fetch_markets(EVERYTHING)}
            refused = dict(adapter.rejects.counts)
        assert listed == open_ids(sim) - {odd.condition_id}
        assert refused == {"invalid_market_item": 1}
        assert ("gamma_markets_keyset" in sim.requests) is keyset
        assert ("gamma_markets" in sim.requests) is not keyset


async def test_categories_list_events_by_keyset_as_the_legacy_list_does() -> None:
    query = MarketQuery(max_resolution_days=0, categories=("sports",))
    async with Simulator(seed=33, markets=120, events_per_second=0.001) as sim:
        assert isinstance(sim, Simulator)
        async with make_adapter(sim) as adapter:
            by_keyset = {m.market_id: m async for m in adapter.fetch_markets(query)}
        assert sim.requests["gamma_events_keyset"] >= 1 and "gamma_events" not in sim.requests
        async with make_adapter(sim, gamma_keyset=False) as adapter:
            by_offset = {m.market_id: m async for m in adapter.fetch_markets(query)}
        assert sim.requests["gamma_events"] >= 1
    assert by_keyset == by_offset and by_keyset
    sports = {m.condition_id for m in sim.markets if m.category == "Sports"}
    assert sports & set(by_keyset)
    assert all(m.event_id is not None for m in by_keyset.values())
