"""Helpers shared by the sink tests: record factories, a controllable TCP proxy, services."""

from __future__ import annotations

import asyncio
import contextlib
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


class TcpProxy:
    """A loopback TCP proxy to a real server that a test can take down and bring back.

    ``stop()`` closes the listening socket and cuts every open connection,
    which is what a crashed or unreachable server looks like to a client;
    ``start()`` listens again on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


class StallingProxy:
    """A loopback TCP proxy that can turn into a black hole: it stops forwarding, closes nothing.

    ``stall()`` is what a network partition or a hung server looks like to a
    client -- connections stay open, new ones are accepted, and no byte moves
    in either direction, with no RST and no FIN to tell anyone. ``resume()``
    lets the held bytes through and forwards again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._forwarding = asyncio.Event()
        self._forwarding.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, url: str, port: int) -> str:
        """``url`` with ``127.0.0.1:<port>`` pointed at this proxy."""
        return url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.port}")

    def stall(self) -> None:
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    async def close(self) -> None:
        self._forwarding.set()
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        await self._forwarding.wait()  # accepted, then silence
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    await self._forwarding.wait()
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


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
