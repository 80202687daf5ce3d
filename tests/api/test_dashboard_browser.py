"""The dashboard in a real browser (Debian chromium + Playwright) against real processes.

A ``venuefeed sim polygon`` process is the venue and a ``venuefeed run``
process the service (ingestion, SQLite, API, dashboard), configured through
the environment like a user would. The test checks what a user sees: live
events within seconds, moving counters, a killed venue shown as disconnected,
a dead service shown as a dropped socket -- and saves a screenshot (to the
test's temp dir, or where ``DASHBOARD_SCREENSHOT`` says: docs/dashboard.png is
the README's).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

pytestmark = pytest.mark.browser

SCREENSHOT_ENV = "DASHBOARD_SCREENSHOT"
"""Where to save the screenshot (``docs/dashboard.png`` refreshes the README's)."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Proc:
    """A ``venuefeed`` subprocess whose stdout we read for the line announcing its address."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output: list[str] = []

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "venuefeed.cli", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})},
        )  # fmt: skip
        return cls(proc)

    async def wait_for(self, pattern: str, within: float = 20.0) -> re.Match[str]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(within):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError("process ended:\n" + "".join(self.output))
                self.output.append(line)
                match = re.search(pattern, line)
                if match:
                    return match

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


async def counter(page: Page, selector: str) -> int:
    text = (await page.locator(selector).text_content() or "").replace(",", "")
    return int(text) if text.isdigit() else -1


async def test_dashboard_live_counters_and_disconnects(browser: Browser, tmp_path: Path) -> None:
    sim = await Proc.start("sim", "polygon", "--port", "0", "--events-per-second", "30")
    service: Proc | None = None
    try:
        rest = (await sim.wait_for(r"rest: (\S+)")).group(1)
        ws = (await sim.wait_for(r"ws: (\S+)")).group(1)
        service = await Proc.start("run", env={
            "VENUEFEED_STORAGE__SQLITE_PATH": str(tmp_path / "browser.db"),
            "VENUEFEED_API__PORT": "0",
            "VENUEFEED_VENUES__POLYMARKET__ENABLED": "false",
            "VENUEFEED_VENUES__KALSHI__ENABLED": "false",
            "VENUEFEED_VENUES__POLYGON__ENABLED": "true",
            "VENUEFEED_VENUES__POLYGON__URLS": json.dumps({"rest": rest, "ws": ws}),
            "VENUEFEED_VENUES__POLYGON__CREDENTIALS__API_KEY": "test-key",
            "VENUEFEED_VENUES__POLYGON__INSTRUMENTS": '["AAPL", "MSFT"]',
            "VENUEFEED_VENUES__POLYGON__RATE_LIMIT": '{"requests_per_second": 100, "burst": 100}',
            "VENUEFEED_VENUES__POLYGON__WEBSOCKET":
                '{"backoff_base_seconds": 0.2, "backoff_cap_seconds": 1}',
        })  # fmt: skip
        url = (await service.wait_for(r"dashboard on (http://\S+/)")).group(1)

        page = await browser.new_page(viewport={"width": 1280, "height": 1100})
        await page.goto(url)
        await expect(page.locator("#socket")).to_have_text("live", timeout=10_000)
        row = page.locator('#venues tr[data-venue="polygon"] .state')
        await expect(row).to_have_text("connected", timeout=10_000)
        await expect(page.locator("#health")).to_have_text("healthy")
        await expect(page.locator("#problems-panel")).to_be_hidden()

        # live events: rows appear, and keep appearing, within 5 s of the simulator sending
        events = page.locator("#events tr")
        await expect(events.first).to_be_visible(timeout=5_000)
        first_id = await events.first.get_attribute("title")
        await expect(events).not_to_have_count(0)
        await expect(events.first).not_to_have_attribute("title", first_id or "", timeout=5_000)
        assert await events.first.get_attribute("data-venue") == "polygon"
        # whale trades (notional above the threshold) are highlighted
        await expect(page.locator("#events tr.whale").first).to_contain_text("WHALE", timeout=5_000)

        # counters move
        before = await counter(page, "#m-events")
        assert before >= 0
        for _ in range(50):  # the number is shown with separators: compare values, not text
            if await counter(page, "#m-events") > before:
                break
            await page.wait_for_timeout(100)
        assert await counter(page, "#m-events") > before
        await page.wait_for_timeout(1_500)  # let the chart gather a few seconds
        shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "dashboard.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shot), full_page=True)
        assert (await asyncio.to_thread(shot.read_bytes))[:8] == b"\x89PNG\r\n\x1a\n"

        # the venue dies: its row says so, the page itself stays live
        await sim.kill()
        await expect(row).to_have_text("disconnected", timeout=10_000)
        await expect(page.locator("#socket")).to_have_text("live")

        # the service dies: the socket badge and banner say so
        await service.kill()
        await expect(page.locator("#socket")).to_have_text("disconnected", timeout=5_000)
        await expect(page.locator("#banner")).to_be_visible()
    finally:
        await sim.kill()
        if service is not None:
            await service.kill()


async def test_dashboard_shows_why_the_service_is_unhealthy(
    browser: Browser, tmp_path: Path
) -> None:
    """A real failure (Kalshi's key file is missing) is listed on the page, as in /api/status."""
    absent = tmp_path / "absent.pem"
    service = await Proc.start("run", env={
        "VENUEFEED_STORAGE__SQLITE_PATH": str(tmp_path / "unhealthy.db"),
        "VENUEFEED_API__PORT": "0",
        "VENUEFEED_VENUES__POLYMARKET__ENABLED": "false",
        "VENUEFEED_VENUES__KALSHI__CREDENTIALS__API_KEY_ID": "key-1",
        "VENUEFEED_VENUES__KALSHI__CREDENTIALS__PRIVATE_KEY_PATH": str(absent),
    })  # fmt: skip
    try:
        url = (await service.wait_for(r"dashboard on (http://\S+/)")).group(1)
        page = await browser.new_page()
        await page.goto(url)
        await expect(page.locator("#health")).to_have_text("unhealthy (1)", timeout=10_000)
        problems = page.locator("#problems li")
        await expect(problems).to_have_count(1)
        await expect(problems.first).to_contain_text(
            f"kalshi: misconfigured: CredentialsError: cannot read kalshi private key file {absent}"
        )
        await expect(page.locator("#problems-panel")).to_be_visible()
    finally:
        await service.kill()
