"""``venuefeed book --at``: the rebuilt book equals the live book at sampled instants.

The service runs against the Polymarket (absolute sizes, no sequence numbers)
and Kalshi (sequenced increments, turned into sizes by the live book)
simulators with deltas stored and snapshots stored rarely, so most instants
need deltas on top of an older snapshot. While it runs, the live books are
sampled; afterwards each sample is rebuilt from the store alone.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from venuefeed.lake.book_at import SqliteHistory, book_at
from venuefeed.models import BookLevel
from venuefeed.service import Service
from venuefeed.venues.kalshi import Simulator as KalshiSim
from venuefeed.venues.polymarket import Simulator as PolymarketSim

from ..service.helpers import settings_for, wait_for

DEPTH = 10
Sample = tuple[str, str, int, list[BookLevel], list[BookLevel]]


async def sample_books(service: Service, seconds: float) -> list[Sample]:
    rng = random.Random(5)
    samples: list[Sample] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await asyncio.sleep(rng.uniform(0.02, 0.15))
        for venue, runner in service.runners.items():
            instruments = sorted(runner.instruments)
            for instrument in rng.sample(instruments, min(3, len(instruments))):
                book = runner.book(instrument)
                if book is None or book.state != "live" or not book.ts_recv:
                    continue
                samples.append((venue, instrument, book.ts_recv, book.bids(), book.asks()))
    return samples


@pytest.mark.slow
async def test_book_at_equals_the_live_book_at_sampled_instants(tmp_path: Path) -> None:
    sims = {
        "polymarket": PolymarketSim.for_demo(seed=11, events_per_second=150),
        "kalshi": KalshiSim.for_demo(seed=12, events_per_second=150),
    }
    for sim in sims.values():
        await sim.start()
    db = tmp_path / "v.db"
    extra = {
        "ingestion.store_book_deltas": True,
        "ingestion.book_depth": DEPTH,
        "ingestion.book_persist_interval_seconds": 2.5,  # rare: most instants need deltas
        "discovery.max_markets": 12,
    }
    service = Service(settings_for(sims, db, extra))
    try:
        await service.start()
        await wait_for(lambda: all(r.events > 50 for r in service.runners.values()), 20)
        samples = await sample_books(service, 6.0)
    finally:
        await service.stop()
        for sim in sims.values():
            await sim.stop()

    history = SqliteHistory(db)
    compared = {"polymarket": 0, "kalshi": 0}
    with_changes = 0
    try:
        for venue, instrument, ts, live_bids, live_asks in samples:
            rebuilt = book_at(history, venue, instrument, ts, snapshot_depth=DEPTH)
            assert rebuilt is not None, (venue, instrument)
            for side, live, got, complete in (
                ("bids", live_bids, rebuilt.bids, rebuilt.bids_complete),
                ("asks", live_asks, rebuilt.asks, rebuilt.asks_complete),
            ):
                if complete:
                    assert got == live, (venue, instrument, ts, side)
                else:  # every level it shows is the live book's, best first, none skipped
                    assert got == live[: len(got)], (venue, instrument, ts, side)
                    assert len(got) >= min(len(live), DEPTH // 2), (venue, instrument, ts, side)
            compared[venue] += 1
            with_changes += rebuilt.changes > 0 and rebuilt.snapshot_ts < ts
    finally:
        history.close()
    assert min(compared.values()) >= 20, compared
    assert with_changes >= len(samples) // 2  # most rebuilt through deltas, not a stored copy

    # The command line gives the same book.
    venue, instrument, ts, live_bids, live_asks = samples[-1]
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "venuefeed.cli", "--db", str(db), "book", venue, instrument,
         "--at", str(ts), "--depth", "3", "--json"],
        capture_output=True, text=True, timeout=60, env={"VENUEFEED_INGESTION__BOOK_DEPTH": "10",
                                                        "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["bids"] == [[lv.price, lv.size] for lv in live_bids[:3]]
    assert shown["asks"] == [[lv.price, lv.size] for lv in live_asks[:3]]
