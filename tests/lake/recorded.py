"""A live run against the Polymarket and Kalshi simulators, recorded: what replay tests use.

Both venues, every socket cut once in the middle (a reconnect and its resync
are in the recording), deltas stored. The first start's back-fill is off: its
trades come from a REST job of the service, not from the stream a replay
re-runs (the proof, ``bench/record_replay.py``, counts those separately).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venuefeed.service import Service
from venuefeed.sim.base import SimulatorBase
from venuefeed.venues.kalshi import Simulator as KalshiSim
from venuefeed.venues.polymarket import Simulator as PolymarketSim

from ..service.helpers import settings_for, wait_for

DEPTH = 10


@dataclass
class LiveRun:
    recording: Path
    db: Path
    extra: dict[str, Any]


def live_extra(db: Path) -> dict[str, Any]:
    return {
        "storage.sqlite_path": db,
        "ingestion.store_book_deltas": True,
        "ingestion.book_depth": DEPTH,
        "ingestion.book_persist_interval_seconds": 0.2,
        "ingestion.backfill_lookback_seconds": 0,
        "discovery.max_markets": 8,
    }


async def record_live_run(folder: Path, seconds: float = 1.5) -> LiveRun:
    sims: dict[str, SimulatorBase] = {
        "polymarket": PolymarketSim.for_demo(seed=21, events_per_second=120),
        "kalshi": KalshiSim.for_demo(seed=22, events_per_second=120),
    }
    for sim in sims.values():
        await sim.start()
    rec, db = folder / "rec", folder / "live.db"
    extra = {**live_extra(db), "recording.enabled": True, "recording.path": rec,
             "recording.flush_interval_seconds": 0.05}  # fmt: skip
    service = Service(settings_for(sims, db, extra))
    try:
        await service.start()
        await wait_for(lambda: all(r.events > 60 for r in service.runners.values()), 20)
        await asyncio.sleep(seconds / 2)
        for sim in sims.values():
            await sim.sockets.cut_all()
        await wait_for(lambda: all(r.stream is not None and r.stream.reconnects >= 1
                                   for r in service.runners.values()), 20)  # fmt: skip
        await asyncio.sleep(seconds / 2)
    finally:
        await service.stop()
        for sim in sims.values():
            await sim.stop()
    return LiveRun(rec, db, extra)
