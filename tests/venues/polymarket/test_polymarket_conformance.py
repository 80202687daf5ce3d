"""The simulator's frames have the keys and JSON value types of the real captures.

This keeps the twin honest (ARCHITECTURE rule 9): the client's tests run
against the simulator, so a simulator that drifted towards the client's own
assumptions would let client bugs through. Frames are read over a real
socket from a running simulator, as a client would see them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.venues.captures import load, shape_errors
from venuefeed.venues.polymarket import Simulator

# Keys the reference documents as present in the live format but missing from a
# (synthetic) capture of that type.
DOCUMENTED_EXTRAS: dict[str, set[str]] = {
    "book": {"hash", "last_trade_price", "tick_size", "min_order_size", "neg_risk"},
    "last_trade_price": {"transaction_hash"},
    "data_trade": {
        "timestamp", "title", "slug", "icon", "eventSlug", "outcome", "outcomeIndex", "name",
        "pseudonym", "bio", "profileImage", "profileImageOptimized",
    },
}  # fmt: skip


async def collect_ws_frames(sim: Simulator) -> dict[str, dict[str, Any]]:
    """One example of each event type the simulator sends, read from its socket."""
    found: dict[str, dict[str, Any]] = {}
    tokens = sim.tokens()
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.urls()["ws"]) as ws:
        await ws.send_str(json.dumps({
            "assets_ids": tokens, "type": "market", "initial_dump": True,
            "custom_feature_enabled": True,
        }))  # fmt: skip
        first = await ws.receive(timeout=5)
        assert first.type is aiohttp.WSMsgType.TEXT
        dump = json.loads(first.data)
        assert isinstance(dump, list) and {d["event_type"] for d in dump} == {"book"}
        assert len(dump) == len(tokens)
        await sim.change_tick_size(tokens[0])
        await sim.resolve(tokens[-1])
        wanted = {"book", "price_change", "last_trade_price", "best_bid_ask", "tick_size_change",
                  "market_resolved"}  # fmt: skip
        async with asyncio.timeout(10):
            while set(found) != wanted:
                msg = await ws.receive()
                data = json.loads(msg.data)
                for item in data if isinstance(data, list) else [data]:
                    found.setdefault(item["event_type"], item)
        await ws.send_str("PING")
        while (msg := await ws.receive(timeout=5)).data != "PONG":
            pass
    return found


async def test_websocket_frames_match_captures() -> None:
    async with Simulator(seed=5, markets=6, events_per_second=400) as sim:
        assert isinstance(sim, Simulator)
        frames = await collect_ws_frames(sim)
    pairs = {
        "book": "nautilus_crate_ws_market_book_msg.json",
        "price_change": "nautilus_crate_ws_market_price_change_msg.json",
        "last_trade_price": "nautilus_crate_ws_market_last_trade_msg.json",
        "best_bid_ask": "nautilus_crate_ws_market_best_bid_ask_msg.json",
        "tick_size_change": "nautilus_it_ws_messages_tick_size_change.json",
        "market_resolved": "nautilus_crate_ws_market_resolved_msg.json",
    }
    errors = []
    for kind, name in pairs.items():
        real = load("polymarket", name)
        errors += shape_errors(real, frames[kind], kind, DOCUMENTED_EXTRAS.get(kind, set()))
    assert errors == []
    # Best level last, as the venue sends it.
    book = frames["book"]
    bids = [float(level["price"]) for level in book["bids"]]
    asks = [float(level["price"]) for level in book["asks"]]
    assert bids == sorted(bids) and asks == sorted(asks, reverse=True)
    # The paired complementary-token change: same size, price 1 - p, opposite side.
    yes, no = frames["price_change"]["price_changes"]
    assert yes["asset_id"] != no["asset_id"] and yes["size"] == no["size"]
    assert {yes["side"], no["side"]} == {"BUY", "SELL"}
    assert round(float(yes["price"]) + float(no["price"]), 6) == 1.0


async def test_rest_documents_match_captures() -> None:
    async with Simulator(seed=6, markets=4, events_per_second=300) as sim:
        assert isinstance(sim, Simulator)
        await asyncio.sleep(0.3)  # some trades
        token = sim.tokens()[0]
        async with aiohttp.ClientSession() as http:

            async def get(path: str, **params: Any) -> Any:
                async with http.get(sim.base_url + path, params=params) as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            book = await get("/book", token_id=token)
            markets = await get("/markets", limit="2")
            events = await get("/events", limit="1")
            trades = await get("/trades", limit="3")
            history = await get("/prices-history", market=token, interval="1d", fidelity="60")
    errors = shape_errors(
        load("polymarket", "nautilus_crate_clob_book_response.json"), book, "book",
        DOCUMENTED_EXTRAS["book"],
    )  # fmt: skip
    errors += shape_errors(
        load("polymarket", "nautilus_crate_gamma_market.json"),
        markets[0],
        "market",
        set(),
        exact=False,
    )
    errors += shape_errors(
        load("polymarket", "nautilus_crate_gamma_event.json")[0],
        events[0],
        "event",
        set(),
        exact=False,
    )
    errors += shape_errors(
        load("polymarket", "nautilus_crate_data_api_trades_response.json")[0], trades[0], "trade",
        DOCUMENTED_EXTRAS["data_trade"],
    )  # fmt: skip
    errors += shape_errors(
        load("polymarket", "nautilus_it_http_responses_price_history.json"),
        history,
        "history",
        set(),
    )
    assert errors == []
    # The fields the client relies on are present, JSON arrays inside strings included.
    market = markets[0]
    needed = {"id", "conditionId", "question", "slug", "description", "endDate", "events",
              "clobTokenIds", "outcomes", "outcomePrices", "active", "closed",
              "orderPriceMinTickSize"}  # fmt: skip
    assert needed <= set(market)
    assert isinstance(market["clobTokenIds"], str) and len(json.loads(market["clobTokenIds"])) == 2
    assert isinstance(json.loads(market["outcomePrices"])[0], str)
