"""WsSession against a real local WebSocket venue: drops, silence, pings, sharding, queues."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import WSMsgType
from prometheus_client import REGISTRY

from venuefeed.transport import (
    Frame,
    Reconnected,
    WsNotConnectedError,
    WsPolicy,
    WsSession,
    WsState,
)


def fast(**overrides: Any) -> WsPolicy:
    """Production behaviour with test-sized timeouts."""
    values: dict[str, Any] = {
        "idle_timeout": 2.0,
        "backoff_base": 0.02,
        "backoff_cap": 0.2,
        "stable_after": 5.0,
        "connect_timeout": 2.0,
        "protocol_ping_interval": None,
        "close_timeout": 0.2,
    }
    values.update(overrides)
    return WsPolicy(**values)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def next_of(items: Any, kind: type) -> Any:
    async with asyncio.timeout(5.0):
        while True:
            item = await anext(items)
            if isinstance(item, kind):
                return item


def sub(initial: bool, *args: str) -> dict[str, Any]:
    return {"op": "subscribe", "initial": initial, "args": list(args)}


async def test_frames_are_stamped_and_binary_passes_through(ws_venue, echo_protocol) -> None:
    states: list[WsState] = []

    async def on_state(state: WsState) -> None:
        states.append(state)

    async def push(conn) -> None:
        await conn.ws.send_str('{"px":"0.5"}')
        await conn.ws.send_bytes(b'{"px":"0.6"}')
        await conn.ws.send_bytes(b"\x00\xff\xfe")

    ws_venue.on_subscribed = push
    before = time.time_ns()
    session = WsSession("t-basic", echo_protocol, fast(), on_state=on_state)
    await session.subscribe(["a", "b", "a"])
    async with session:
        items = aiter(session)
        got = [await anext(items) for _ in range(4)]
        assert session.state is WsState.CONNECTED
    after = time.time_ns()

    assert [f.data for f in got] == [
        json.dumps({"ack": "subscribe", "args": ["a", "b"]}),
        '{"px":"0.5"}',
        b'{"px":"0.6"}',
        b"\x00\xff\xfe",
    ]
    stamps = [f.ts_recv for f in got]
    assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= after
    assert {f.conn for f in got} == {0}
    conn = ws_venue.conns[0]
    assert conn.frames[:2] == [json.dumps({"op": "auth", "n": 1}), json.dumps(sub(True, "a", "b"))]
    assert conn.headers["X-Open"] == "0"
    assert states == [WsState.CONNECTING, WsState.CONNECTED, WsState.STOPPED]
    assert session.state is WsState.STOPPED
    labels = {"venue": "t-basic"}
    assert metric("websocket_messages_received_total", type="text", **labels) == 2
    assert metric("websocket_messages_received_total", type="binary", **labels) == 2
    assert metric("websocket_connection_state", state="stopped", **labels) == 1
    assert metric("websocket_connection_state", state="connected", **labels) == 0


async def test_server_drop_reconnects_and_replays_subscriptions(
    ws_venue, echo_protocol, wait_for
) -> None:
    """Production backoff (1 s base): drop -> connected -> resubscribed well under 5 s."""
    states: list[WsState] = []

    async def on_state(state: WsState) -> None:
        states.append(state)

    policy = WsPolicy(close_timeout=0.2)
    session = WsSession("t-drop", echo_protocol, policy, on_state=on_state)
    await session.subscribe(["a", "b"])
    async with session:
        items = aiter(session)
        await wait_for(lambda: bool(ws_venue.conns) and ws_venue.conns[0].subscribed.is_set())
        conn0 = ws_venue.conns[0]
        await session.subscribe(["c", "b"])
        await session.unsubscribe(["a", "zz"])
        await wait_for(lambda: len(conn0.subscribe_msgs) == 3)
        assert conn0.subscribe_msgs == [
            sub(True, "a", "b"),
            sub(False, "c"),
            {"op": "unsubscribe", "args": ["a"]},
        ]

        dropped_at = time.time_ns()
        await conn0.ws.close(code=1001)
        back = await next_of(items, Reconnected)
        seconds = (back.ts_recv - dropped_at) / 1e9
        print(f"\nreconnect (server close -> connected -> resubscribed): {seconds * 1e3:.1f} ms")
        assert seconds < 5.0

        await wait_for(lambda: len(ws_venue.conns) == 2 and ws_venue.conns[1].subscribed.is_set())
        conn1 = ws_venue.conns[1]
        assert conn1.subscribe_msgs == [sub(True, "b", "c")]
        assert conn1.frames[0] == json.dumps({"op": "auth", "n": 2})
        assert conn1.headers["X-Open"] == "1"
        # Data may be missing since the last data frame of the old connection.
        assert back.conn == 0 and back.down_since <= dropped_at <= back.ts_recv
        assert session.reconnects == 1
        assert session.subscriptions == {"b", "c"}
    assert metric("websocket_reconnections_total", venue="t-drop") == 1
    assert states == [
        WsState.CONNECTING,
        WsState.CONNECTED,
        WsState.RECONNECTING,
        WsState.CONNECTED,
        WsState.STOPPED,
    ]


async def test_backoff_grows_on_unstable_drops_and_resets_after_a_stable_one(
    ws_venue, echo_protocol, wait_for
) -> None:
    async def drop(conn) -> None:
        if conn.index == 3:
            await asyncio.sleep(0.3)  # outlives stable_after
        if conn.index < 4:
            await conn.ws.close()

    ws_venue.on_subscribed = drop
    policy = fast(backoff_base=0.05, backoff_cap=10.0, jitter=False, stable_after=0.2)
    session = WsSession("t-backoff", echo_protocol, policy)
    await session.subscribe(["a"])
    async with session:
        await wait_for(lambda: len(ws_venue.conns) == 5)
    conns = ws_venue.conns
    gaps = [conns[i + 1].opened_at - conns[i].closed_at for i in range(4)]
    # 0.05, 0.1, 0.2 while unstable; then back to 0.05 (not 0.4) after the stable one.
    for gap, delay in zip(gaps, (0.05, 0.1, 0.2, 0.05), strict=True):
        assert delay * 0.9 <= gap < delay + 0.1, gaps


async def test_silent_server_with_open_tcp_is_replaced_after_idle_timeout(
    ws_venue, echo_protocol
) -> None:
    ws_venue.freeze_after_subscribe = {0}
    session = WsSession("t-silent", echo_protocol, fast(idle_timeout=0.3))
    await session.subscribe(["a"])
    async with session:
        items = aiter(session)
        last = await anext(items)  # the ack; then the server stops reading and writing
        started = time.monotonic()
        back = await next_of(items, Reconnected)
        waited = time.monotonic() - started
    assert waited >= 0.3 * 0.95
    assert back.down_since == last.ts_recv  # data may be missing since the last frame
    assert not ws_venue.conns[0].closed.is_set()  # the server never closed it: half-open
    assert ws_venue.conns[1].subscribe_msgs == [sub(True, "a")]


async def test_server_pings_are_answered_with_payload_and_keep_it_alive(
    ws_venue, echo_protocol, wait_for
) -> None:
    async def heartbeat(conn) -> None:
        if conn.index == 0:
            for _ in range(12):  # 0.6 s of pings and no data, idle timeout is 0.25 s
                await conn.ws.ping(b"heartbeat")
                await asyncio.sleep(0.05)

    ws_venue.on_subscribed = heartbeat
    session = WsSession("t-srvping", echo_protocol, fast(idle_timeout=0.25))
    await session.subscribe(["a"])
    async with session:
        await wait_for(lambda: bool(ws_venue.conns) and len(ws_venue.conns[0].pongs) == 12)
        assert set(ws_venue.conns[0].pongs) == {b"heartbeat"}
        assert len(ws_venue.conns) == 1 and session.reconnects == 0
        await wait_for(lambda: session.reconnects == 1)  # pings stopped: idle -> replaced


async def test_protocol_pings_are_sent_and_a_missing_pong_drops_the_peer(
    ws_venue, echo_protocol, wait_for
) -> None:
    ws_venue.freeze_after_subscribe = {0}
    policy = fast(idle_timeout=30.0, protocol_ping_interval=0.1)
    session = WsSession("t-ping", echo_protocol, policy)
    await session.subscribe(["a"])
    async with session:
        # Detected by the unanswered ping long before the 30 s idle timeout.
        await wait_for(lambda: session.reconnects == 1, within=2.0)
        await wait_for(lambda: len(ws_venue.conns[1].pings) >= 3)
        assert session.reconnects == 1  # the answering peer is kept
    assert set(ws_venue.conns[1].pings) == {b""}


async def test_app_ping_only_after_subscribe_and_pong_is_not_data(ws_venue, echo_protocol) -> None:
    echo_protocol.app_ping = "PING"
    echo_protocol.app_ping_interval = 0.05

    async def later(conn) -> None:
        await asyncio.sleep(0.4)  # longer than the idle timeout: PONGs keep it alive
        await conn.ws.send_str('{"px":"1"}')

    ws_venue.on_subscribed = later
    policy = fast(idle_timeout=0.3, protocol_ping_interval=0.05)
    session = WsSession("t-appping", echo_protocol, policy)
    await session.subscribe(["a"])
    async with session:
        items = aiter(session)
        got = [await anext(items), await anext(items)]
    conn = ws_venue.conns[0]
    assert conn.frames[1] == json.dumps(sub(True, "a"))
    assert len(conn.frames) >= 7 and set(conn.frames[2:]) == {"PING"}
    assert got[1].data == '{"px":"1"}'
    assert session.frames == 2  # PONG replies never reach the consumer
    assert conn.pings == []  # no protocol pings when the venue has its own
    assert len(ws_venue.conns) == 1


async def test_malformed_binary_and_oversized_frames(ws_venue, echo_protocol) -> None:
    async def push(conn) -> None:
        if conn.index == 0:
            await conn.ws.send_str("not json {")
            await conn.ws.send_bytes(b"\x00\x01binary")
            await conn.ws.send_str("x" * 2000)
        elif conn.index == 1:
            await conn.ws.send_frame(b"\xff\xfe", WSMsgType.TEXT)  # invalid UTF-8 text
        else:
            await conn.ws.send_str("after")

    ws_venue.on_subscribed = push
    session = WsSession("t-bad", echo_protocol, fast(max_frame_bytes=1024))
    await session.subscribe(["a"])
    data: list[str | bytes] = []
    reconnects = 0
    async with session:
        async with asyncio.timeout(5):
            async for item in session:
                if isinstance(item, Reconnected):
                    reconnects += 1
                elif not str(item.data).startswith('{"ack"'):
                    data.append(item.data)
                    if item.data == "after":
                        break
    assert data == ["not json {", b"\x00\x01binary", "after"]
    assert session.rejected == 2 and reconnects == 2
    labels = {"venue": "t-bad"}
    assert metric("venue_frames_rejected_total", reason="frame_too_large", **labels) == 1
    assert metric("venue_frames_rejected_total", reason="protocol_error", **labels) == 1


async def test_sharding_respects_max_subscriptions(ws_venue, echo_protocol, wait_for) -> None:
    echo_protocol.max_subscriptions = 2
    session = WsSession("t-shard", echo_protocol, fast())
    await session.subscribe(["a", "b", "c", "d", "e"])
    async with session:
        items = aiter(session)
        acks = [await anext(items) for _ in range(3)]
        assert sorted(c.subs for c in ws_venue.conns) == [["a", "b"], ["c", "d"], ["e"]]
        for ack in acks:
            assert json.loads(ack.data)["args"] == session.shard_subscriptions(ack.conn)
        assert session.shard_states == [WsState.CONNECTED] * 3
        assert session.state is WsState.CONNECTED

        def server_conn(first_sub: str) -> Any:
            return next(c for c in ws_venue.conns if c.subs and c.subs[0] == first_sub)

        await session.subscribe(["f", "g"])  # f fills shard 2, g opens shard 3
        await wait_for(lambda: len(ws_venue.conns) == 4 and ws_venue.conns[3].subscribed.is_set())
        await wait_for(lambda: len(server_conn("e").subscribe_msgs) == 2)
        assert server_conn("e").subscribe_msgs == [sub(True, "e"), sub(False, "f")]
        assert ws_venue.conns[3].subscribe_msgs == [sub(True, "g")]

        await session.unsubscribe(["g"])  # an empty shard is closed, not kept idle
        await wait_for(lambda: ws_venue.conns[3].closed.is_set())
        await wait_for(lambda: session.shard_states[3] is WsState.DISCONNECTED)
        assert session.state is WsState.CONNECTED

        await session.send('{"op":"snapshot"}', conn=1)
        target = server_conn(session.shard_subscriptions(1)[0])
        await wait_for(lambda: target.frames[-1] == '{"op":"snapshot"}')
        try:
            await session.send("x", conn=3)
        except WsNotConnectedError:
            pass
        else:
            raise AssertionError("send to a closed shard must raise")


async def test_a_peer_that_went_silent_then_closed_lost_everything_since_its_last_frame(
    ws_venue, echo_protocol, wait_for
) -> None:
    """Silence (half-open) followed by a close: the window starts at the last data frame.

    Taking the close time instead hides what the peer held back while silent.
    """

    async def silent_then_close(conn) -> None:
        await conn.ws.send_str(json.dumps({"n": 1}))
        if conn.index == 0:
            await asyncio.sleep(0.4)
            await conn.ws.close(code=1001)

    ws_venue.on_subscribed = silent_then_close
    session = WsSession("t-silent", echo_protocol, fast())
    await session.subscribe(["a"])
    async with session:
        items = aiter(session)
        last = None
        while True:
            item = await next_of(items, object)
            if isinstance(item, Reconnected):
                break
            last = item
        assert last is not None and json.loads(last.data) == {"n": 1}
        assert item.down_since == last.ts_recv
        assert item.ts_recv - item.down_since >= 400_000_000


async def test_complete_until_holds_a_window_until_the_consumer_takes_it(
    ws_venue, echo_protocol, wait_for
) -> None:
    """While a shard is down, and while its marker waits in the queue, completeness stays
    at the start of the window: a watermark taken then never skips the missing data."""

    async def drop_first(conn) -> None:
        await conn.ws.send_str(json.dumps({"n": conn.index}))
        if conn.index == 0:
            await conn.ws.close(code=1001)

    ws_venue.on_subscribed = drop_first
    session = WsSession("t-complete", echo_protocol, fast())
    await session.subscribe(["a"])
    async with session:
        await wait_for(lambda: session.reconnects == 1)
        frames_before = session.frames
        now = time.time_ns()
        held = session.complete_until(now)
        assert held < now  # the marker is still queued
        items = aiter(session)
        marker = await next_of(items, Reconnected)
        assert held == marker.down_since
        assert session.complete_until(now) == now  # the consumer owns the window now
        assert frames_before >= 1


async def test_drop_oldest_counts_what_it_drops(ws_venue, echo_protocol, wait_for) -> None:
    async def burst(conn) -> None:
        if conn.index == 0:
            for n in range(10):
                await conn.ws.send_str(json.dumps({"n": n}))

    ws_venue.on_subscribed = burst
    policy = fast(queue_size=3, queue_policy="drop_oldest")
    session = WsSession("t-dropq", echo_protocol, policy)
    await session.subscribe(["a"])
    async with session:
        # Nothing is read until the first connection was replaced: frames pile up and
        # the oldest are dropped. (How many of the ten arrive before the close is a race.)
        await wait_for(lambda: session.reconnects == 1)
        items = aiter(session)
        kept: list[Frame] = []
        while True:
            item = await anext(items)
            if isinstance(item, Reconnected):
                back = item
                break
            kept.append(item)
    # Not silent: the connection was replaced and the window since the oldest dropped
    # frame comes back as a reconnect, for the consumer to heal.
    assert session.dropped >= 1
    assert metric("websocket_queue_dropped_total", venue="t-dropq") == session.dropped
    numbers = [n for f in kept if (n := json.loads(f.data).get("n")) is not None]
    assert numbers == sorted(numbers) and len(kept) <= 3  # the newest survive, in order
    assert all(back.down_since < f.ts_recv for f in kept)


async def test_block_policy_delivers_everything_in_order(ws_venue, echo_protocol) -> None:
    async def burst(conn) -> None:
        for n in range(50):
            await conn.ws.send_str(json.dumps({"n": n}))

    ws_venue.on_subscribed = burst
    session = WsSession("t-block", echo_protocol, fast(queue_size=2, queue_policy="block"))
    await session.subscribe(["a"])
    async with session:
        items = aiter(session)
        await anext(items)  # ack
        got = []
        for _ in range(50):
            got.append((await anext(items)).data)
            await asyncio.sleep(0)
    assert got == [json.dumps({"n": n}) for n in range(50)]
    assert session.dropped == 0


async def test_rejected_handshakes_back_off_then_connect(ws_venue, echo_protocol) -> None:
    ws_venue.reject_handshakes = 2
    states: list[WsState] = []

    async def on_state(state: WsState) -> None:
        states.append(state)

    session = WsSession("t-handshake", echo_protocol, fast(), on_state=on_state)
    await session.subscribe(["a"])
    async with session:
        first = await anext(aiter(session))
    assert isinstance(first, Frame)  # a first connection is not a reconnect
    assert ws_venue.handshakes == 3
    assert states == [
        WsState.CONNECTING,
        WsState.RECONNECTING,
        WsState.CONNECTED,
        WsState.STOPPED,
    ]


async def test_stop_is_clean_and_ends_iteration(ws_venue, echo_protocol, wait_for) -> None:
    echo_protocol.app_ping = "PING"
    echo_protocol.app_ping_interval = 0.05
    session = WsSession("t-stop", echo_protocol, fast())
    await session.subscribe(["a", "b"])
    await session.start()
    received: list[Any] = []

    async def consume() -> None:
        async for item in session:
            received.append(item)  # noqa: PERF401 -- the test watches it grow

    consumer = asyncio.create_task(consume())
    await wait_for(lambda: len(received) == 1)
    await session.stop()
    await asyncio.wait_for(consumer, 2.0)  # iteration ended by stop
    await wait_for(lambda: ws_venue.conns[0].closed.is_set())
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert [t.get_name() for t in others if t.get_name().startswith("ws-")] == []
    assert session.state is WsState.STOPPED
    assert metric("market_data_active_streams", venue="t-stop") == 0


async def test_a_failing_venue_frame_builder_does_not_kill_the_shard(
    ws_venue, echo_protocol, wait_for
) -> None:
    calls = {"n": 0}
    real_subscribe = echo_protocol.subscribe

    def flaky_subscribe(subs: Any, initial: bool) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("bug in a venue's subscribe()")
        return real_subscribe(subs, initial)

    echo_protocol.subscribe = flaky_subscribe
    session = WsSession("t-flaky", echo_protocol, fast())
    await session.subscribe(["a"])
    async with session:
        await wait_for(lambda: len(ws_venue.conns) == 2 and ws_venue.conns[1].subscribed.is_set())
        assert session.state is WsState.CONNECTED
    assert ws_venue.conns[1].subscribe_msgs == [sub(True, "a")]
