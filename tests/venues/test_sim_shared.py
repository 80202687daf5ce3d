"""What every simulator does the same way: the shared server side, switches and vocabulary.

Each test runs against all four venues: a switch that meant one thing in one
venue and another elsewhere is exactly what these tests are here to catch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from venuefeed.sim.base import SimulatorBase
from venuefeed.venues.binance import Simulator as BinanceSim
from venuefeed.venues.kalshi import Simulator as KalshiSim
from venuefeed.venues.polygon import Simulator as PolygonSim
from venuefeed.venues.polygon.parse import trade_id as polygon_trade_id
from venuefeed.venues.polymarket import Simulator as PolymarketSim

VENUES = ("polymarket", "kalshi", "binance", "polygon")


def make(venue: str) -> SimulatorBase:
    if venue == "polymarket":
        return PolymarketSim(seed=3, markets=3, events_per_second=200)
    if venue == "kalshi":
        return KalshiSim(seed=3, markets=20, trading_markets=3, events_per_second=200)
    if venue == "binance":
        return BinanceSim(seed=3, events_per_second=100)
    return PolygonSim(seed=3, events_per_second=200)


def ws_url(sim: SimulatorBase) -> str:
    return {
        "polymarket": lambda: sim.urls()["ws"],
        "kalshi": lambda: sim.urls()["ws"],
        "binance": lambda: sim.ws_base_url + "/ws/btcusdt@trade",
        "polygon": lambda: sim.urls()["ws"],
    }[sim.venue]()


@pytest.fixture(params=VENUES)
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[SimulatorBase]:
    simulator = make(request.param)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def rest_trade_ids(
    sim: SimulatorBase, session: aiohttp.ClientSession, since_ns: int
) -> set[str]:
    """The trade ids the venue's REST history serves now, in the truth's terms."""
    if isinstance(sim, PolymarketSim):
        ids = set()
        for market in sim.markets:
            url = f"{sim.base_url}/trades?market={market.condition_id}&limit=10000"
            async with session.get(url) as resp:
                ids |= {row["transactionHash"] for row in await resp.json()}
        return ids
    if isinstance(sim, KalshiSim):
        ids = set()
        for ticker in sim.trading:
            url = f"{sim.urls()['rest']}/markets/trades?ticker={ticker}&limit=1000"
            async with session.get(url) as resp:
                ids |= {t["trade_id"] for t in (await resp.json())["trades"]}
        return ids
    if isinstance(sim, BinanceSim):
        ids = set()
        for symbol in sim.symbols:
            url = f"{sim.base_url}/api/v3/aggTrades?symbol={symbol}&startTime={sim.live_since_ms}"
            async with session.get(url + "&limit=1000") as resp:
                ids |= {str(row["a"]) for row in await resp.json()}
        return ids
    assert isinstance(sim, PolygonSim)
    ids = set()
    for ticker in sim.tickers:
        url = (f"{sim.base_url}/v3/trades/{ticker}?order=asc&limit=50000"
               f"&timestamp.gte={since_ns}&apiKey={sim.api_key}")  # fmt: skip
        async with session.get(url) as resp:
            rows = (await resp.json()).get("results", [])
            ids |= {polygon_trade_id(r["exchange"], r.get("trf_id"), r["id"]) for r in rows}
    return ids


def truth_id(sim: SimulatorBase, trade: dict[str, Any]) -> str:
    if isinstance(sim, PolymarketSim):
        return str(trade["transaction_hash"])
    if isinstance(sim, BinanceSim):
        return str(trade["agg_id"])
    return str(trade["trade_id"])


async def test_trades_while_nobody_is_connected_and_rest_serves_them(sim: SimulatorBase) -> None:
    await until(lambda: len(sim.truth.trades) >= 20)
    assert len(sim.sockets) == 0 and sim.truth.count("ws_open") == 0
    sim.pause()
    since_ns = min(t.get("ts_venue", t["sent_ns"]) for t in sim.truth.trades)
    async with aiohttp.ClientSession() as session:
        served = await rest_trade_ids(sim, session, since_ns)
    printed = {truth_id(sim, t) for t in sim.truth.trades}
    assert printed <= served, f"{len(printed - served)} printed trades not in REST history"
    assert all(t["instrument"] and t["sent_ns"] > 0 for t in sim.truth.trades)


async def test_disconnect_switch_cuts_every_socket_at_once(sim: SimulatorBase) -> None:
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(ws_url(sim))]
        await asyncio.sleep(0.25)  # opened apart: a per-socket timer would cut them apart
        sockets.append(await session.ws_connect(ws_url(sim)))
        await until(lambda: len(sim.sockets) == 2)
        sim.faults.update({"disconnect_every_seconds": 0.3})
        await until(lambda: sim.truth.count("ws_cut") >= 2, within=3)
        sim.faults.update({"disconnect_every_seconds": None})
        for ws in sockets:
            await ws.close()
    cuts = [e for e in sim.truth.events if e["kind"] == "ws_cut"]
    assert len(cuts) >= 2 and {c["reason"] for c in cuts} == {"fault"}
    first_two = sorted(c["ns"] for c in cuts)[:2]
    assert first_two[1] - first_two[0] < 100_000_000  # together, not each on its own timer


async def test_silenced_socket_answers_no_ping(sim: SimulatorBase) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(sim), autoping=False, heartbeat=None) as ws,
    ):
        await until(lambda: len(sim.sockets) == 1)
        await ws.ping(b"before")
        assert await _pong(ws) == b"before"
        async with session.post(sim.base_url + "/__sim/silence") as resp:
            assert (await resp.json()) == {"silenced": 1}
        await ws.ping(b"after")
        assert await _pong(ws, within=0.8) is None  # half-open: the TCP socket stays, no answer
        assert not ws.closed
    assert sim.truth.count("ws_silence") == 1


async def _pong(ws: aiohttp.ClientWebSocketResponse, within: float = 2.0) -> bytes | None:
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            return None
        if msg.type is aiohttp.WSMsgType.PONG:
            return bytes(msg.data)
    return None


async def test_control_plane_sets_switches_and_refuses_mistakes(sim: SimulatorBase) -> None:
    async with aiohttp.ClientSession() as session:
        base = sim.base_url + "/__sim/"
        async with session.post(base + "faults", json={"http_5xx_rate": 1}) as resp:
            assert resp.status == 200
        async with session.get(sim.base_url + _rest_path(sim)) as resp:
            assert resp.status == 503  # the switch acts on the venue's REST...
        async with session.get(base + "state") as resp:
            assert resp.status == 200  # ...never on the control plane
            assert (await resp.json())["faults"]["http_5xx_rate"] == 1
        for bad in ({"no_such_switch": 1}, {"http_429_rate": 2}, {"malformed_rate": "x"}):
            async with session.post(base + "faults", json=bad) as resp:
                assert resp.status == 400, bad
        async with session.post(base + "faults", json={"http_5xx_rate": 0}) as resp:
            assert (await resp.json())["http_429_rate"] == 0  # the refused ones left no trace
    assert sim.truth.count("http_5xx") == 1


def _rest_path(sim: SimulatorBase) -> str:
    return {
        "polymarket": "/markets",
        "kalshi": "/trade-api/v2/markets",
        "binance": "/api/v3/ping",
        "polygon": "/v1/marketstatus/now",
    }[sim.venue]


async def test_binance_history_joins_the_live_tape_without_a_seam() -> None:
    sim = BinanceSim(seed=5, events_per_second=100)
    await sim.start()
    try:
        await until(lambda: len(sim.live_aggs["BTCUSDT"]) >= 5)
        sim.pause()
        start = sim.live_since_ms - 2_000
        url = f"{sim.base_url}/api/v3/aggTrades?symbol=BTCUSDT&startTime={start}&limit=1000"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            rows = await resp.json()
    finally:
        await sim.stop()
    ids = [row["a"] for row in rows]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous across the seam
    times = [row["T"] for row in rows]
    assert times == sorted(times)
    live = [row for row in rows if row["T"] >= sim.live_since_ms]
    assert live == sim.live_aggs["BTCUSDT"][: len(live)] and len(live) >= 5
