"""The service with Polymarket credentials configured: the user channel runs beside the
market channel, and the stored own orders and fills are the simulator's ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from venuefeed.service import Service
from venuefeed.sinks.sqlite import open_reader
from venuefeed.venues.polymarket import Simulator as PolymarketSim

from .helpers import settings_for, wait_for


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    return [tuple(r) for r in open_reader(db).execute(sql).fetchall()]


async def test_own_orders_and_fills_are_stored_as_the_venue_made_them(tmp_path: Path) -> None:
    pm = PolymarketSim(seed=11, markets=4, events_per_second=200, account_every=3)
    await pm.start()
    pm.pause()  # no trade before the user channel follows every market
    key, secret, passphrase = pm.credentials
    db = tmp_path / "v.db"
    service = Service(settings_for({"polymarket": pm}, db, {
        "discovery.max_resolution_days": 0,
        "venues.polymarket.credentials.api_key": key,
        "venues.polymarket.credentials.api_secret": secret,
        "venues.polymarket.credentials.api_passphrase": passphrase,
    }))  # fmt: skip

    def truth(kind: str) -> list[dict[str, Any]]:
        return [e for e in pm.truth.events if e["kind"] == kind]

    try:
        await service.start()
        runner = service.runners["polymarket"]
        await wait_for(lambda: bool(runner.markets) and any(
            e["markets"] == len(runner.markets) for e in truth("user_subscribe")))  # fmt: skip
        pm.resume()
        await wait_for(lambda: len(truth("account_fill")) >= 5)
        pm.pause()
        fills_sql = "SELECT fill_id, order_id, instrument, side, price, size FROM account_fills"
        orders_sql = "SELECT order_id, instrument, status, filled_size FROM account_orders"
        want_fills = sorted(
            (t["fill_id"], t["order_id"], t["instrument"], t["side"], t["price"], t["size"])
            for t in truth("account_fill")
        )
        want_orders = sorted(
            (t["order_id"], t["instrument"], t["status"], t["filled"])
            for t in truth("account_order")
        )
        await wait_for(lambda: sorted(_rows(db, orders_sql)) == want_orders, within=15)
        assert sorted(_rows(db, fills_sql)) == want_fills
    finally:
        await service.stop()
        await pm.stop()
