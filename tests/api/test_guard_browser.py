"""CSRF and DNS rebinding with a real browser (Debian chromium) against the real API.

Chromium's ``--host-resolver-rules`` makes ``evil.test`` resolve to 127.0.0.1,
which is what a DNS-rebinding attacker achieves with a short-lived DNS record,
and gives the attacker's page a different site than the API's -- so the
browser sends exactly the headers it would send in the attack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from .apihelp import Stack, StackFactory

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--host-resolver-rules=MAP evil.test 127.0.0.1"]  # fmt: skip
STOP = "/api/v1/ingestion/stop-continuous"


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture
async def running(make_stack: StackFactory) -> Stack:
    stack = await make_stack()
    await stack.service.start_continuous()
    return stack


async def evil_site(target: str) -> web.AppRunner:
    """http://evil.test:PORT/ -- a page that POSTs a form to ``target`` as soon as it loads."""
    page = (
        f'<form id="f" method="POST" action="{target}"><input name="x" value="1"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_a_cross_site_form_cannot_stop_ingestion(browser: Browser, running: Stack) -> None:
    runner = await evil_site(running.api.url + STOP)
    try:
        port = runner.addresses[0][1]
        page = await browser.new_page()
        async with page.expect_response(lambda r: r.url.endswith(STOP)) as answer:
            await page.goto(f"http://evil.test:{port}/")
        response = await answer.value
        assert response.status == 403
        assert running.service.continuous is True
    finally:
        await runner.cleanup()


async def test_a_rebound_name_is_refused(browser: Browser, running: Stack) -> None:
    """The attacker's name now points at 127.0.0.1: same origin, but not our host."""
    page = await browser.new_page()
    response = await page.goto(f"http://evil.test:{running.api.port}/")
    assert response is not None and response.status == 400
    status = await page.evaluate(f"fetch('{STOP}', {{method: 'POST'}}).then(r => r.status)")
    assert status == 400
    assert running.service.continuous is True


async def test_the_dashboard_origin_still_controls_the_service(
    browser: Browser, running: Stack
) -> None:
    page = await browser.new_page()
    await page.goto(running.api.url + "/")
    status = await page.evaluate(f"fetch('{STOP}', {{method: 'POST'}}).then(r => r.status)")
    assert status == 200
    assert running.service.continuous is False
