"""The dashboard's pairs panel in a real browser, fed by a service quoting confirmed pairs."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from tests.service.helpers import settings_for, wait_for
from venuefeed.api.server import ApiServer
from venuefeed.config import PairsSettings
from venuefeed.pairs.store import PairStore
from venuefeed.pairs.suggestions import suggest_from_store
from venuefeed.service import Service

from .conftest import Venues

pytestmark = pytest.mark.browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


async def test_panel_shows_every_confirmed_pair_and_marks_the_cross(
    venues: Venues, chromium: str
) -> None:
    store = PairStore(venues.db)
    for candidate in suggest_from_store(store, PairsSettings()):
        store.decide(candidate.pair_id, "confirmed")
    settings = settings_for(
        {"kalshi": venues.kalshi, "polymarket": venues.polymarket}, venues.db,
        {"pairs.quote_interval_seconds": 0.1, "api.port": 0},
    )  # fmt: skip
    service = Service(settings)
    await service.start()
    server = ApiServer(service, settings.api)
    await server.start()
    try:
        await wait_for(lambda: len(service.pairs.last) == 5, within=30)
        crossed = {p for p, q in service.pairs.last.items() if float(q.best_edge or 0) > 0}
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.goto(server.url + "/")
            rows = page.locator("#pairs tr[data-pair]")
            await expect(rows).to_have_count(5, timeout=10_000)
            marked = page.locator("#pairs tr[data-pair]:has(td.cross)")
            await expect(marked).to_have_count(len(crossed))
            assert {await marked.nth(i).get_attribute("data-pair")
                    for i in range(len(crossed))} == crossed  # fmt: skip
            await browser.close()
    finally:
        await server.stop()
        await service.stop()
