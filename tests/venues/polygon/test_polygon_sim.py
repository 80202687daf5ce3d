"""The simulator speaks Polygon's wire format: shapes checked against captures and the spec."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.venues.captures import ROOT
from venuefeed.venues.polygon import Simulator

S = 1_000_000_000
T0 = 1_700_000_000 * S
CAPTURES = ROOT / "polygon"
AUTH = {"Authorization": "Bearer test-key"}


def capture(name: str) -> Any:
    return json.loads((CAPTURES / name).read_bytes())


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_conforms(row: dict[str, Any], reference: dict[str, Any], optional: set[str]) -> None:
    """Same keys as the recorded row (give or take ``optional`` ones), same JSON types."""
    assert set(reference) - optional <= set(row) <= set(reference) | optional
    for key in set(row) & set(reference):
        assert json_type(row[key]) == json_type(reference[key]), key


async def get(sim: Simulator, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(sim.base_url + path, params=params) as resp,
    ):
        return resp.status, await resp.json()


async def test_v3_trades_page_conforms_to_capture(sim: Simulator) -> None:
    status, body = await get(
        sim, "/v3/trades/AAPL", **{"timestamp.gte": T0, "timestamp.lt": T0 + 30 * S, "limit": 5}
    )
    assert status == 200
    ref = capture("clientpython_v3_trades_AAPL_limit_2.json")
    assert set(body) == {"results", "status", "request_id", "next_url"}
    assert body["status"] == "OK" and len(body["request_id"]) == len(ref["request_id"])
    assert len(body["results"]) == 5
    trf_optional = {"trf_id", "trf_timestamp", "correction"}
    for row in body["results"]:
        assert_conforms(row, ref["results"][0], trf_optional)
    # default order is newest first, as on the venue
    stamps = [r["sip_timestamp"] for r in body["results"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_v3_quotes_page_conforms_to_capture(sim: Simulator) -> None:
    status, body = await get(
        sim, "/v3/quotes/MSFT", **{"timestamp.gte": T0, "timestamp.lt": T0 + 5 * S, "limit": 3}
    )
    assert status == 200
    ref = capture("clientpython_v3_quotes_AAPL.json")
    assert set(body) == set(ref)
    for row in body["results"]:
        assert_conforms(row, ref["results"][0], set())
        assert row["bid_price"] < row["ask_price"]


async def test_aggregates_conform_to_capture_and_page_by_next_url(sim: Simulator) -> None:
    path = f"/v2/aggs/ticker/AAPL/range/1/hour/{T0 // 10**6}/{(T0 + 10 * 3600 * S) // 10**6}"
    status, body = await get(sim, path, limit=4)
    assert status == 200
    ref = capture("clientpython_v2_aggs_ticker_AAPL_range_1_day.json")
    assert set(body) == set(ref) | {"next_url"}
    for bar in body["results"]:
        assert_conforms(bar, ref["results"][0], set())
    next_url = urlsplit(body["next_url"])
    assert f"{next_url.scheme}://{next_url.netloc}" == sim.base_url
    assert "apikey" not in next_url.query.lower()
    cursor = parse_qs(next_url.query)["cursor"][0]
    assert "limit=4" in base64.urlsafe_b64decode(cursor + "==").decode()
    # the next page starts right after the last bar of this one
    assert next_url.path.split("/")[-2] == str(body["results"][-1]["t"] + 3_600_000)


async def test_history_is_a_function_of_the_seed(sim: Simulator) -> None:
    params = {"timestamp.gte": T0, "timestamp.lt": T0 + 10 * S, "order": "asc", "limit": 1000}
    _, first = await get(sim, "/v3/trades/AAPL", **params)
    twin = Simulator(seed=7, events_per_second=40.0)
    other = Simulator(seed=8, events_per_second=40.0)
    async with twin, other:
        _, again = await get(twin, "/v3/trades/AAPL", **params)
        _, different = await get(other, "/v3/trades/AAPL", **params)
    assert first["results"] == again["results"]
    assert first["results"] != different["results"]
    # a sub-range is the same rows, whatever range was asked before
    _, part = await get(sim, "/v3/trades/AAPL", **{**params, "timestamp.gte": T0 + 3 * S})
    assert part["results"] == [r for r in first["results"] if r["sip_timestamp"] >= T0 + 3 * S]


async def test_empty_results_are_omitted(sim: Simulator) -> None:
    status, body = await get(sim, "/v3/trades/NOPE", **{"timestamp.gte": T0})
    assert status == 200 and "results" not in body and "next_url" not in body


@pytest.mark.parametrize(
    ("headers", "params", "status", "field", "text"),
    [
        ({}, {}, 401, "error", "API Key was not provided"),
        ({"Authorization": "Bearer nope"}, {}, 401, "error", "Unknown API Key"),
        ({}, {"apiKey": "test-key"}, 200, "status", "OK"),
        ({"Authorization": "Bearer basic-key"}, {}, 403, "message", "You are not entitled"),
    ],
)
async def test_auth_errors_in_the_documented_shapes(
    sim: Simulator,
    headers: dict[str, str],
    params: dict[str, str],
    status: int,
    field: str,
    text: str,
) -> None:
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(sim.base_url + "/v3/trades/AAPL", params=params) as resp,
    ):
        body = await resp.json()
    assert resp.status == status
    assert body[field].startswith(text)
    if status == 401:
        assert body["status"] == "ERROR" and "request_id" in body
    if status == 403:
        assert body["status"] == "NOT_AUTHORIZED"


async def test_429_fault(sim: Simulator) -> None:
    sim.faults.http_429_rate = 1.0
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(sim.base_url + "/v1/marketstatus/now") as resp,
    ):
        body = await resp.json()
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    assert body["status"] == "ERROR" and "maximum requests per minute" in body["error"]


async def ws_read(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    msg = await ws.receive(timeout=2)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    frame = json.loads(msg.data)
    assert isinstance(frame, list)
    return frame


async def test_websocket_conversation_and_frames_conform_to_spec(sim: Simulator) -> None:
    spec = capture("massive_spec_ws_stocks_examples.json")
    official = [
        json.loads(line)
        for line in (CAPTURES / "clientpython_ws_mock_frames.jsonl").read_text().splitlines()
    ]
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.urls()["ws"]) as ws:
        assert await ws_read(ws) == official[0]
        await ws.send_str('{"action":"auth","params":"test-key"}')
        assert await ws_read(ws) == official[1]
        await ws.send_str('{"action":"subscribe","params":"T.AAPL,Q.AAPL"}')
        assert await ws_read(ws) == official[2]
        assert (await ws_read(ws))[0]["message"] == "subscribed to: Q.AAPL"
        seen: dict[str, dict[str, Any]] = {}
        while len(seen) < 2:
            for event in await ws_read(ws):
                assert event["sym"] == "AAPL"
                seen[event["ev"]] = event
    assert_conforms(seen["T"], spec["T"], {"trfi", "trft", "c"})
    assert_conforms(seen["Q"], spec["Q"], {"i"})
    trades = [t for t in sim.truth.trades if t["instrument"] == "AAPL"]
    assert trades and all(t["sent_ns"] > 0 for t in trades)


async def test_minute_bar_event_conforms_to_spec(sim: Simulator) -> None:
    from venuefeed.venues.polygon.sim import ws_minute_bar

    spec = capture("massive_spec_ws_stocks_examples.json")["AM"]
    bar = sim.tape.bar("AAPL", 60 * S, T0 // (60 * S) * 60 * S)
    event = json.loads(json.dumps(ws_minute_bar("AAPL", bar, bar["o"]), default=float))
    assert_conforms(event, spec, set())
    assert event["e"] - event["s"] == 60_000


async def test_websocket_refusals(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.urls()["ws"]) as ws:
            await ws_read(ws)
            await ws.send_str('{"action":"auth","params":"wrong"}')
            assert await ws_read(ws) == capture_status("auth_failed")
            assert (await ws.receive(timeout=2)).type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1008
        async with session.ws_connect(sim.urls()["ws"]) as first:
            await ws_read(first)
            await first.send_str('{"action":"auth","params":"test-key"}')
            await ws_read(first)
            async with session.ws_connect(sim.urls()["ws"]) as second:
                await ws_read(second)
                await second.send_str('{"action":"auth","params":"test-key"}')
                frame = await ws_read(second)
                assert frame[0]["status"] == "max_connections"
                assert frame[0]["message"].startswith("Maximum number of websocket connections")
                assert (await second.receive(timeout=2)).type is aiohttp.WSMsgType.CLOSE


def capture_status(status: str) -> list[dict[str, Any]]:
    for line in (CAPTURES / "status_frames.jsonl").read_text().splitlines():
        frame: list[dict[str, Any]] = json.loads(line)
        if frame[0]["status"] == status:
            return frame
    raise KeyError(status)


async def test_forced_disconnect_fault(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.urls()["ws"]) as ws:
        await ws_read(ws)
        await ws.send_str('{"action":"auth","params":"test-key"}')
        await ws_read(ws)
        sim.faults.disconnect_every_seconds = 0.1
        msg = await ws.receive(timeout=2)
        assert msg.type is aiohttp.WSMsgType.CLOSE
    await asyncio.sleep(0)
    assert any(e["kind"] == "ws_cut" for e in sim.truth.events)
