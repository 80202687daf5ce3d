"""DNS rebinding and cross-site requests against the real API, over real HTTP and WebSocket.

The headers are the ones browsers send (``Origin``, ``Sec-Fetch-Site``); the
browser itself is in ``test_guard_browser.py``.
"""

from __future__ import annotations

import aiohttp
import pytest

from .apihelp import Stack, StackFactory

STOP = "/api/v1/ingestion/stop-continuous"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def cross_site(origin: str = "http://evil.example") -> dict[str, str]:
    """What a modern browser sends with a form POST from a page on ``origin``."""
    return {**FORM, "Origin": origin, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}


async def running(make_stack: StackFactory, **overrides: object) -> Stack:
    stack = await make_stack(**overrides)
    await stack.service.start_continuous()
    return stack


@pytest.mark.parametrize(
    "headers",
    [
        cross_site(),
        {**FORM, "Origin": "http://evil.example"},  # a browser without Sec-Fetch-*
        {**FORM, "Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed page
        {**FORM, "Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:3000"},  # other port
    ],
    ids=["cross-site", "origin-only", "null-origin", "same-site-other-port"],
)
async def test_cross_site_post_is_refused_and_changes_nothing(
    make_stack: StackFactory, headers: dict[str, str]
) -> None:
    stack = await running(make_stack)
    response = await stack.client.post(STOP, headers=headers, content=b"x=1")
    assert response.status_code == 403
    assert "cross-origin request refused" in response.json()["detail"]
    assert stack.service.continuous is True


async def test_same_origin_and_non_browser_posts_pass(make_stack: StackFactory) -> None:
    stack = await running(make_stack)
    origin = stack.api.url
    same = {"Origin": origin, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    assert (await stack.client.post(STOP, headers=same)).status_code == 200
    await stack.service.start_continuous()
    older_browser = {"Origin": origin}  # same origin by Origin alone
    assert (await stack.client.post(STOP, headers=older_browser)).status_code == 200
    await stack.service.start_continuous()
    assert (await stack.client.post(STOP)).status_code == 200  # curl: no browser headers
    assert stack.service.continuous is False


async def test_a_configured_cors_origin_may_post(make_stack: StackFactory) -> None:
    stack = await running(make_stack, **{"api.cors_origins": ["http://grafana.local:3000"]})
    response = await stack.client.post(STOP, headers=cross_site("http://grafana.local:3000"))
    assert response.status_code == 200 and stack.service.continuous is False


async def test_reads_from_another_site_are_left_to_cors(make_stack: StackFactory) -> None:
    stack = await make_stack()
    response = await stack.client.get("/api/status", headers=cross_site())
    assert response.status_code == 200  # served, but without CORS the page cannot read it
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "10.0.0.7", "0.0.0.0"])
async def test_a_foreign_host_header_is_refused(make_stack: StackFactory, host: str) -> None:
    """DNS rebinding: the page's origin is the attacker's name, which the browser sends."""
    stack = await running(make_stack)
    for method, path in (("GET", "/api/v1/config"), ("GET", "/"), ("POST", STOP)):
        response = await stack.client.request(method, path, headers={"Host": host})
        assert response.status_code == 400, (method, path)
        assert "add it to api.allowed_hosts" in response.json()["detail"]
    assert stack.service.continuous is True


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.2", "[::1]", "LOCALHOST."])
async def test_loopback_hosts_are_served(make_stack: StackFactory, host: str) -> None:
    stack = await make_stack()
    port = stack.api.port
    response = await stack.client.get("/api/status", headers={"Host": f"{host}:{port}"})
    assert response.status_code == 200


async def test_allowed_hosts_extend_the_list(make_stack: StackFactory) -> None:
    named = await make_stack(**{"api.allowed_hosts": ["feed.internal"]})
    assert (await named.client.get("/healthz", headers={"Host": "feed.internal"})).is_success
    refused = await named.client.get("/healthz", headers={"Host": "other.internal"})
    assert refused.status_code == 400
    anything = await make_stack(**{"api.allowed_hosts": ["*"]})
    assert (await anything.client.get("/healthz", headers={"Host": "a.b.c"})).is_success


async def test_live_socket_refuses_other_origins_and_foreign_hosts(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        for headers in ({"Origin": "http://evil.example"}, {"Host": "evil.example"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(stack.ws_url, headers=headers)
            assert err.value.status == 403, headers
        assert stack.service.hub.subscribers == 0  # refused before the route ran
        async with http.ws_connect(stack.ws_url, headers={"Origin": stack.api.url}) as ws:
            assert (await ws.receive_json())["kind"] == "hello"
