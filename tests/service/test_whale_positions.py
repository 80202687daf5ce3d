"""whale_position events (seed 001): watched wallets' positions, opened to closed, end to end."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from venuefeed.models import WhalePosition
from venuefeed.service import Service
from venuefeed.sinks.bus import encode, topic_for
from venuefeed.sinks.sqlite import open_reader
from venuefeed.venues.polymarket import Simulator as PolymarketSim
from venuefeed.venues.polymarket.sim import DEFAULT_WHALES
from venuefeed.venues.polymarket.wallets import Held, position_changes
from venuefeed.venues.rejects import Rejects

from .helpers import settings_for, wait_for


def test_changes_name_what_happened_to_each_token() -> None:
    before = {"a": Held("10"), "b": Held("5"), "c": Held("7", title="C?")}
    after = {"a": Held("12.5"), "b": Held("1"), "d": Held("3")}
    got = position_changes("0xw", before, after, 1, "polymarket")
    assert [(e.instrument, e.action, e.previous, e.size, e.change) for e in got] == [
        ("a", "increased", "10", "12.5", "2.5"),
        ("b", "reduced", "5", "1", "-4"),
        ("c", "closed", "7", "0", "-7"),
        ("d", "opened", "0", "3", "3"),
    ]
    assert got[2].title == "C?"  # a closed position still says what it was
    assert position_changes("0xw", after, after, 2, "polymarket") == []


def test_a_garbled_page_is_counted_not_raised() -> None:
    from venuefeed.venues.polymarket.wallets import parse_positions

    rejects = Rejects("polymarket")
    assert parse_positions(b"<html>busy</html>", rejects) is None
    rows = b'[{"asset":"a","size":"NaN"},{"asset":"b","size":2.5,"avgPrice":0.4}]'
    assert parse_positions(rows, rejects) == {"b": Held("2.5", "0.4")}
    assert rejects.total == 2


async def test_watched_wallets_positions_follow_the_venue(tmp_path: Path) -> None:
    db = tmp_path / "vf.db"
    async with PolymarketSim(seed=8, markets=30, events_per_second=60, whale_rate=0.6) as sim:
        assert isinstance(sim, PolymarketSim)
        sim.pause()  # the positions held before the service looks are its baseline
        for _ in range(40):
            sim.step()
        settings = settings_for({"polymarket": sim}, db, {
            "whales.poll_interval_seconds": 0.2,
            "venues.polymarket.options": {"whale_wallets": list(DEFAULT_WHALES)},
        })  # fmt: skip
        service = Service(settings)
        await service.start()
        try:
            await wait_for(lambda: sim.requests.get("positions", 0) >= 2, within=20)
            sim.resume()
            await asyncio.sleep(2.0)
            sim.pause()
            seen = sim.requests["positions"]
            await wait_for(lambda: sim.requests.get("positions", 0) >= seen + 4, within=20)
            live = [e for e in service.hub.recent(2000, types=("whale_position",))]
        finally:
            await service.stop()
    rows = (
        open_reader(db)
        .execute(
            "SELECT trader_address, instrument, action, previous, size, ts_venue "
            "FROM whale_positions ORDER BY ts_venue"
        )
        .fetchall()
    )
    assert rows, "no position change recorded"
    assert len(live) == len(rows)
    actions = {r[2] for r in rows}
    assert {"opened", "increased"} <= actions
    # Replaying the events from the baseline gives the venue's holdings now, token by token.
    for wallet in DEFAULT_WHALES:
        final: dict[str, Decimal] = {}
        for who, token, action, previous, size, _ts in rows:
            if who != wallet:
                continue
            assert Decimal(previous) == final.get(token, Decimal(previous))
            final[token] = Decimal(size)
            assert (action == "closed") == (Decimal(size) == 0)
        truth = {t: Decimal(str(p["size"])) for t, p in sim.positions(wallet).items()}
        changed = {t: s for t, s in final.items() if s != 0}
        assert changed == {t: s for t, s in truth.items() if t in final}
    # On the bus they share seed 001's whale_activity topic, with its event_type.
    event = WhalePosition(
        venue="polymarket", instrument="t", ts_venue=1, ts_recv=1, trader_address="0xw",
        action="opened", size="3", previous="0", change="3",
    )  # fmt: skip
    assert topic_for(event) == "whale_activity"
    assert b'"event_type":"whale_position"' in encode(event)
