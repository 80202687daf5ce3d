"""The simulator's frames and bodies have the shapes of the recorded venue payloads."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from venuefeed.venues.binance import Simulator


def _capture(captures: Path, name: str) -> Any:
    return msgspec.json.decode((captures / "binance" / name).read_bytes())


def _shape(value: Any) -> Any:
    """Keys and JSON types, recursively (lists by their first element)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


async def _frames(sim: Simulator, streams: list[str], want: set[str]) -> dict[str, Any]:
    """First combined frame of each wanted stream."""
    found: dict[str, Any] = {}
    url = f"{sim.ws_base_url}/stream?streams={'/'.join(streams)}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async with asyncio.timeout(10):
            while want - set(found):
                msg = await ws.receive()
                doc = msgspec.json.decode(msg.data)
                if all(v != [] for v in doc["data"].values()):  # a diff may leave a side empty
                    found.setdefault(doc["stream"], doc)
    return found


async def test_stream_frames_match_captures(captures: Path) -> None:
    sim = Simulator(seed=2, kline_push_seconds=0.05)
    await sim.start()
    try:
        frames = await _all_kinds(sim)
    finally:
        await sim.stop()
    _check_frames(frames, captures)


async def _all_kinds(sim: Simulator) -> dict[str, Any]:
    streams = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@kline_1m"]
    streams.append("btcusdt@depth@100ms")
    return await _frames(sim, streams, set(streams))


def _check_frames(frames: dict[str, Any], captures: Path) -> None:
    trade = _capture(captures, "nautilus_it_ws_messages_ws_spot_trade.json")
    # Binance removed the buyer/seller order ids b/a from the trade stream in 2024.
    assert _shape(frames["btcusdt@trade"]) == _shape(
        {**trade, "data": _without(trade["data"], "b", "a")}
    )
    agg = _capture(captures, "nautilus_it_ws_messages_ws_spot_agg_trade.json")
    # "st" is a testnet-only key in that recording.
    assert _shape(frames["btcusdt@aggTrade"]) == _shape(
        {**agg, "data": _without(agg["data"], "st")}
    )
    ticker = _capture(captures, "nautilus_it_streaming_ws_book_ticker_spot_original.json")
    assert _shape(frames["btcusdt@bookTicker"]) == _shape(ticker)
    depth = _capture(captures, "nautilus_it_ws_messages_ws_futures_depth_update.json")
    # The spot diff has the futures keys minus the futures-only T, ps, st and pu.
    assert _shape(frames["btcusdt@depth@100ms"]["data"]) == _shape(
        _without(depth, "T", "ps", "st", "pu")
    )
    kline = _capture(captures, "nautilus_crate_futures_market_data_json_kline_stream_open.json")
    assert _shape(frames["btcusdt@kline_1m"]["data"]) == _shape(kline)


async def test_rest_bodies_match_captures(sim: Simulator, captures: Path) -> None:
    await asyncio.sleep(0.1)  # let a few live trades happen
    async with aiohttp.ClientSession(base_url=sim.base_url) as http:

        async def get(path: str, **params: Any) -> Any:
            async with http.get(path, params=params) as resp:
                assert resp.status == 200
                assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) > 0
                return await resp.json()

        depth = await get("/api/v3/depth", symbol="BTCUSDT", limit=10)
        assert _shape(depth) == _shape(
            _capture(captures, "nautilus_it_http_responses_http_spot_market_depth.json")
        )
        assert len(depth["bids"]) == len(depth["asks"]) == 10
        for name, path, params in [
            ("agg_trades", "/api/v3/aggTrades", {"startTime": 1634944096000}),
            ("klines", "/api/v3/klines", {"interval": "1m", "startTime": 1634943780000}),
            ("trades", "/api/v3/trades", {}),
        ]:
            body = await get(path, symbol="BTCUSDT", limit=5, **params)
            recorded = _capture(
                captures, f"nautilus_it_http_responses_http_spot_market_{name}.json"
            )
            assert _shape(body) == _shape(recorded), name
        assert _shape(await get("/api/v3/time")) == _shape(
            _capture(captures, "nautilus_it_http_responses_http_spot_market_time.json")
        )
        info = await get("/api/v3/exchangeInfo")
        assert {"timezone", "serverTime", "rateLimits", "symbols"} <= set(info)
        assert info["rateLimits"][0] == {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": 6000,
        }
        async with http.get("/api/v3/depth", params={"symbol": "NOPE"}) as resp:
            assert resp.status == 400
            assert await resp.json() == {"code": -1121, "msg": "Invalid symbol."}


async def test_control_messages(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_base_url}/stream") as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}')
            await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":2}')
            await ws.send_str('{"method":"SUBSCRIBE","params":["BTCUSDT@nope"],"id":3}')
            replies = {}
            async with asyncio.timeout(5):
                while len(replies) < 3:
                    doc = msgspec.json.decode((await ws.receive()).data)
                    if "id" in doc:
                        replies[doc["id"]] = doc
            assert replies[1] == {"result": None, "id": 1}
            assert replies[2] == {"result": ["btcusdt@trade"], "id": 2}
            assert replies[3]["code"] == 2
        # More than 5 control messages in a second closes the connection.
        async with session.ws_connect(f"{sim.ws_base_url}/stream") as ws:
            for n in range(7):
                await ws.send_str(f'{{"method":"LIST_SUBSCRIPTIONS","id":{n}}}')
            async with asyncio.timeout(5):
                while (await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                    pass
            assert ws.closed


async def test_history_is_deterministic_across_instances() -> None:
    params = {"symbol": "ETHUSDT", "startTime": 1700000000000, "limit": 50}
    bodies = []
    for _ in range(2):
        sim = Simulator(seed=11)
        await sim.start()
        try:
            async with aiohttp.ClientSession(base_url=sim.base_url) as http:
                async with http.get("/api/v3/aggTrades", params=params) as resp:
                    trades = await resp.json()
                async with http.get("/api/v3/klines", params={**params, "interval": "5m"}) as r:
                    klines = await r.json()
            bodies.append((trades, klines))
        finally:
            await sim.stop()
    assert bodies[0] == bodies[1]
    trades, klines = bodies[0]
    assert [t["a"] for t in trades] == list(range(trades[0]["a"], trades[0]["a"] + 50))
    assert all(a["T"] <= b["T"] for a, b in itertools.pairwise(trades))
    assert trades[0]["T"] >= 1700000000000
    assert [k[0] for k in klines[:2]] == [1700000100000, 1700000400000]
