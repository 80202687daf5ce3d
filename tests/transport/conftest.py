"""Local venues for the transport tests: real aiohttp servers on 127.0.0.1, port 0.

:class:`HttpVenue` answers each path from a script of canned replies and
records when every request arrived. :class:`WsVenue` records what each
connection received (frames, subscriptions, pings, pongs) and can drop,
freeze (TCP open, nothing read or sent) or ping from the server side.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``predicate()`` holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


# -- HTTP ---------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    """dict/list -> JSON; bytes/str sent as is."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    """Close the TCP connection without answering (a connection error for the client)."""


@dataclass
class Seen:
    at: float
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


class HttpVenue:
    Reply = Reply

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    def script(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` with ``replies`` in order; the last one repeats."""
        self.scripts[path] = list(replies)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await _serve(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                time.monotonic(),
                request.method,
                request.path,
                list(request.query.items()),
                dict(request.headers),
                await request.read(),
            )
        )
        script = self.scripts.get(request.path)
        if not script:
            return web.json_response({"error": "no such route"}, status=404)
        reply = script.pop(0) if len(script) > 1 else script[0]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if isinstance(reply.body, dict | list):
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        return web.Response(body=body, status=reply.status, headers=reply.headers)


@pytest.fixture
async def http_venue() -> Any:
    venue = HttpVenue()
    await venue.start()
    yield venue
    await venue.stop()


@pytest.fixture
async def second_http_venue() -> Any:
    """Another service on the same machine (its own port)."""
    venue = HttpVenue()
    await venue.start()
    yield venue
    await venue.stop()


# -- WebSocket ----------------------------------------------------------------


@dataclass(eq=False)
class ServerConn:
    index: int
    ws: web.WebSocketResponse
    headers: dict[str, str]
    frames: list[str | bytes] = field(default_factory=list)
    subscribe_msgs: list[dict[str, Any]] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float = 0.0

    @property
    def subs(self) -> list[str]:
        """Currently subscribed, from the subscribe/unsubscribe messages received."""
        out: list[str] = []
        for msg in self.subscribe_msgs:
            if msg["op"] == "subscribe":
                out.extend(s for s in msg["args"] if s not in out)
            else:
                out = [s for s in out if s not in msg["args"]]
        return out


class WsVenue:
    """Speaks the :class:`EchoProtocol` wire format: JSON subscribe ops, text PING/PONG."""

    def __init__(self) -> None:
        self.conns: list[ServerConn] = []
        self.port = 0
        self.freeze_after_subscribe: set[int] = set()
        """Connection indices that go silent after their first subscribe (half-open)."""
        self.reject_handshakes = 0
        """Answer this many upgrade requests with HTTP 503 first."""
        self.handshakes = 0
        self.on_subscribed: Callable[[ServerConn], Awaitable[None]] | None = None
        """Run (as a task) once a connection has subscribed."""
        self._halt = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def open_conns(self) -> list[ServerConn]:
        return [c for c in self.conns if not c.closed.is_set()]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        self._runner, self.port = await _serve(app)

    async def stop(self) -> None:
        self._halt.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.conns:
            if not conn.ws.closed:
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        if self.reject_handshakes > 0:
            self.reject_handshakes -= 1
            return web.json_response({"error": "overloaded"}, status=503)
        ws = web.WebSocketResponse(autoping=False, max_msg_size=0)
        await ws.prepare(request)
        conn = ServerConn(len(self.conns), ws, dict(request.headers))
        self.conns.append(conn)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.PING:
                    conn.pings.append(bytes(msg.data))
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.PONG:
                    conn.pongs.append(bytes(msg.data))
                elif msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    conn.frames.append(msg.data)
                    if await self._on_frame(conn, msg.data):
                        await self._halt.wait()  # frozen: TCP stays open, nothing moves
                        break
        finally:
            conn.closed_at = time.monotonic()
            conn.closed.set()
        return ws

    async def _on_frame(self, conn: ServerConn, data: str | bytes) -> bool:
        """Handle one client frame; True when the connection should now freeze."""
        if data == "PING":
            await conn.ws.send_str("PONG")
            return False
        if not isinstance(data, str) or not data.startswith("{"):
            return False
        msg = json.loads(data)
        if msg.get("op") in ("subscribe", "unsubscribe"):
            conn.subscribe_msgs.append(msg)
            await conn.ws.send_str(json.dumps({"ack": msg["op"], "args": msg["args"]}))
            if not conn.subscribed.is_set():
                conn.subscribed.set()
                if conn.index in self.freeze_after_subscribe:
                    return True
                if self.on_subscribed is not None:
                    task = asyncio.create_task(self.on_subscribed(conn))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        return False


@dataclass
class EchoProtocol:
    """The venue side of :class:`WsVenue`, as a venue's ``stream.py`` would write it."""

    endpoint: str
    max_subscriptions: int | None = None
    app_ping: str | None = None
    app_ping_interval: float = 10.0
    opens: int = 0

    def url(self) -> str:
        return self.endpoint

    def handshake_headers(self) -> dict[str, str]:
        return {"X-Open": str(self.opens)}

    def on_open(self) -> Sequence[str | bytes]:
        self.opens += 1
        return [json.dumps({"op": "auth", "n": self.opens})]

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        return [json.dumps({"op": "subscribe", "initial": initial, "args": list(subs)})]

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        return [json.dumps({"op": "unsubscribe", "args": list(subs)})]

    def is_heartbeat_reply(self, data: bytes | str) -> bool:
        return data == "PONG"


@pytest.fixture
async def ws_venue() -> Any:
    venue = WsVenue()
    await venue.start()
    yield venue
    await venue.stop()


@pytest.fixture
def echo_protocol(ws_venue: WsVenue) -> EchoProtocol:
    return EchoProtocol(ws_venue.url)


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[None]]:
    return eventually
