"""The SQLite writer process: the same rows as the thread, survives its own death, holds
no connection of its parent's."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

from venuefeed.models import (
    BookLevel,
    BookSnapshot,
    Candle,
    DataGap,
    Market,
    Outcome,
    PriceUpdate,
    Trade,
    WhaleTrade,
)
from venuefeed.sinks.base import InvalidRecords, RawMessage, Record, Watermark
from venuefeed.sinks.sqlite import SqliteStore, open_reader
from venuefeed.sinks.sqlite_process import process_available

pytestmark = pytest.mark.skipif(not process_available(), reason="needs POSIX spawn")

TABLES = ("trades", "book_snapshots", "book_levels", "candles", "price_updates", "data_gaps",
          "markets", "market_versions", "watermarks", "raw_messages", "whale_activity")  # fmt: skip


def trade(n: int) -> Trade:
    return Trade(venue="pm", instrument="tok", ts_venue=n, ts_recv=n, trade_id=f"t{n}",
                 price="0.5", size="10", side="buy", flags=("price_divergence",))  # fmt: skip


def every_kind() -> list[Record]:
    whale = WhaleTrade(venue="pm", instrument="tok", ts_venue=3, ts_recv=3, trade_id="w1",
                       trader_address="0xabc", side="sell", price="0.5", size="90000",
                       amount="45000", market_id="m1", known_whale=True)  # fmt: skip
    return [
        trade(1),
        BookSnapshot(venue="pm", instrument="tok", ts_venue=2, ts_recv=2, sequence=7,
                     bids=[BookLevel("0.49", "5")], asks=[BookLevel("0.51", "6")]),
        Candle(venue="b", instrument="BTCUSDT", ts_venue=1, ts_recv=1, interval="1m",
               open_time=60, close_time=119, open="1", high="2", low="1", close="1.5",
               volume="3", closed=True),
        PriceUpdate(venue="pm", instrument="tok", ts_venue=4, ts_recv=4, price="0.5",
                    size=None, source="last_trade"),
        DataGap(venue="pm", instrument="tok", ts_venue=0, ts_recv=5, cause="disconnect",
                start=1, end=4, instruments=("tok", "tok2")),
        Market(venue="pm", market_id="m1", title="Rain?", rules="YES if it rains",
               outcomes=(Outcome("Yes", "tok", "0.5"), Outcome("No", "tok2", "0.5"))),
        Watermark("complete:pm", "123"),
        RawMessage("pm", "ws", 6, b'{"raw": true}'),
        whale,
    ]  # fmt: skip


_WRITE_TIMES = ("updated_at", "first_seen", "last_seen", "recorded_at")
"""Columns holding when the row was written, which differs between the two stores."""


def table_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    reader = open_reader(path)
    out = {}
    for table in TABLES:
        cursor = reader.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        volatile = {i for i, n in enumerate(names) if n in _WRITE_TIMES}
        out[table] = sorted(
            tuple(v for i, v in enumerate(r) if i not in volatile) for r in cursor.fetchall()
        )
    return out


async def test_the_process_stores_every_kind_exactly_as_the_thread_does(tmp_path: Path) -> None:
    stored = {}
    for kind in ("thread", "process"):
        store = SqliteStore(tmp_path / f"{kind}.db", writer=kind)
        await store.start()
        await store.write(every_kind())
        await store.write(every_kind())  # again: idempotent in both
        await store.close()
        stored[kind] = table_rows(store.path)
    assert all(stored["thread"][t] for t in TABLES)  # every table got its row
    assert stored["process"] == stored["thread"]


async def test_a_killed_writer_fails_nothing_silently_and_the_next_write_starts_another(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "v.db", writer="process")
    await store.start()
    await store.write([trade(1)])
    process = store._process
    assert process is not None and process._pid is not None
    os.kill(process._pid, signal.SIGKILL)
    for _ in range(500):  # the parent notices the end of the socket
        if not process.alive:
            break
        await asyncio.sleep(0.01)
    assert not process.alive
    await store.write([trade(2), trade(3)])  # a new writer process
    assert process.starts == 2 and process.exit_code == -signal.SIGKILL
    await store.close()
    ids = [r[0] for r in open_reader(store.path).execute("SELECT trade_id FROM trades")]
    assert sorted(ids) == ["t1", "t2", "t3"]


async def test_a_batch_it_cannot_encode_is_invalid_not_an_outage(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "v.db", writer="process")
    await store.start()
    huge = Trade(venue="pm", instrument="tok", ts_venue=2**70, ts_recv=1, trade_id="x",
                 price="0.5", size="1")  # fmt: skip
    with pytest.raises(InvalidRecords):
        await store.write([huge])
    await store.write([trade(1)])  # the writer is fine
    await store.close()
    assert open_reader(store.path).execute("SELECT count(*) FROM trades").fetchone()[0] == 1


async def test_the_writer_holds_no_socket_of_its_parent(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # a connection the service has open
    store = SqliteStore(tmp_path / "v.db", writer="process")
    try:
        await store.start()
        await store.write([trade(1)])
        assert store._process is not None and store._process._pid is not None
        fd_dir = f"/proc/{store._process._pid}/fd"
        links = [os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)]
        # Its own socket to the parent and nothing else of the kind: not the listener,
        # nor a copy of any connection the service holds.
        assert len([link for link in links if link.startswith("socket:")]) == 1
    finally:
        listener.close()
        await store.close()


async def test_closing_stores_everything_written_before(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "v.db", writer="process")
    await store.start()
    await asyncio.gather(*(store.write([trade(n)]) for n in range(300)))
    await store.close()
    assert open_reader(store.path).execute("SELECT count(*) FROM trades").fetchone()[0] == 300
