"""The key's own fills and orders (``fill``, ``user_orders``) as ``AccountFill`` /
``AccountOrder``: every one the simulator made, stored by a real store, with a bus topic."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.venues.kalshi.kalshi_support import ANCHOR, kalshi_settings, until
from venuefeed.models import AccountFill, AccountOrder, Event
from venuefeed.sinks import bus
from venuefeed.sinks.sqlite import SqliteStore, open_reader
from venuefeed.transport import Frame
from venuefeed.venues.kalshi import Adapter, Simulator
from venuefeed.venues.kalshi.feed import KalshiFeed

RECV = 1_787_155_203_000_000_000


def test_a_fill_of_a_no_order_is_a_sell_on_the_yes_book_and_bad_sides_are_refused() -> None:
    feed = KalshiFeed({"trades"}, account=True)
    msg = {"trade_id": "t1", "order_id": "o1", "market_ticker": "KX-1", "side": "no",
           "action": "buy", "yes_price_dollars": "0.3500", "count_fp": "4.00",
           "is_taker": False, "ts": RECV // 10**9}  # fmt: skip
    bad = {**msg, "side": "maybe"}
    out = feed.on_frames([Frame(json.dumps({"type": "fill", "sid": 2, "msg": m}), RECV, 0)
                          for m in (msg, bad)])  # fmt: skip
    (fill,) = out.events
    assert isinstance(fill, AccountFill)
    assert (fill.side, fill.price, fill.size, fill.is_taker) == ("sell", "0.35", "4", False)
    assert feed.rejects.counts == {"invalid_fields": 1}


async def test_own_fills_and_orders_arrive_complete_and_are_stored(
    keypair: tuple[bytes, bytes], tmp_path: Path
) -> None:
    sim = Simulator(seed=13, markets=100, public_key_pem=keypair[1], events_per_second=1000,
                    anchor_ts=ANCHOR, trading_markets=3, account_every=3)  # fmt: skip
    sim.pause()
    await sim.start()
    cfg = kalshi_settings(sim.urls()["rest"], sim.urls()["ws"], keypair[0])
    adapter = Adapter(cfg.venues["kalshi"], cfg)
    stream = adapter.open_stream(frozenset({"trades"}))
    events: list[Event] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)  # noqa: PERF401

    def own() -> list[dict[str, object]]:
        return [e for e in sim.truth.events if e["kind"] == "account_fill"]

    task = asyncio.create_task(consume())
    try:
        await stream.subscribe(sim.market_tickers(3))
        await until(lambda: sum(len(k.state.subs) for k in sim.sockets) >= 3)
        sim.resume()
        await until(lambda: len(own()) >= 5)
        sim.pause()
        await until(lambda: sum(isinstance(e, AccountOrder) for e in events) >= len(own()))
    finally:
        await stream.close()
        await asyncio.wait_for(task, 5)
        await adapter.close()
        await sim.stop()
    fills = [e for e in events if isinstance(e, AccountFill)]
    orders = [e for e in events if isinstance(e, AccountOrder)]
    assert sorted(f.fill_id for f in fills) == sorted(
        f"{t['trade_id']}:{t['order_id']}" for t in own()
    )
    assert {(o.order_id, o.status, o.remaining_size) for o in orders} == {
        (str(t["order_id"]), "executed", "0") for t in own()
    }
    assert {bus.topic_for(f) for f in fills} | {bus.topic_for(o) for o in orders} == {
        "account_activity"
    }
    store = SqliteStore(tmp_path / "v.db")
    await store.start()
    try:
        await store.write([*fills, *orders, *fills])  # a replay is one row each
    finally:
        await store.close()
    reader = open_reader(tmp_path / "v.db")
    assert reader.execute("SELECT count(*) FROM account_fills").fetchone()[0] == len(fills)
    assert reader.execute("SELECT count(*) FROM account_orders").fetchone()[0] == len(orders)
