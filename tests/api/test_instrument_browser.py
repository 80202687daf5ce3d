"""The instrument page in a real browser (Debian chromium + Playwright), from the live table.

The service runs against the Polymarket simulator over real sockets, with
the API in the same process. The test clicks an instrument in the live
events table and checks what a user sees on its page: the ladder equal to
the stream's own book, the depth chart drawn, trades arriving, and a
connection cut showing up in the gap timeline -- then saves a screenshot
(to the test's temp dir, or where ``INSTRUMENT_SCREENSHOT`` says:
docs/instrument.png is the README's).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from venuefeed.api.server import ApiServer, open_listener
from venuefeed.service import Service
from venuefeed.venues.polymarket import Simulator as PolymarketSim

from ..service.helpers import settings_for, wait_for

pytestmark = pytest.mark.browser

SCREENSHOT_ENV = "INSTRUMENT_SCREENSHOT"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


async def test_instrument_page_from_the_live_table(browser: Browser, tmp_path: Path) -> None:
    sim = PolymarketSim.for_demo(seed=21, events_per_second=40)
    await sim.start()
    settings = settings_for({"polymarket": sim}, tmp_path / "v.db", {
        "api.port": 0, "discovery.max_markets": 6,
        "venues.polymarket.websocket": {"backoff_base_seconds": 0.1, "backoff_cap_seconds": 0.5},
    })  # fmt: skip
    service = Service(settings)
    api = ApiServer(service, settings.api, sock=open_listener(settings.api))
    try:
        await service.start()
        await api.start()
        runner = service.runners["polymarket"]
        await wait_for(lambda: runner.events > 30, 20)

        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        await page.goto(api.url + "/")
        link = page.locator("#events tr[data-type='trade'] a.instrument").first
        await expect(link).to_be_visible(timeout=10_000)
        await link.click()
        await page.wait_for_url("**/instrument?venue=polymarket&id=*")
        instrument = page.url.split("id=", 1)[1]

        await expect(page.locator("#feed")).to_have_text("live", timeout=5_000)
        await expect(page.locator("#sync")).to_have_text("book live", timeout=5_000)
        title = await page.locator("#title").text_content()
        assert title and title != instrument  # the market's title, not the raw token id
        # The ladder shows the stream's own book: best bid below best ask, ten levels at most.
        rows = page.locator("#ladder tbody tr")
        await expect(rows.first).to_be_visible()
        assert 1 <= await rows.count() <= 10
        book = runner.book(instrument)
        assert book is not None
        best_bid = await page.locator("#ladder tbody tr td.bid").first.text_content()
        best_ask = await page.locator("#ladder tbody tr td.ask").first.text_content()
        live_bid, live_ask = book.best_bid(), book.best_ask()
        assert live_bid is not None and live_ask is not None
        assert float(best_bid or 0) < float(best_ask or 0)
        # the page polls once a second: it matches the live book within a couple of polls
        for _ in range(30):
            bid = book.best_bid()
            shown = await page.locator("#ladder tbody tr td.bid").first.text_content()
            if bid is not None and shown == bid.price:
                break
            await page.wait_for_timeout(100)
        else:
            raise AssertionError(f"ladder shows {shown}, the book's best bid is {book.best_bid()}")
        # The depth chart is drawn (some pixels are not transparent).
        painted = await page.evaluate("""() => {
            const c = document.getElementById('depth');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;
        }""")
        assert painted > 500
        # Trades of this instrument arrive (the simulator trades every market).
        await expect(page.locator("#trades tr td.num").first).to_be_visible(timeout=20_000)
        # The restart window opened at start is on the timeline, healed.
        await expect(page.locator("#gaps li[data-healed='true']").first).to_contain_text(
            "restart", timeout=15_000
        )
        # A cut connection: a disconnect gap for this instrument appears, then heals.
        await sim.sockets.cut_all()
        disconnect = page.locator("#gaps li", has_text="disconnect")
        await expect(disconnect.first).to_be_visible(timeout=10_000)
        await expect(page.locator("#gaps li[data-healed='true']", has_text="disconnect").first
                     ).to_be_visible(timeout=20_000)  # fmt: skip
        await expect(page.locator("#sync")).to_have_text("book live", timeout=10_000)
        await page.wait_for_timeout(1_200)
        shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "instrument.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shot), full_page=True)
        assert (await asyncio.to_thread(shot.read_bytes))[:8] == b"\x89PNG\r\n\x1a\n"

        # An unknown instrument says so; a dead service shows as disconnected.
        other = await browser.new_page()
        await other.goto(api.url + "/instrument?venue=polymarket&id=nope")
        await expect(other.locator("#feed")).to_have_text("unknown instrument", timeout=5_000)
        await api.stop()
        await expect(page.locator("#feed")).to_have_text("disconnected", timeout=5_000)
        await expect(page.locator("#banner")).to_be_visible()
    finally:
        await api.stop()
        await service.stop()
        await sim.stop()
