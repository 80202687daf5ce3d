"""Seed 002's DataWriter and RealtimePipeline, over venuefeed's stores and service."""

from __future__ import annotations

import time
from pathlib import Path

import venuefeed
from venuefeed.config import load_config
from venuefeed.models import Candle, TopOfBook, Trade
from venuefeed.sinks.sqlite import open_reader
from venuefeed.venues.polygon import Simulator as PolygonSim

from .service.helpers import settings_for, wait_for

NOW = time.time_ns()


def count(db: Path, table: str) -> int:
    return int(open_reader(db).execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_data_writer_writes_durably_and_idempotently(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    settings = load_config(overrides={"storage.sqlite_path": db}, environ={})
    trade = Trade(venue="polygon", instrument="AAPL", ts_venue=NOW, ts_recv=NOW, trade_id="1",
                  price="190.12", size="5")  # fmt: skip
    quote = TopOfBook(venue="polygon", instrument="AAPL", ts_venue=NOW, ts_recv=NOW,
                      bid_price="190.1", bid_size="1", ask_price="190.2", ask_size="2")  # fmt: skip
    candle = Candle(venue="polygon", instrument="AAPL", ts_venue=NOW, ts_recv=NOW, interval="1m",
                    open_time=NOW - 60_000_000_000, close_time=NOW, open="1", high="2", low="1",
                    close="2", volume="10")  # fmt: skip
    async with venuefeed.DataWriter(settings) as writer:
        assert await writer.write_trades([trade, trade]) == 2
        assert await writer.write_trades([trade]) == 1
        await writer.write_quotes([quote])
        await writer.write_candles([candle])
        # Durable when the call returned: another reader sees them now.
        assert (count(db, "trades"), count(db, "quotes"), count(db, "candles")) == (1, 1, 1)


async def test_realtime_pipeline_streams_the_symbols_it_is_given(tmp_path: Path) -> None:
    sim = PolygonSim(seed=4, tickers=("AAPL", "MSFT"), events_per_second=60)
    await sim.start()
    db = tmp_path / "r.db"
    pipeline = venuefeed.RealtimePipeline(settings_for({"polygon": sim}, db))
    try:
        await pipeline.start(["AAPL"])
        await wait_for(lambda: db.exists() and count(db, "trades") > 5, within=20)
    finally:
        await pipeline.stop()
        await sim.stop()
    instruments = {r[0] for r in open_reader(db).execute("SELECT DISTINCT instrument FROM trades")}
    assert instruments == {"AAPL"}
