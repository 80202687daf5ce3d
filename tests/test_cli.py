"""CLI verbs that edit or report on the database: whales and quality."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from venuefeed.config import VenueSettings, load_config
from venuefeed.models import DataGap, Trade
from venuefeed.pipeline.whales import whale_store
from venuefeed.report import quality_report
from venuefeed.service import Service
from venuefeed.sinks.sqlite import SqliteStore
from venuefeed.venues.kalshi import Adapter as Kalshi


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", "--db", str(db), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_whales_add_import_disable_list(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    assert cli(db, "whales", "add", "0xAAA111", "--pseudonym", "Big Al").returncode == 0
    file = tmp_path / "whales.yaml"
    file.write_text(
        "whales:\n  - address: '0xBBB222'\n    tier: A\n    cluster: fund-x\n    famous: true\n"
        "  - address: '0xCCC333'\n    win_rate: 0.61\n"
    )
    assert "imported 2 whale(s)" in cli(db, "whales", "import", str(file)).stdout
    assert cli(db, "whales", "disable", "0xccc333").returncode == 0
    assert cli(db, "whales", "disable", "0xnobody").returncode == 1
    listing = cli(db, "whales", "list").stdout
    assert "0xaaa111" in listing and "Big Al" in listing and "0xbbb222" in listing
    store = whale_store(db)
    rows = {w["address"]: w for w in store.all()}
    assert rows["0xbbb222"]["cluster_name"] == "fund-x" and rows["0xbbb222"]["famous"] == 1
    assert rows["0xccc333"]["win_rate"] == "0.61" and rows["0xccc333"]["enabled"] == 0
    assert sorted(store.enabled_addresses()) == ["0xaaa111", "0xbbb222"]


def test_bad_whale_file_is_a_clear_error(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("- tier: A\n")
    result = cli(tmp_path / "w.db", "whales", "import", str(file))
    assert result.returncode == 2 and "entry 1 has no address" in result.stderr


async def test_service_picks_up_a_new_whale_without_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    settings = load_config(
        overrides={
            "storage.sqlite_path": db,
            "venues.polymarket.enabled": False,
            "venues.kalshi.enabled": False,
        },
        environ={},
    )
    service = Service(settings)
    await service.start()
    try:
        assert service.pipeline.whales.addresses == frozenset()
        whale_store(db).upsert("0xDDD444")
        for _ in range(140):  # refreshed every 5 s
            if "0xddd444" in service.pipeline.whales.addresses:
                break
            await asyncio.sleep(0.05)
        assert "0xddd444" in service.pipeline.whales.addresses
    finally:
        await service.stop()


async def test_quality_report(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    now = time.time_ns()
    store = SqliteStore(db)
    await store.start()
    await store.write([
        Trade(venue="kalshi", instrument="K1", ts_venue=now, ts_recv=now, trade_id="1",
              price="0.5", size="1"),
        DataGap(venue="kalshi", instrument="K1", ts_venue=0, ts_recv=now, cause="disconnect",
                start=now - 3_600_000_000_000, end=now - 3_240_000_000_000, healed=True),
        DataGap(venue="kalshi", instrument="K1", ts_venue=0, ts_recv=now, cause="sequence_gap",
                start=now - 60_000_000_000, end=now - 30_000_000_000),
    ])  # fmt: skip
    await store.close()
    out = cli(db, "quality", "--window", "24", "--json").stdout
    rows = {row["venue"]: row for row in map(json.loads, out.splitlines())}
    # Only the open gap (30 s) leaves data missing: the healed window was recovered.
    # 30 s over 24 h for one instrument -> 99.965 % coverage; 1 open, 1 healed.
    kalshi = rows["kalshi"]
    assert (kalshi["instruments"], kalshi["trades"], kalshi["gaps_open"]) == (1, 1, 1)
    assert (kalshi["gaps_healed"], kalshi["coverage_pct"]) == (1, 99.965)
    # An enabled venue without data is listed with nothing claimed, and why.
    assert rows["polymarket"]["coverage_pct"] is None
    assert "no data" in rows["polymarket"]["note"]


async def test_quality_report_says_why_a_venue_has_no_data(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    store = SqliteStore(db)
    await store.start()
    await store.close()
    report = {
        q.venue: q
        for q in quality_report(
            db, expected={"kalshi": Kalshi.why_no_data(VenueSettings(enabled=True))}
        )
    }
    assert report["kalshi"].coverage_pct is None
    assert report["kalshi"].note.startswith("no credentials")
