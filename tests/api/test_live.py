"""The /ws/live socket: events as they pass the pipeline, filters, stats, shutdown."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import struct
from typing import Any

import aiohttp
import pytest

from venuefeed.models import BookState

from .apihelp import Stack, trade

WAIT = 5.0


async def next_kind(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), WAIT)
        if message["kind"] == kind:
            return message


async def test_events_arrive_as_the_pipeline_accepts_them(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(stack.ws_url) as ws:
        hello = await next_kind(ws, "hello")
        assert hello == {"kind": "hello", "venues": [], "types": [], "stats": False}
        await stack.service.pipeline.process(trade("t1", price="0.61"))
        await stack.service.pipeline.process(trade("t1", price="0.61"))  # duplicate: not again
        await stack.service.pipeline.process(trade("t2", price="0.62"))
        seen: list[dict[str, Any]] = []
        while len(seen) < 2:
            seen += (await next_kind(ws, "events"))["events"]
        assert [(e["type"], e["trade_id"], e["price"]) for e in seen] == [
            ("trade", "t1", "0.61"), ("trade", "t2", "0.62"),
        ]  # fmt: skip


async def test_filter_by_venue_and_type_and_change_it_live(stack: Stack) -> None:
    process = stack.service.pipeline.process
    url = stack.ws_url + "?venues=kalshi&types=trade"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await next_kind(ws, "hello"))["venues"] == ["kalshi"]
        await process(trade("pm-1", venue="polymarket"))
        await process(BookState(venue="kalshi", instrument="KX", ts_venue=0, ts_recv=1,
                                state="live"))  # fmt: skip
        await process(trade("k-1", venue="kalshi", instrument="KX"))
        events = (await next_kind(ws, "events"))["events"]
        assert [e["trade_id"] for e in events] == ["k-1"]

        await ws.send_json({"action": "subscribe", "venues": ["polymarket"], "types": []})
        await asyncio.sleep(0.1)  # the server applies it before the next event
        await process(trade("k-2", venue="kalshi", instrument="KX"))
        await process(trade("pm-2", venue="polymarket"))
        events = (await next_kind(ws, "events"))["events"]
        assert [e["trade_id"] for e in events] == ["pm-2"]


async def test_bad_messages_get_an_error_and_the_stream_goes_on(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(stack.ws_url) as ws:
        await next_kind(ws, "hello")
        await ws.send_str("not json")
        assert "Expecting value" in (await next_kind(ws, "error"))["detail"]
        await ws.send_json({"action": "subscribe", "venues": ["nasdaq"]})
        assert "unknown venues ['nasdaq']" in (await next_kind(ws, "error"))["detail"]
        await ws.send_json({"action": "dance"})
        assert "unknown action" in (await next_kind(ws, "error"))["detail"]
        await stack.service.pipeline.process(trade("after"))
        assert (await next_kind(ws, "events"))["events"][0]["trade_id"] == "after"


async def test_bad_filter_at_connect_closes_with_policy_violation(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(stack.ws_url + "?types=x") as ws:
        error = await next_kind(ws, "error")
        assert "unknown types ['x']" in error["detail"]
        closing = await asyncio.wait_for(ws.receive(), WAIT)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1008


async def test_stats_snapshots_feed_the_dashboard(stack: Stack) -> None:
    await stack.service.pipeline.process(trade("s1"))
    async with aiohttp.ClientSession() as http, http.ws_connect(stack.ws_url + "?stats=1") as ws:
        stats = await next_kind(ws, "stats")
        assert stats["status"]["database_connected"] is True
        assert stats["metrics"]["trades"] == 1
        series = stats["series"]
        assert len(series["ts"]) == len(series["events"]) == len(series["latency_ms"]) == 60
        assert sum(series["events"]) == 1
        await ws.send_json({"action": "stats", "enabled": False})
        await stack.service.pipeline.process(trade("s2"))
        # with stats off, the next message is the event, not another snapshot
        message = await asyncio.wait_for(ws.receive_json(), WAIT)
        while message["kind"] == "stats":  # at most one was already in flight
            message = await asyncio.wait_for(ws.receive_json(), WAIT)
        assert message["kind"] == "events"


async def test_subscribers_are_released_on_disconnect_and_on_shutdown(stack: Stack) -> None:
    hub = stack.service.hub
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(stack.ws_url) as ws:
            await next_kind(ws, "hello")
            assert hub.subscribers == 1
        for _ in range(100):
            if hub.subscribers == 0:
                break
            await asyncio.sleep(0.02)
        assert hub.subscribers == 0
        ws = await http.ws_connect(stack.ws_url)
        await next_kind(ws, "hello")
        await asyncio.wait_for(stack.api.stop(), WAIT)  # does not wait for the client to leave
        closing = await asyncio.wait_for(ws.receive(), WAIT)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert hub.subscribers == 0


async def _client_that_vanishes(port: int, hold: float) -> None:
    """Open /ws/live with stats, read nothing (so the server's sends block), then reset."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=raw)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws/live?stats=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 101")
    await asyncio.sleep(hold)  # events and a stats snapshot pile up behind the full socket
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST: the client is gone mid-send


async def test_clients_that_vanish_mid_send_log_nothing(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone who reaches the API could otherwise write a traceback into the log per connection."""
    caplog.set_level(logging.WARNING)
    stop = asyncio.Event()

    async def flood() -> None:
        n = 0
        while not stop.is_set():
            for _ in range(50):
                n += 1
                await stack.service.pipeline.process(trade(f"f{n}"))
            await asyncio.sleep(0)

    flooding = asyncio.create_task(flood())
    try:
        # 3 s: long enough for the socket to fill and both senders to queue behind it
        await asyncio.gather(*(_client_that_vanishes(stack.api.port or 0, 3.0) for _ in range(10)))
        for _ in range(100):
            if stack.service.hub.subscribers == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await flooding
    assert stack.service.hub.subscribers == 0
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == [], [(r.name, r.getMessage(), r.exc_info and r.exc_info[0]) for r in noisy]
