"""Service end to end against the Polygon simulator: every trade stored exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from venuefeed.service import Service
from venuefeed.sim.base import Faults
from venuefeed.sinks.sqlite import open_reader
from venuefeed.venues.polygon import Simulator

from .helpers import settings_for, stored_trades, truth_trades, wait_for


async def test_stream_disconnect_heal_and_clean_stop(tmp_path: Path) -> None:
    sim = Simulator(seed=3, tickers=("AAPL", "MSFT"), events_per_second=80,
                    faults=Faults(duplicate_rate=0.2))  # fmt: skip
    await sim.start()
    sim.pause()  # the venue's clock waits until we listen: earlier trades are history
    db = tmp_path / "v.db"
    service = Service(
        settings_for({"polygon": sim}, db, {"venues.polygon.instruments": ["AAPL", "MSFT"]})
    )
    try:
        await service.start()
        runner = service.runners["polygon"]
        await wait_for(lambda: any(s.state.subs for s in sim.sockets))
        sim.resume()
        await wait_for(lambda: runner.events > 20)
        await sim.disconnect_all()  # a venue cut: the window is healed from REST
        await wait_for(lambda: runner.view()["reconnects"] == 1)  # status: the real count
        await wait_for(lambda: runner.stream is not None and runner.stream.state == "connected")
        await wait_for(lambda: runner.events > 60)
        await wait_for(lambda: runner.healer.healed >= 2 and not runner.healer.view()["open"])
        # Quiet the venue, then stop it: everything it printed is then received.
        sim.pause()
        await asyncio.sleep(0.5)
        await sim.stop()
        await wait_for(lambda: runner.stream is None or runner.stream.state != "connected")
    finally:
        await service.stop()
        await sim.stop()
    stored = stored_trades(db, "polygon")
    assert Counter(stored).most_common(1)[0][1] == 1  # no trade twice
    sent = set(truth_trades(sim))
    assert sent <= set(stored), f"{len(sent - set(stored))} sent trades never stored"
    status = service.status()
    assert status["details"]["writer"]["pending"] == 0
    assert service.pipeline.outcomes["duplicate"] > 0  # duplicated frames were absorbed
    gaps = open_reader(db).execute(
        "SELECT instrument, cause, instruments, healed, end_ns > start_ns FROM data_gaps"
    )
    # The start (back-filled from the look-back window) and the cut: one entry each, healed.
    assert sorted(tuple(g) for g in gaps) == [
        ("*", "restart", "[]", 1, 1),
        ("conn:0", "disconnect", json.dumps(["AAPL", "MSFT"], separators=(",", ":")), 1, 1),
    ]


async def test_raw_frames_kept_only_when_asked(tmp_path: Path) -> None:
    sim = Simulator(seed=5, tickers=("AAPL",), events_per_second=60)
    await sim.start()
    counts = {}
    try:
        for raw in (False, True):
            db = tmp_path / f"raw-{raw}.db"
            extra = {"venues.polygon.instruments": ["AAPL"], "storage.raw_messages": raw}
            service = Service(settings_for({"polygon": sim}, db, extra))
            await service.start()
            try:
                runner = service.runners["polygon"]
                await wait_for(lambda: runner.events > 20)  # noqa: B023 - awaited here
            finally:
                await service.stop()
            reader = open_reader(db)
            counts[raw] = reader.execute("SELECT count(*) FROM raw_messages").fetchone()[0]
            if raw:
                venue, channel, payload = reader.execute(
                    "SELECT venue, channel, payload FROM raw_messages ORDER BY id LIMIT 1"
                ).fetchone()
                assert (venue, channel) == ("polygon", "ws")
                assert json.loads(payload)[0]["ev"] == "status"  # the venue's frame, verbatim
    finally:
        await sim.stop()
    assert counts[False] == 0 and counts[True] > 5  # Polygon packs several events a frame
