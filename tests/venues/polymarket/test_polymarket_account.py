"""The account's own orders and fills on Polymarket's user channel (``/ws/user``): the
feed's mapping from bytes, and the adapter's companion stream against the simulator --
what is stored equals the simulator's ground truth, and bad credentials are a counted
state while the market data keeps flowing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from venuefeed.models import AccountFill, AccountOrder, BookSnapshot, Event
from venuefeed.sinks import bus
from venuefeed.sinks.sqlite import SqliteStore, open_reader
from venuefeed.transport import Frame
from venuefeed.venues.base import MarketQuery
from venuefeed.venues.polymarket import Simulator
from venuefeed.venues.polymarket.protocol import UserChannel
from venuefeed.venues.polymarket.user import UserFeed

from .helpers import make_adapter

RECV = 1_787_155_203_000_000_000
KEY = "key-1"
GOOD = {"api_key": "sim-key", "api_secret": "sim-secret", "api_passphrase": "sim-passphrase"}


def _trade(**over: Any) -> dict[str, Any]:
    msg = {"event_type": "trade", "id": "t1", "taker_order_id": "o1", "market": "0xc",
           "asset_id": "A", "side": "BUY", "size": "10", "price": "0.42", "status": "MATCHED",
           "match_time": str(RECV // 10**9), "owner": KEY, "trader_side": "TAKER",
           "maker_orders": [{"order_id": "m1", "owner": "other", "matched_amount": "10",
                             "price": "0.42", "asset_id": "A"}]}  # fmt: skip
    return {**msg, **over}


def _order(**over: Any) -> dict[str, Any]:
    msg = {"event_type": "order", "id": "o1", "market": "0xc", "asset_id": "A", "side": "SELL",
           "price": "0.6", "original_size": "5", "size_matched": "0", "type": "PLACEMENT",
           "timestamp": str(RECV // 10**6), "owner": KEY}  # fmt: skip
    return {**msg, **over}


def _feed(*messages: object) -> tuple[UserFeed, list[Event]]:
    feed = UserFeed({}, owner=KEY)
    frames = [Frame(m if isinstance(m, str) else json.dumps(m), RECV, 0) for m in messages]
    return feed, feed.on_frames(frames).events


def test_the_subscribe_authenticates_first_then_adds_markets_and_hides_the_secret() -> None:
    auth = {"apiKey": "k", "secret": "s3cret", "passphrase": "p"}
    channel = UserChannel("ws://x/ws/user", auth)
    (first,) = channel.subscribe(["0xa"], True)
    assert json.loads(first) == {"markets": ["0xa"], "auth": auth, "type": "user"}
    assert json.loads(channel.subscribe(["0xb"], False)[0]) == {
        "markets": ["0xb"], "operation": "subscribe"}  # fmt: skip
    assert "s3cret" not in repr(channel) and channel.app_ping == "PING"


def test_a_trade_is_one_fill_whatever_its_status_and_failed_ones_are_counted() -> None:
    feed, events = _feed(_trade(), _trade(status="MINED"), _trade(status="CONFIRMED"),
                         _trade(id="t2", status="FAILED"))  # fmt: skip
    (fill,) = events
    assert isinstance(fill, AccountFill)
    assert (fill.fill_id, fill.order_id, fill.side, fill.price, fill.size, fill.is_taker) == (
        "t1:o1", "o1", "buy", "0.42", "10", True)  # fmt: skip
    assert fill.ts_venue == RECV
    assert feed.rejects.counts == {"trade_failed": 1}


def test_a_maker_fill_is_the_accounts_own_maker_order_with_its_side_by_token() -> None:
    makers = [
        {"order_id": "mine-same", "owner": KEY, "matched_amount": "3", "price": "0.42",
         "asset_id": "A"},
        {"order_id": "mine-other", "owner": KEY, "matched_amount": "7", "price": "0.58",
         "asset_id": "B"},
        {"order_id": "theirs", "owner": "x", "matched_amount": "1", "price": "0.42",
         "asset_id": "A"},
    ]  # fmt: skip
    _, events = _feed(_trade(trader_side="MAKER", owner="taker", maker_orders=makers))
    assert [(e.order_id, e.instrument, e.side, e.size, e.is_taker) for e in events] == [
        ("mine-same", "A", "sell", "3", False),  # the other side of a BUY of A
        ("mine-other", "B", "buy", "7", False),  # buying B is what matches a BUY of A
    ]


def test_order_types_map_to_states_and_bad_orders_are_counted_not_raised() -> None:
    feed, events = _feed(
        [
            _order(),
            _order(type="UPDATE", size_matched="2"),
            _order(type="UPDATE", size_matched="5"),
        ],
        _order(type="CANCELLATION", size_matched="2"),
        _order(side="SIDEWAYS"),
        _order(size_matched="6"),
        _order(type="EXPIRED"),
        '{"event_type": "order", "id": 1}',
        "not json",
    )
    assert [(e.status, e.remaining_size, e.filled_size) for e in events] == [
        ("resting", "5", "0"), ("resting", "3", "2"), ("executed", "0", "5"),
        ("canceled", "3", "2"),
    ]  # fmt: skip
    assert all(isinstance(e, AccountOrder) and e.side == "sell" for e in events)
    assert sum(feed.rejects.counts.values()) == 5


def test_a_refused_subscribe_is_a_counted_state_until_the_channel_speaks_again() -> None:
    feed, events = _feed("UNAUTHORIZED")
    assert events == [] and feed.rejects.counts == {"auth_failed": 1}
    assert (feed.state() or "").startswith("auth_failed: check venues.polymarket.credentials")
    feed.on_frames([Frame(json.dumps(_order()), RECV, 0)])
    assert feed.state() is None


async def until(check: Callable[[], bool], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def _discover(adapter: Any) -> list[str]:
    return [
        t
        async for m in adapter.fetch_markets(MarketQuery(max_resolution_days=0, limit=10))
        for t in m.instruments
    ]


async def test_own_orders_and_fills_arrive_complete_and_stored_as_the_simulator_made_them(
    tmp_path: Path,
) -> None:
    sim = Simulator(seed=7, markets=6, events_per_second=400, account_every=3)
    await sim.start()
    sim.pause()
    adapter = make_adapter(sim, credentials=GOOD)
    stream = adapter.open_stream()
    events: list[Event] = []

    async def consume() -> None:
        async for batch in stream.batches():
            events.extend(batch)

    def truth(kind: str) -> list[dict[str, Any]]:
        return [e for e in sim.truth.events if e["kind"] == kind]

    task = asyncio.create_task(consume())
    try:
        tokens = await _discover(adapter)
        await stream.subscribe(tokens)
        await until(lambda: any(e["markets"] == len(tokens) // 2 for e in truth("user_subscribe")))
        sim.resume()
        await until(lambda: len(truth("account_fill")) >= 6)
        sim.pause()
        await until(lambda: sum(isinstance(e, AccountOrder) for e in events)
                    >= len(truth("account_order")))  # fmt: skip
    finally:
        await stream.close()
        await asyncio.wait_for(task, 5)
        await adapter.close()
        await sim.stop()
    fills = [e for e in events if isinstance(e, AccountFill)]
    orders = [e for e in events if isinstance(e, AccountOrder)]
    assert sorted((f.fill_id, f.order_id, f.instrument, f.side, f.price, f.size) for f in fills) \
        == sorted((t["fill_id"], t["order_id"], t["instrument"], t["side"], t["price"], t["size"])
                  for t in truth("account_fill"))  # fmt: skip
    assert sorted((o.order_id, o.instrument, o.status, o.filled_size) for o in orders) == sorted(
        (t["order_id"], t["instrument"], t["status"], t["filled"]) for t in truth("account_order")
    )
    assert {bus.topic_for(e) for e in [*fills, *orders]} == {"account_activity"}
    store = SqliteStore(tmp_path / "v.db")
    await store.start()
    try:
        await store.write([*fills, *orders, *fills, *orders])  # a replay is one row each
    finally:
        await store.close()
    reader = open_reader(tmp_path / "v.db")
    stored_fills = reader.execute("SELECT fill_id, size FROM account_fills").fetchall()
    assert sorted(map(tuple, stored_fills)) == sorted(
        (t["fill_id"], t["size"]) for t in truth("account_fill"))  # fmt: skip
    stored_orders = reader.execute("SELECT order_id, status FROM account_orders").fetchall()
    assert sorted(map(tuple, stored_orders)) == sorted(
        (t["order_id"], t["status"]) for t in truth("account_order"))  # fmt: skip


async def test_wrong_credentials_are_a_counted_auth_state_while_market_data_flows() -> None:
    sim = Simulator(seed=8, markets=3, events_per_second=50, account_every=1)
    await sim.start()
    adapter = make_adapter(sim, credentials={**GOOD, "api_secret": "wrong"})
    stream = adapter.open_stream()
    events: list[Event] = []

    async def consume() -> None:
        async for batch in stream.batches():
            events.extend(batch)

    task = asyncio.create_task(consume())
    try:
        await stream.subscribe(await _discover(adapter))

        def companion_state() -> str:
            return str(stream.stats()["companions"][0]["state"])

        await until(lambda: adapter.rejects.counts.get("auth_failed", 0) >= 2)
        await until(lambda: companion_state().startswith("auth_failed"))
        await until(lambda: any(isinstance(e, BookSnapshot) for e in events))
        assert not task.done()  # the stream is alive: nothing crashed
    finally:
        await stream.close()
        await asyncio.wait_for(task, 5)
        await adapter.close()
        await sim.stop()
    assert sim.truth.count("ws_auth_failed") >= 2  # refused, reconnected, refused again
    assert not any(isinstance(e, AccountFill | AccountOrder) for e in events)


def test_without_all_three_credentials_there_is_no_user_channel() -> None:
    sim = Simulator(seed=9, markets=1)
    partial = make_adapter(sim, credentials={"api_key": "k", "api_secret": "s"})
    assert partial.open_stream().companions == ()
