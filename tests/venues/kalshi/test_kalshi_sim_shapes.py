"""Simulator frames have the shapes of the venue's documented and recorded payloads."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import msgspec

from tests.venues.kalshi.kalshi_support import ANCHOR, CAPTURES
from tests.venues.kalshi.test_kalshi_parse import spec_examples
from venuefeed.venues.kalshi import Simulator
from venuefeed.venues.kalshi.auth import Signer

SPEC = CAPTURES / "spec"


def required(page: str, schema: str) -> set[str]:
    """The ``required:`` list of one OpenAPI schema in a doc page mirror."""
    text = (SPEC / page).read_text()
    start = text.index(f"    {schema}:\n")
    m = re.search(r"\n      required:\n((?:        - .*\n)+)", text[start:])
    assert m is not None
    return {line.strip()[2:] for line in m.group(1).splitlines()}


async def rest(session: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    async with session.get(url, params=params) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_rest_shapes(sim: Simulator) -> None:
    base = sim.urls()["rest"]
    async with aiohttp.ClientSession() as session:
        markets = await rest(session, base + "/markets", limit=5)
        assert set(markets) == {"markets", "cursor"} and markets["cursor"]
        market = markets["markets"][0]
        assert required("api-reference_market_get-markets.md", "Market") <= set(market)
        events = await rest(session, base + "/events", limit=3)
        assert required("api-reference_events_get-events.md", "EventData") <= set(
            events["events"][0]
        )
        series = await rest(session, base + "/series")
        assert required("api-reference_market_get-series.md", "Series") <= set(series["series"][0])
        book = await rest(session, base + f"/markets/{sim.market_tickers(1)[0]}/orderbook")
        assert set(book) == {"orderbook_fp"} and set(book["orderbook_fp"]) == {
            "yes_dollars",
            "no_dollars",
        }
        for side in book["orderbook_fp"].values():
            prices = [float(level[0]) for level in side]
            assert prices == sorted(prices)  # ascending: best bid last
            assert all(
                re.fullmatch(r"\d\.\d{4}", p) and re.fullmatch(r"\d+\.\d{2}", q) for p, q in side
            )
        trades = await rest(session, base + "/markets/trades", ticker=market["ticker"], limit=1000)
        assert trades["cursor"] == ""  # the documented end marker
        if trades["trades"]:
            assert required("api-reference_market_get-trades.md", "Trade") <= set(
                trades["trades"][0]
            )
        async with session.get(base + "/markets", params={"limit": "1001"}) as resp:
            assert resp.status == 400
        async with session.get(base + "/events", params={"limit": "201"}) as resp:
            assert resp.status == 400
        sim.faults.http_429_rate = 1.0
        async with session.get(base + "/markets") as resp:
            assert resp.status == 429 and "Retry-After" not in resp.headers
            assert await resp.json() == {"error": "too many requests"}


async def test_ws_frames_match_documented_examples(keypair: tuple[bytes, bytes]) -> None:
    snap_ex, delta_ex = spec_examples("websockets_orderbook-updates.md")[:2]
    (trade_ex,) = spec_examples("websockets_public-trades.md")
    (ticker_ex,) = spec_examples("websockets_market-ticker.md")
    real_ack = json.loads((CAPTURES / "edgelab_kalshi_samples.jsonl").read_text().splitlines()[0])
    signer = Signer.from_pem("kid", keypair[0])
    seen: dict[str, dict[str, Any]] = {}
    sim = Simulator(seed=7, markets=400, public_key_pem=keypair[1], anchor_ts=ANCHOR,
                    trading_markets=3, events_per_second=500)  # fmt: skip
    async with (
        sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(
            sim.urls()["ws"], headers=signer.headers("GET", "/trade-api/ws/v2")
        ) as ws,
    ):
        await ws.send_str(
            '{"id":1,"cmd":"subscribe","params":{"channels":["orderbook_delta","trade","ticker"],'
            f'"market_tickers":{json.dumps(sim.market_tickers(3))}}}}}'
        )
        await ws.send_str('{"id":2,"cmd":"frobnicate"}')
        while len(seen) < 6:
            msg = await ws.receive(timeout=5)
            frame = msgspec.json.decode(msg.data)
            seen.setdefault(frame["type"], frame)
    assert set(seen["subscribed"]) == set(real_ack) and set(seen["subscribed"]["msg"]) == set(
        real_ack["msg"]
    )
    for kind, example in [("orderbook_snapshot", snap_ex), ("orderbook_delta", delta_ex)]:
        assert set(seen[kind]) == set(example)
        assert set(seen[kind]["msg"]) <= set(example["msg"]) | {"yes_dollars_fp", "no_dollars_fp"}
        assert set(example["msg"]) - {"yes_dollars_fp", "no_dollars_fp"} <= set(seen[kind]["msg"])
    documented_trade = set(trade_ex["msg"]) | {"taker_outcome_side", "taker_book_side"}
    assert set(trade_ex["msg"]) <= set(seen["trade"]["msg"]) <= documented_trade
    assert set(seen["ticker"]["msg"]) == set(ticker_ex["msg"])
    assert seen["error"]["msg"]["code"] == 5 and seen["error"]["id"] == 2


async def test_protocol_pings_carry_heartbeat(keypair: tuple[bytes, bytes]) -> None:
    signer = Signer.from_pem("kid", keypair[0])
    async with Simulator(public_key_pem=keypair[1], ping_interval=0.05) as sim:
        assert isinstance(sim, Simulator)
        async with aiohttp.ClientSession() as session:
            headers = signer.headers("GET", "/trade-api/ws/v2")
            async with session.ws_connect(sim.urls()["ws"], headers=headers, autoping=False) as ws:
                msg = await ws.receive(timeout=2)
    assert msg.type is aiohttp.WSMsgType.PING and msg.data == b"heartbeat"
