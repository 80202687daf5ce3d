"""The API with a real venue behind it: the Polygon simulator, streamed by the service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from venuefeed.venues.kalshi import Simulator as KalshiSimulator
from venuefeed.venues.polygon import Simulator

from .apihelp import Stack, StackFactory, polygon_overrides, trade

WAIT = 10.0


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(int(WAIT / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=11, events_per_second=40.0)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def live(make_stack: StackFactory, sim: Simulator) -> Stack:
    stack = await make_stack(continuous=True, **polygon_overrides(sim.urls(), sim.api_key))

    async def ready() -> bool:
        return (await stack.client.get("/readyz")).status_code == 200

    await until(ready, "the polygon stream to connect")
    return stack


async def polygon_view(stack: Stack) -> dict[str, object]:
    venues = (await stack.client.get("/api/status")).json()["venues"]
    view: dict[str, object] = next(v for v in venues if v["venue"] == "polygon")
    return view


async def test_connected_venue_flows_into_status_events_and_metrics(live: Stack) -> None:
    client = live.client
    assert (await client.get("/readyz")).json() == {"ready": True}

    async def has_trades() -> bool:
        events = (await client.get("/api/events?type=trade&limit=5")).json()["events"]
        return len(events) == 5

    await until(has_trades, "simulated trades")
    events = (await client.get("/api/events?type=trade&limit=5")).json()["events"]
    assert {e["venue"] for e in events} == {"polygon"}
    assert {e["instrument"] for e in events} <= {"AAPL", "MSFT"}
    assert [e["ts_recv"] for e in events] == sorted((e["ts_recv"] for e in events), reverse=True)

    view = await polygon_view(live)
    assert view["state"] == "connected" and view["subscribed"] == 2
    assert isinstance(view["last_event_age_s"], float) and view["last_event_age_s"] < WAIT
    metrics = (await client.get("/api/metrics")).json()
    assert metrics["trades"] >= 5 and metrics["events_per_s"] >= 0
    assert metrics["instruments_subscribed"] == 2 and metrics["coverage_pct"] is not None
    exposition = (await client.get("/metrics")).text
    assert 'market_data_active_streams{venue="polygon"} 1.0' in exposition
    assert "websocket_messages_received_total{type=" in exposition
    health = (await client.get("/api/v1/ingestion/health")).json()
    assert health["venues"] == {"polygon": "connected"} and health["healthy"] is True


async def test_live_socket_carries_simulator_trades(live: Stack) -> None:
    url = live.ws_url + "?venues=polygon&types=trade"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        while True:
            message = await asyncio.wait_for(ws.receive_json(), WAIT)
            if message["kind"] == "events":
                break
    trade = message["events"][0]
    assert trade["type"] == "trade" and trade["venue"] == "polygon"
    assert trade["price"] and trade["size"] and trade["trade_id"]


async def test_killed_simulator_shows_disconnected_and_not_ready(
    live: Stack, sim: Simulator
) -> None:
    await sim.stop()

    async def down() -> bool:
        return (await polygon_view(live))["state"] != "connected"

    await until(down, "polygon to show as disconnected")
    assert (await live.client.get("/readyz")).status_code == 503
    health = (await live.client.get("/api/v1/ingestion/health")).json()
    assert health["venues"]["polygon"] != "connected"


async def test_background_ingest_job_on_a_venue(live: Stack) -> None:
    client = live.client
    response = await client.post("/api/v1/ingestion/ingest-data?venues=polygon&background=true")
    assert response.status_code == 202
    url = response.json()["status_url"]

    async def finished() -> bool:
        return (await client.get(url)).json()["state"] not in ("pending", "running")

    await until(finished, "the ingest job")
    job = (await client.get(url)).json()
    assert job["state"] == "succeeded", job
    assert job["progress"] == {"done": 1, "total": 1, "current": None}
    assert job["result"]["polygon"]["trades"] > 0


async def test_connection_check_and_venue_list(live: Stack) -> None:
    check = (await live.client.post("/api/v1/ingestion/test-connection/polygon")).json()
    assert check["venue"] == "polygon" and check["ok"] is True and check["reachable"] is True
    venues = {v["venue"]: v for v in (await live.client.get("/api/v1/ingestion/venues")).json()}
    assert venues["polygon"]["enabled"] is True and venues["polygon"]["configured"] is True
    assert venues["kalshi"]["state"] == "disabled"
    assert "stream" in venues["polygon"]["capabilities"]


async def test_discovery_through_the_api_labels_events_with_market_titles(
    make_stack: StackFactory,
) -> None:
    kalshi = KalshiSimulator(seed=3, markets=20)
    await kalshi.start()
    try:
        stack = await make_stack(**{
            "venues.kalshi.enabled": True, "venues.kalshi.urls": kalshi.urls(),
            "discovery.max_resolution_days": 0,
        })  # fmt: skip
        response = await stack.client.post("/api/v1/ingestion/discover-markets?venues=kalshi")
        assert response.status_code == 200
        found = response.json()["result"]["kalshi"]["markets"]
        markets = stack.service.runners["kalshi"].markets
        assert found == len(markets) > 0
        market = next(iter(markets.values()))
        outcome = market.outcomes[0]

        url = stack.ws_url + "?venues=kalshi"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.receive_json()  # hello
            await stack.service.pipeline.process(
                trade("k1", venue="kalshi", instrument=outcome.token_id)
            )
            live_event = (await asyncio.wait_for(ws.receive_json(), WAIT))["events"][0]
        rest_event = (await stack.client.get("/api/events?type=trade")).json()["events"][0]
        for event in (live_event, rest_event):
            assert (event["title"], event["outcome"]) == (market.title, outcome.name)
    finally:
        await kalshi.stop()
