"""The Parquet sink: Hive layout readable by pyarrow.dataset, exact decimals, rolling, WAL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from venuefeed import metrics
from venuefeed.models import BookLevel, BookSnapshot, WhaleTrade
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import Watermark
from venuefeed.sinks.columnar import PRODUCT, decimal_problem
from venuefeed.sinks.journal import Journal, encode_batch
from venuefeed.sinks.keys import message_id
from venuefeed.sinks.parquet import ParquetSink
from venuefeed.sinks.spool import SpoolingSink

from .helpers import delta, fill, market, mixed_batch, snapshot, trade


def dataset(root: Path, table: str) -> ds.Dataset:
    return ds.dataset(root / table, format="parquet", partitioning="hive")


def parts(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*/part-*.parquet"))


def open_parts(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*/.part-*.inprogress"))


def tables(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("_"))


def tear(path: Path) -> None:
    """Append a torn frame, as a crash in the middle of an append leaves."""
    with path.open("ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")


def wal_files(root: Path) -> list[Path]:
    return sorted((root / "_wal").glob("wal-*.log"))


async def test_hive_layout_exact_decimals_and_every_table(tmp_path: Path) -> None:
    async with ParquetSink(tmp_path) as sink:
        await sink.write([*mixed_batch(1), trade(2, price="0.000000001"), trade(3, venue="kalshi")])
    trades = dataset(tmp_path, "trades").to_table().sort_by("trade_id").to_pylist()
    assert [(t["venue"], t["date"], t["trade_id"], t["price"], t["size"]) for t in trades] == [
        ("pm", "2023-11-14", "t1", Decimal("0.5"), Decimal("10.25")),
        ("pm", "2023-11-14", "t2", Decimal("0.000000001"), Decimal("10.25")),
        ("kalshi", "2023-11-14", "t3", Decimal("0.5"), Decimal("10.25")),
    ]
    assert str(dataset(tmp_path, "trades").schema.field("price").type) == "decimal128(38, 12)"
    assert trades[0]["_id"] == message_id(trade(1))
    deltas = dataset(tmp_path, "book_deltas").to_table().to_pylist()
    assert sorted((d["side"], str(d["price"].normalize()), str(d["size"].normalize()))
                  for d in deltas) == [("ask", "64000.5", "0"), ("ask", "64001", "1.5"),
                                       ("bid", "64000.01", "1E-8")]  # fmt: skip
    (snap,) = dataset(tmp_path, "book_snapshots").to_table().to_pylist()
    assert [(lv["price"], lv["size"]) for lv in snap["bids"]] == [
        (Decimal("0.52"), Decimal("5")), (Decimal("0.5"), Decimal("7"))
    ]  # fmt: skip
    assert snap["venue"] == "kalshi"
    assert tables(tmp_path) == ["book_deltas", "book_snapshots", "candles", "data_gaps",
                      "market_status_changes", "price_updates", "quotes", "trades",
                      "whale_activity"]  # fmt: skip


async def test_duplicates_skipped_within_and_across_parts_and_restarts(tmp_path: Path) -> None:
    async with ParquetSink(tmp_path, roll_rows=5) as sink:
        batch = [trade(n) for n in range(8)]
        await sink.write(batch + batch)
        await sink.write(batch)
    async with ParquetSink(tmp_path, roll_rows=5) as sink:  # a restart refills the id cache
        await sink.write([trade(n) for n in range(10)])
    ids = dataset(tmp_path, "trades").to_table(columns=["trade_id"]).column(0).to_pylist()
    assert sorted(ids) == sorted(f"t{n}" for n in range(10))


async def test_rolls_by_rows_into_row_groups(tmp_path: Path) -> None:
    async with ParquetSink(tmp_path, roll_rows=10, row_group_rows=4) as sink:
        for k in range(5):
            await sink.write([trade(k * 5 + i) for i in range(5)])
        assert len(parts(tmp_path)) == 2  # 25 rows: two parts of 10 closed, 5 still open
        assert open_parts(tmp_path)
    files = parts(tmp_path)
    assert len(files) == 3
    groups = [pq.ParquetFile(f).metadata.num_row_groups for f in files]
    assert groups == [3, 3, 2]  # 10 rows in groups of 4 -> 4+4+2; the last 5 -> 4+1
    assert dataset(tmp_path, "trades").count_rows() == 25


async def test_rolls_by_time(tmp_path: Path) -> None:
    async with ParquetSink(tmp_path, roll_seconds=0.2) as sink:
        await sink.write([trade(1)])
        for _ in range(50):
            if parts(tmp_path):
                break
            await asyncio.sleep(0.05)
        assert len(parts(tmp_path)) == 1


def whale(n: int, price: str, size: str) -> WhaleTrade:
    amount = str(Decimal(price) * Decimal(size))
    return WhaleTrade(venue="binance", instrument="BTCUSDT", ts_venue=T0 + n, ts_recv=T0 + n,
                      trade_id=f"w{n}", trader_address="*", side="buy", price=price, size=size,
                      amount=amount)  # fmt: skip


T0 = 1_700_000_000_000_000_000


async def test_no_row_is_ever_skipped_for_its_precision(tmp_path: Path) -> None:
    """Binance price x size has 16 fractional digits: exact. Wider still: kept as text."""
    counter = metrics.SINK_TEXT_DECIMALS.labels("parquet", "trades")
    before = counter._value.get()
    big = whale(1, "64123.45678901", "0.12345678")
    assert len(big.amount.split(".")[1]) == 16
    too_fine, too_big = "0." + "0" * 12 + "1", "1" * 27
    wide_level = BookSnapshot(
        venue="kalshi",
        instrument="KX",
        ts_venue=T0,
        ts_recv=T0,
        bids=[BookLevel("0.5", "1"), BookLevel("0.4", too_fine)],
        asks=[],
    )
    async with ParquetSink(tmp_path) as sink:
        await sink.write([big, trade(2, price=too_fine), trade(3, price=too_big), trade(4),
                          wide_level])  # fmt: skip
    (stored,) = dataset(tmp_path, "whale_activity").to_table().to_pylist()
    assert stored["amount"] == Decimal(big.amount) and stored["_exact"] is None
    rows = {r["trade_id"]: r for r in dataset(tmp_path, "trades").to_table().to_pylist()}
    assert sorted(rows) == ["t2", "t3", "t4"]
    assert rows["t2"]["price"] is None and json.loads(rows["t2"]["_exact"]) == {"price": too_fine}
    assert rows["t3"]["price"] is None and json.loads(rows["t3"]["_exact"]) == {"price": too_big}
    assert rows["t4"]["price"] == Decimal("0.5") and rows["t4"]["_exact"] is None
    assert counter._value.get() - before == 2
    (snap,) = dataset(tmp_path, "book_snapshots").to_table().to_pylist()
    assert [lv["size"] for lv in snap["bids"]] == [Decimal("1"), None]
    assert json.loads(snap["_exact"]) == {"bids[1].size": too_fine}
    assert decimal_problem(too_fine) == "13 fractional digits (at most 12)"
    assert decimal_problem(too_big) == "27 integer digits (at most 26)"
    assert decimal_problem(too_fine, PRODUCT) is None
    assert decimal_problem("1" * 26 + "." + "9" * 12) is None
    assert decimal_problem("0.10000000000000000000000") is None  # trailing zeros are free
    assert decimal_problem("NaN") == "not a finite number"


async def test_crash_with_open_parts_is_rebuilt_from_the_wal(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, roll_rows=1000, row_group_rows=1)
    await sink.start()
    await sink.write([trade(n) for n in range(5)])
    await sink.write([delta(1), snapshot(1)])
    # Simulate a crash: nothing closed; the open parts have no footer.
    assert sink._timer is not None
    sink._timer.cancel()
    assert not parts(tmp_path)
    # A torn frame at the end of the log (crash mid-append) is ignored.
    (wal,) = wal_files(tmp_path)
    tear(wal)
    async with ParquetSink(tmp_path) as again:
        assert again.rows_written == 7
    assert dataset(tmp_path, "trades").count_rows() == 5
    assert dataset(tmp_path, "book_deltas").count_rows() == 3
    assert dataset(tmp_path, "book_snapshots").count_rows() == 1
    assert not open_parts(tmp_path)
    assert not wal_files(tmp_path)


def test_journal_recovers_torn_tail(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.log")
    journal.append(encode_batch([trade(1)]))
    journal.close()
    good = (tmp_path / "j.log").stat().st_size
    with (tmp_path / "j.log").open("ab") as f:
        f.write(b"\xff\x00")
    assert Journal(tmp_path / "j.log").size == good


async def test_markets_and_watermarks_are_not_written(tmp_path: Path) -> None:
    async with ParquetSink(tmp_path) as sink:
        await sink.write([market(), Watermark("a", "b")])
        assert sink.rows_written == 0
    assert not parts(tmp_path)


async def test_a_full_disk_loses_no_row_and_duplicates_none(
    small_disk: Path, tmp_path: Path
) -> None:
    """Parts that cannot be written are rebuilt from the log once the disk has room again."""
    root = small_disk / "pq"
    spool = SpoolingSink(ParquetSink(root, roll_rows=300, row_group_rows=50), tmp_path / "spool",
                         50_000_000, retry_max_seconds=0.05)  # fmt: skip
    writer = SinkWriter(spool, batch_size=100)
    await spool.start()
    writer.start()
    for n in range(500):
        await writer.put(trade(n))
    await writer.drain()
    filler = fill(small_disk, leave=16 * 1024)
    for n in range(500, 3000):
        await writer.put(trade(n))
    await writer.drain()  # durable: the spool (on another disk) took what Parquet could not
    assert spool.status()["spooled_batches"] > 0
    (problem,) = [p for p in writer.problems() if p.startswith("storage: parquet: disk full")]
    assert "records in the spool" in problem
    filler.unlink()
    await wait_for(lambda: spool.status()["spooled_batches"] == 0)
    await writer.close()
    await spool.close()
    ids = dataset(root, "trades").to_table(columns=["trade_id"]).column(0).to_pylist()
    assert len(ids) == len(set(ids)) == 3000
    assert not open_parts(root) and not wal_files(root)


async def wait_for(predicate: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
