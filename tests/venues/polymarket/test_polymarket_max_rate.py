"""The simulator at full speed (``events_per_second=0``), over real sockets: what it
prints either lands or is accounted as never sent -- nothing disappears in between.

bench_e2e's max-rate phase once committed half the trades the simulator logged, with
no cut and no gap: the simulator's one venue-wide clock advanced 1 ms per event, so
at some 10,000 events a second its timestamps ran minutes ahead of the wall clock and
the client (rightly) refused every frame past its future window as bad data.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from venuefeed.config import IngestionSettings
from venuefeed.models import Trade
from venuefeed.sim import sockets
from venuefeed.venues.polymarket import Simulator, parse

from .helpers import make_adapter

FUTURE_SECONDS = 2.0
"""The client's venue-time window into the future, narrowed from 300 s so a clock that
runs ahead shows within a few thousand events rather than after minutes."""


def _trade_id(t: dict[str, Any]) -> str:
    return parse.trade_id(t["token_id"], t["side"].lower(), t["size"], t["price"],
                          t["transaction_hash"])  # fmt: skip


async def _poll(predicate: Any, limit: float = 60.0) -> None:
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 -- state outside the loop's awaitables
            await asyncio.sleep(0.02)


async def test_at_full_speed_every_printed_trade_arrives_none_refused() -> None:
    async with Simulator(seed=5, markets=60, events_per_second=0) as sim:
        assert isinstance(sim, Simulator)
        tokens = sim.tokens()
        ingestion = IngestionSettings(venue_time_future_seconds=FUTURE_SECONDS)
        async with make_adapter(sim, ingestion=ingestion, audit_interval_seconds=60) as adapter:
            stream = adapter.open_stream()
            live: set[str] = set()

            async def consume() -> None:
                async for event in stream:
                    if type(event) is Trade:
                        live.add(event.trade_id)

            consumer = asyncio.create_task(consume())
            await stream.subscribe(tokens)
            wanted = set(tokens)
            await _poll(
                lambda: sum(len(s.state.assets & wanted) for s in sim.sockets) == len(wanted)
            )
            first = len(sim.truth.trades)  # printed from here on go to the subscribed socket(s)
            await _poll(lambda: len(sim.truth.trades) >= first + 1_500)
            sim.pause()
            expected = {_trade_id(t) for t in sim.truth.trades[first:]}

            def settled() -> bool:
                refused = sum(stream.stats().get("rejects", {}).values())
                drained = all(s.outbox.empty() for s in sim.sockets) and stream.backlog() == 0
                return expected <= live or (refused > 0 and drained)

            await _poll(settled)
            rejects = dict(stream.stats().get("rejects", {}))
            await stream.close()
            await consumer
    assert rejects == {}, f"frames refused: {rejects}"
    assert expected <= live, f"{len(expected - live)} of {len(expected)} printed trades missing"
    assert not [e for e in sim.truth.events if e["kind"] in ("ws_cut", "trade_undelivered")]


async def test_a_client_that_stops_reading_is_cut_and_its_unsent_trades_are_accounted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sockets, "OUTBOX_FRAMES", 300)  # fill the outbox in moments
    async with Simulator(seed=6, markets=20, events_per_second=0) as sim:
        assert isinstance(sim, Simulator)
        tokens = set(sim.tokens())
        received: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as http, http.ws_connect(sim.urls()["ws"]) as ws:
            await ws.send_str(json.dumps({"assets_ids": sorted(tokens), "type": "market"}))
            await _poll(lambda: any(s.state.assets == tokens for s in sim.sockets))
            first = len(sim.truth.trades)
            # Stop reading until the venue gives up on us (the read buffers fill, then the
            # outbox): it must cut the socket, not keep dropping frames on the floor.
            await _poll(lambda: any(e["kind"] == "ws_cut" for e in sim.truth.events))
            sim.pause()
            async for msg in ws:  # what was sent before the cut, then the close
                if msg.type is WSMsgType.TEXT and msg.data.startswith("{"):
                    frame = json.loads(msg.data)
                    if frame.get("event_type") == "last_trade_price":
                        received.append(frame)
            await _poll(lambda: any(e["kind"] == "ws_close" for e in sim.truth.events))
    printed = {t["transaction_hash"] for t in sim.truth.trades}
    since = {t["transaction_hash"] for t in sim.truth.trades[first:]}
    got = {f["transaction_hash"] for f in received}
    unsent = {e["transaction_hash"] for e in sim.truth.events if e["kind"] == "trade_undelivered"}
    (cut,) = [e for e in sim.truth.events if e["kind"] == "ws_cut"]
    (close,) = [e for e in sim.truth.events if e["kind"] == "ws_close"]
    assert cut["reason"] == "slow_consumer"
    assert close["unsent"] > 0 and close["sent"] + close["unsent"] >= close["queued"]
    assert unsent, "the trades the venue never sent must be in the ground truth"
    assert not got & unsent  # a trade is either sent or accounted as unsent, never both
    # Nothing printed since the subscription is unaccounted (and nothing is invented).
    assert since <= got | unsent <= printed
