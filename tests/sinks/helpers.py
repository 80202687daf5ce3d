"""Helpers shared by the sink tests: record factories, a controllable TCP proxy, services."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from venuefeed.models import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    Candle,
    DataGap,
    Market,
    MarketStatus,
    MarketStatusChange,
    Outcome,
    PriceUpdate,
    TopOfBook,
    Trade,
    WhaleTrade,
)
from venuefeed.sinks.base import Record, Sink, SinkUnavailable

from ..conftest import require_service

PG_URL = os.environ.get("VENUEFEED_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("VENUEFEED_TEST_NATS_URL", "nats://127.0.0.1:4222")


def require_postgres() -> str:
    parts = urlsplit(PG_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return PG_URL


def require_nats() -> str:
    parts = urlsplit(NATS_URL)
    require_service("NATS", parts.hostname or "127.0.0.1", parts.port or 4222)
    return NATS_URL


def trade(n: int, instrument: str = "tok", venue: str = "pm", price: str = "0.5") -> Trade:
    return Trade(venue=venue, instrument=instrument, ts_venue=1_700_000_000_000_000_000 + n,
                 ts_recv=1_700_000_000_000_000_000 + n, trade_id=f"t{n}", price=price,
                 size="10.25", side="buy")  # fmt: skip


def delta(n: int, instrument: str = "BTCUSDT") -> BookDelta:
    return BookDelta(venue="binance", instrument=instrument, ts_venue=1_700_000_000_000_000_000 + n,
                     ts_recv=1_700_000_000_000_000_000 + n, sequence=n,
                     bids=[BookLevel("64000.01", "0.00000001")],
                     asks=[BookLevel("64000.5", "0"), BookLevel("64001", "1.5")])  # fmt: skip


def snapshot(n: int) -> BookSnapshot:
    return BookSnapshot(venue="kalshi", instrument="KX-1", ts_venue=1_700_000_000_000_000_000 + n,
                        ts_recv=1_700_000_000_000_000_000 + n, sequence=n,
                        bids=[BookLevel("0.52", "5"), BookLevel("0.5", "7")],
                        asks=[BookLevel("0.55", "1")])  # fmt: skip


def market(rules: str = "Resolves YES if it rains.") -> Market:
    return Market(venue="pm", market_id="m1", title="Rain?", rules=rules,
                  outcomes=(Outcome("Yes", "tok", "0.4"), Outcome("No", "tok2", "0.6")),
                  status=MarketStatus.OPEN, tick_size="0.001")  # fmt: skip


def mixed_batch(base: int) -> list[Record]:
    """One of each record type the stores and buses handle."""
    ts = 1_700_000_000_000_000_000 + base
    return [
        trade(base),
        delta(base),
        snapshot(base),
        TopOfBook(venue="pm", instrument="tok", ts_venue=ts, ts_recv=ts, bid_price="0.5",
                  bid_size="3", ask_price="0.51", ask_size="4"),
        PriceUpdate(venue="pm", instrument="tok", ts_venue=ts, ts_recv=ts, price="0.505"),
        Candle(venue="binance", instrument="BTCUSDT", ts_venue=ts, ts_recv=ts, interval="1m",
               open_time=ts, close_time=ts + 59, open="1", high="2", low="0.5", close="1.5",
               volume="12.125"),
        MarketStatusChange(venue="pm", instrument="tok", ts_venue=ts, ts_recv=ts,
                           status=MarketStatus.OPEN),
        DataGap(venue="pm", instrument="tok", ts_venue=0, ts_recv=ts, cause="disconnect",
                start=ts),
        WhaleTrade(venue="pm", instrument="tok", ts_venue=ts, ts_recv=ts, trade_id=f"w{base}",
                   trader_address="0xabc", side="buy", price="0.5", size="30000",
                   amount="15000", known_whale=True),
    ]  # fmt: skip


class FlakySink(Sink):
    """An in-memory sink that is unreachable while ``down`` is set; stores like a keyed table."""

    name = "flaky"

    def __init__(self, delay: float = 0.0) -> None:
        self.down = False
        self.delay = delay
        self.stored: list[Record] = []
        self.attempts = 0

    async def write(self, batch: Sequence[Record]) -> None:
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise SinkUnavailable("flaky: down")
        self.stored.extend(batch)


def fill(disk: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of ``disk`` with one file."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    size = stat.f_bavail * stat.f_frsize - leave
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return filler
