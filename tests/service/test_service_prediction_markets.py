"""The service end to end against the Polymarket and Kalshi simulators (issue 6)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from venuefeed.service import Service
from venuefeed.sim.base import Faults
from venuefeed.sinks.sqlite import open_reader
from venuefeed.venues.kalshi import Simulator as KalshiSim
from venuefeed.venues.polymarket import Simulator as PolymarketSim
from venuefeed.venues.polymarket import parse as pm_parse

from .helpers import settings_for, wait_for

FAST_POLYMARKET = {
    "venues.polymarket.options": {
        "audit_interval_seconds": 0.2, "audit_batch": 50, "resync_retry_interval_seconds": 0.2,
    },
    "venues.polymarket.websocket": {"backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.5},
}  # fmt: skip


def polymarket_id(t: dict[str, str]) -> str:
    """The trade id the client derives for a ground-truth trade."""
    return pm_parse.trade_id(
        t["token_id"], t["side"].lower(), t["size"], t["price"], t["transaction_hash"]
    )


def polymarket_ids(sim: PolymarketSim) -> set[str]:
    return {polymarket_id(t) for t in sim.truth.trades}


def stored_ids(db: Path, venue: str) -> Counter[str]:
    rows = open_reader(db).execute("SELECT trade_id FROM trades WHERE venue = ?", (venue,))
    return Counter(r[0] for r in rows.fetchall())


def stored_books(db: Path, venue: str) -> dict[str, tuple[list[tuple[str, str]], ...]]:
    """The newest stored top-N snapshot of each instrument."""
    if not db.exists():
        return {}
    try:
        reader = open_reader(db)
        reader.execute("SELECT 1 FROM book_snapshots LIMIT 1")
    except sqlite3.OperationalError:  # not migrated yet
        return {}
    latest = reader.execute(
        "SELECT instrument, max(id) FROM book_snapshots WHERE venue = ? GROUP BY instrument",
        (venue,),
    ).fetchall()
    books = {}
    for instrument, snap_id in latest:
        levels = reader.execute(
            "SELECT side, price, size FROM book_levels WHERE snapshot_id = ? ORDER BY side, level",
            (snap_id,),
        ).fetchall()
        books[instrument] = (
            [(p, s) for side, p, s in levels if side == "bid"],
            [(p, s) for side, p, s in levels if side == "ask"],
        )
    return books


@pytest.mark.slow
async def test_both_venues_with_faults_every_trade_once_and_books_equal(tmp_path: Path) -> None:
    pm = PolymarketSim(seed=5, markets=6, events_per_second=150, faults=Faults(
        disconnect_every_seconds=1.0, duplicate_rate=0.05, out_of_order_rate=0.03,
        malformed_rate=0.02, skip_update_rate=0.03))  # fmt: skip
    ks = KalshiSim.for_demo(seed=6, events_per_second=100)
    ks.faults = Faults(duplicate_rate=0.05, skip_update_rate=0.03)
    await pm.start()
    await ks.start()
    # The venues trade from the start, before the service listens: the start-up
    # back-fill (no watermark yet: the look-back window) must bring those trades too.
    await asyncio.sleep(0.5)
    db = tmp_path / "e2e.db"
    extra = {**FAST_POLYMARKET, "discovery.max_resolution_days": 0, "discovery.max_markets": 12}
    service = Service(settings_for({"polymarket": pm, "kalshi": ks}, db, extra))
    try:
        await service.start()
        pm_runner, ks_runner = service.runners["polymarket"], service.runners["kalshi"]

        def synced(runner: object) -> bool:
            view = runner.view()  # type: ignore[attr-defined]
            return (
                bool(view["subscribed"])
                and view["book_states"].get("live", 0) == view["subscribed"]
            )

        await wait_for(lambda: synced(pm_runner) and synced(ks_runner), within=20)
        await wait_for(lambda: pm_runner.events > 200 and ks_runner.events > 100, within=20)
        await asyncio.sleep(2.5)  # disconnects, gaps and resyncs happen meanwhile
        # Status shows the pump's own counters: the socket cuts, as reconnects.
        assert pm_runner.stream is not None
        view = pm_runner.view()
        assert view["reconnects"] == pm_runner.stream.stats()["reconnects"] >= 1
        assert view["stream"]["frames"] > 0
        pm.pause()
        ks.pause()
        await asyncio.sleep(2.0)  # resyncs, audits and gap heals settle on the final state
        await wait_for(
            lambda: not any(r.healer.view()["open"] for r in service.runners.values()), within=15
        )
        await asyncio.sleep(0.5)
    finally:
        await service.stop()
        await pm.stop()
        await ks.stop()

    kinds = {e["kind"] for e in pm.truth.events}
    assert {"ws_cut", "duplicate_frame", "sequence_skip"} <= kinds
    pm_stored = stored_ids(db, "polymarket")
    assert max(pm_stored.values()) == 1
    assert set(pm_stored) == polymarket_ids(pm)  # every trade, once; none invented
    ks_stored = stored_ids(db, "kalshi")
    followed = ks_runner.instruments  # the venue also trades markets beyond the 12 discovered
    assert set(ks_stored) == {t["trade_id"] for t in ks.truth.trades if t["ticker"] in followed}
    assert max(ks_stored.values()) == 1

    pm_books = stored_books(db, "polymarket")
    for token, book in pm.final_books(depth=10).items():
        if token in pm_runner.instruments:
            assert pm_books[token] == book, token
    ks_books = stored_books(db, "kalshi")
    for ticker in ks_runner.instruments:
        bids, asks = ks.canonical_book(ticker)
        assert ks_books.get(ticker, ([], [])) == (bids[:10], asks[:10]), ticker


async def test_quality_counters_equal_the_injected_cases(tmp_path: Path) -> None:
    pm = PolymarketSim(seed=9, markets=3, events_per_second=50)
    await pm.start()
    service = Service(settings_for({"polymarket": pm}, tmp_path / "q.db",
                                   {"discovery.max_resolution_days": 0}))  # fmt: skip
    try:
        await service.start()
        runner = service.runners["polymarket"]
        await wait_for(lambda: runner.events > 50)
        pm.pause()
        await asyncio.sleep(0.3)
        token = sorted(runner.instruments)[0]
        book = runner.book(token)
        assert book is not None and book.mid() is not None
        mid = book.mid()
        before = service.metrics_window()
        near = f"{mid:.2f}"
        far = "0.99" if mid < Decimal("0.5") else "0.01"
        await pm.inject_print(token, near, "12", age_seconds=400)  # G1 (stale)
        await pm.inject_print(token, near, "13", age_seconds=900)  # G1
        await pm.inject_print(token, far, "14")  # G5 (divergent)
        await pm.inject_print(token, far, "15")  # G5
        await pm.inject_print(token, far, "16")  # G5
        await pm.inject_print(token, near, "17")  # a fresh trade at `near`...
        await pm.inject_print(token, near, None)  # ...fills this size (G3 backfilled)
        await pm.inject_print(token, near, None)  # G3 backfilled
        other = "0.5" if abs(Decimal("0.5") - Decimal(near)) > Decimal("0.02") else "0.9"
        await pm.inject_print(token, other, None)  # G3 missing: no trade near that price
        await wait_for(
            lambda: service.metrics_window()["g3_size_missing"] > before["g3_size_missing"]
        )
        after = service.metrics_window()
    finally:
        await service.stop()
        await pm.stop()
    injected = {
        "g1_stale_blocked": 2,
        "g5_divergence_flagged": 3,
        "g3_size_backfilled": 2,
        "g3_size_missing": 1,
    }
    assert {k: after[k] - before[k] for k in injected} == injected


async def test_venue_killed_and_restarted_recovers_others_unaffected(tmp_path: Path) -> None:
    pm = PolymarketSim(seed=2, markets=3, events_per_second=60)
    ks = KalshiSim.for_demo(seed=3, events_per_second=60)
    await pm.start()
    await ks.start()
    port = ks.port
    service = Service(settings_for({"polymarket": pm, "kalshi": ks}, tmp_path / "k.db",
                                   {"discovery.max_resolution_days": 0}))  # fmt: skip
    try:
        await service.start()
        pm_runner, ks_runner = service.runners["polymarket"], service.runners["kalshi"]
        await wait_for(lambda: pm_runner.events > 30 and ks_runner.events > 30)
        await ks.stop()  # the venue dies
        await wait_for(lambda: ks_runner.view()["state"] != "connected")
        pm_before, ks_before = pm_runner.events, ks_runner.events
        await asyncio.sleep(1.5)
        assert pm_runner.events > pm_before + 20  # the other venue goes on
        assert pm_runner.view()["state"] == "connected"
        await ks.start(port=port)  # the venue comes back on the same address
        await wait_for(lambda: ks_runner.events > ks_before + 20, within=20)
        assert ks_runner.view()["state"] == "connected"
    finally:
        await service.stop()
        await pm.stop()
        await ks.stop()


@pytest.mark.slow
async def test_sigterm_mid_run_loses_no_accepted_trade(tmp_path: Path) -> None:
    pm = PolymarketSim(seed=4, markets=4, events_per_second=200)
    await pm.start()
    pm.pause()  # quiet until the service has subscribed (see the test above)
    db = tmp_path / "sig.db"
    env = {
        **os.environ,
        "VENUEFEED_STORAGE__SQLITE_PATH": str(db),
        "VENUEFEED_API__ENABLED": "false",
        "VENUEFEED_VENUES__KALSHI__ENABLED": "false",
        "VENUEFEED_DISCOVERY__MAX_RESOLUTION_DAYS": "0",
        "VENUEFEED_VENUES__POLYMARKET__URLS": json.dumps(pm.urls()),
        "VENUEFEED_VENUES__POLYMARKET__RATE_LIMIT": '{"requests_per_second": 500, "burst": 500}',
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "venuefeed.cli", "run", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        tokens = set(pm.tokens())
        # Every token's first snapshot stored: the service is subscribed to all of them.
        await wait_for(lambda: set(stored_books(db, "polymarket")) == tokens, within=30)
        pm.resume()
        await wait_for(lambda: sum(stored_ids(db, "polymarket").values()) > 100, within=30)
        sigterm_ns = time.time_ns()
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
        await pm.stop()
    assert proc.returncode == 0, err.decode()[-2000:]
    stored = stored_ids(db, "polymarket")
    assert max(stored.values()) == 1
    # Everything the venue sent well before the signal had been accepted: it must be stored.
    accepted = {
        polymarket_id(t) for t in pm.truth.trades if t["sent_ns"] < sigterm_ns - 300_000_000
    }
    assert len(accepted) > 50
    assert accepted <= set(stored), f"{len(accepted - set(stored))} accepted trades lost"


@pytest.mark.slow
async def test_sigkill_and_restart_back_fill_what_the_venue_traded_meanwhile(
    tmp_path: Path,
) -> None:
    """Killed without warning, down while the venue trades, restarted: every trade, once.

    The second start reads the durable completeness watermark and heals the
    window since then from the venue's trade history -- including the trades
    the dead process had received but not yet stored.
    """
    pm = PolymarketSim(seed=21, markets=3, events_per_second=250)
    await pm.start()
    db = tmp_path / "kill.db"
    env = {
        **os.environ,
        "VENUEFEED_STORAGE__SQLITE_PATH": str(db),
        "VENUEFEED_API__ENABLED": "false",
        "VENUEFEED_VENUES__KALSHI__ENABLED": "false",
        "VENUEFEED_DISCOVERY__MAX_RESOLUTION_DAYS": "0",
        "VENUEFEED_INGESTION__HEAL_DELAY_SECONDS": "0.2",
        "VENUEFEED_INGESTION__COMPLETENESS_INTERVAL_SECONDS": "0.2",
        "VENUEFEED_VENUES__POLYMARKET__URLS": json.dumps(pm.urls()),
        "VENUEFEED_VENUES__POLYMARKET__RATE_LIMIT": '{"requests_per_second": 500, "burst": 500}',
    }

    log = (tmp_path / "run.log").open("ab")  # a pipe nobody drains would block the process

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "venuefeed.cli", "run", env=env, stdout=log, stderr=log
        )

    def healed_restarts() -> int:
        if not db.exists():
            return 0
        try:
            row = (
                open_reader(db)
                .execute("SELECT count(*) FROM data_gaps WHERE cause = 'restart' AND healed")
                .fetchone()
            )
        except sqlite3.OperationalError:
            return 0
        return int(row[0])

    def watermark() -> int:
        row = (
            open_reader(db)
            .execute("SELECT value FROM watermarks WHERE key = 'complete:polymarket'")
            .fetchone()
        )
        return int(row[0]) if row else 0

    proc = await start()
    try:
        await wait_for(lambda: healed_restarts() == 1, within=30)
        await wait_for(lambda: sum(stored_ids(db, "polymarket").values()) > 40, within=30)
        await wait_for(lambda: watermark() > time.time_ns() - 1_000_000_000)
        proc.kill()
        await proc.wait()
        down_from = len(pm.truth.trades)
        await asyncio.sleep(2.0)  # the venue keeps trading while we are down
        traded_while_down = len(pm.truth.trades) - down_from
        proc = await start()
        await wait_for(lambda: healed_restarts() == 2, within=30)
        pm.pause()
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
        log.close()
        await pm.stop()
    assert traded_while_down > 20
    stored = stored_ids(db, "polymarket")
    assert max(stored.values()) == 1
    missing = polymarket_ids(pm) - set(stored)
    assert not missing, f"{len(missing)} of {len(pm.truth.trades)} trades missing"


async def test_quiet_market_is_not_stale_but_a_silent_change_is_resynced(tmp_path: Path) -> None:
    pm = PolymarketSim(seed=12, markets=2, events_per_second=40)
    await pm.start()
    service = Service(settings_for({"polymarket": pm}, tmp_path / "l.db",
                                   {"discovery.max_resolution_days": 0,
                                    "quality.stale_feed_seconds": 1.0}))  # fmt: skip
    try:
        await service.start()
        runner = service.runners["polymarket"]
        await wait_for(lambda: runner.events > 20)
        pm.pause()  # the market goes quiet
        await asyncio.sleep(3.0)  # several liveness rounds past the 1 s limit
        assert "stale" not in runner.view()["book_states"]  # quiet, and REST agrees
        token = sorted(runner.instruments)[0]
        book = runner.book(token)
        assert book is not None
        best = book.best_bid()
        assert best is not None
        tick = round(float(best.price) * 100)
        await pm.set_level(token, True, tick, 777_00, send=False)  # a change we never hear of
        expected = pm.final_books(depth=10)[token]

        def healed() -> bool:
            fresh = runner.book(token)
            return (
                fresh is not None
                and (
                    [(lv.price, lv.size) for lv in fresh.bids(10)],
                    [(lv.price, lv.size) for lv in fresh.asks(10)],
                )
                == expected
            )

        await wait_for(healed, within=15)
        states = [(e["instrument"], e["state"]) for e in service.hub.recent(500)
                  if e["type"] == "book_state"]  # fmt: skip
        assert (token, "stale") in states  # the liveness check, not a venue frame, caught it
    finally:
        await service.stop()
        await pm.stop()


async def test_liveness_check_survives_rest_failures(tmp_path: Path) -> None:
    pm = PolymarketSim(seed=13, markets=2, events_per_second=40)
    await pm.start()
    service = Service(settings_for({"polymarket": pm}, tmp_path / "f.db",
                                   {"discovery.max_resolution_days": 0,
                                    "quality.stale_feed_seconds": 1.0}))  # fmt: skip
    try:
        await service.start()
        runner = service.runners["polymarket"]
        await wait_for(lambda: runner.events > 20)
        pm.pause()
        pm.faults.http_5xx_rate = 1.0  # every REST book request now fails
        await wait_for(
            lambda: any(e["kind"] == "liveness_check" for e in service.errors.recent()),
            within=15,
        )
        liveness = service.supervisor.components["polymarket:liveness"]
        assert liveness.state == "running" and liveness.restarts == 0
    finally:
        await service.stop()
        await pm.stop()


async def test_the_last_book_state_is_stored_at_shutdown(tmp_path: Path) -> None:
    """A change just before stop lands although the periodic persistence never saw it."""
    pm = PolymarketSim(seed=31, markets=1, events_per_second=30)
    await pm.start()
    db = tmp_path / "flush.db"
    # Every level is stored (a deep bid at 0.03 is outside the default top 10 when the
    # book has grown thick): this is about the flush at stop, not about the depth.
    extra = {
        "discovery.max_resolution_days": 0,
        "ingestion.book_persist_interval_seconds": 60,
        "ingestion.book_depth": 1000,
    }
    service = Service(settings_for({"polymarket": pm}, db, extra))
    try:
        await service.start()
        runner = service.runners["polymarket"]
        token = pm.tokens()[0]
        await wait_for(lambda: token in stored_books(db, "polymarket"))
        pm.pause()
        await asyncio.sleep(0.3)
        await pm.set_level(token, True, 3, 4242)  # bid 0.03 x 42.42, one change
        await wait_for(
            lambda: any(
                lv.price == "0.03" and lv.size == "42.42"
                for lv in (runner.book(token).bids() if runner.book(token) else [])  # type: ignore[union-attr]
            )
        )
    finally:
        await service.stop()
        await pm.stop()
    bids, _ = stored_books(db, "polymarket")[token]
    assert ("0.03", "42.42") in bids
