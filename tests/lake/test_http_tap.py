"""REST capture through the one HTTP client: every attempt, masked URLs, scoped to its block."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from aiohttp import web

from venuefeed.transport.http import HttpClient, HttpPolicy, HttpRetryExhausted, tapping_http


class Taps:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, tuple[object, ...]]] = []

    def __call__(self, venue: str) -> Taps.Tap:
        return Taps.Tap(self, venue)

    class Tap:
        def __init__(self, owner: Taps, venue: str) -> None:
            self.owner, self.venue = owner, venue

        def on_http(
            self, method: str, url: str, request_body: bytes | None, ts_sent: int,
            ts_recv: int, status: int, headers: Mapping[str, str], body: bytes, error: str,
        ) -> None:  # fmt: skip
            assert ts_sent <= ts_recv
            self.owner.seen.append((self.venue, method, (url, request_body, status, body, error)))


@pytest.fixture
async def venue() -> AsyncIterator[str]:
    calls = {"n": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.Response(status=503, text="busy")
        return web.json_response({"ok": True})

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_get("/flaky", flaky)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


POLICY = HttpPolicy(attempts=2, backoff_base=0.01, backoff_max=0.02, timeout=2)


async def test_every_attempt_is_seen_with_masked_credentials(venue: str) -> None:
    taps = Taps()
    with tapping_http(taps):
        client = HttpClient("kalshi", venue, POLICY)
    outside = HttpClient("kalshi", venue, POLICY)
    async with client, outside:
        await client.get("/flaky", {"apiKey": "s3cret", "limit": 5})
        await client.post("/echo", {"a": 1})
        await outside.get("/flaky")  # built outside the block: not tapped
    assert taps.seen == [
        ("kalshi", "GET", (f"{venue}/flaky?apiKey=********&limit=5", None, 503, b"busy", "")),
        ("kalshi", "GET", (f"{venue}/flaky?apiKey=********&limit=5", None, 200,
                           b'{"ok": true}', "")),
        ("kalshi", "POST", (f"{venue}/echo", b'{"a":1}', 200, b'{"a":1}', "")),
    ]  # fmt: skip


async def test_a_request_that_got_no_answer_is_seen_with_why() -> None:
    taps = Taps()
    with tapping_http(taps):
        client = HttpClient("binance", "http://127.0.0.1:9", POLICY)  # nothing listens
    async with client:
        with pytest.raises(HttpRetryExhausted):
            await client.get("/depth")
    assert len(taps.seen) == 3
    assert all(s[2][2] == 0 and s[2][4].startswith("connection") for s in taps.seen)
