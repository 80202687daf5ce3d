"""Parquet as users read it: pandas, polars and DuckDB, on live and exported files.

Every row is there, every decimal is exact, arithmetic works in each reader,
book snapshots carry their levels and ``book_levels`` exports flat.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl

from venuefeed.models import BookLevel, BookSnapshot, Trade, WhaleTrade
from venuefeed.sinks.base import Record
from venuefeed.sinks.export import export
from venuefeed.sinks.parquet import ParquetSink
from venuefeed.sinks.sqlite import SqliteStore

T0 = 1_700_000_000_000_000_000


def whales(count: int) -> list[WhaleTrade]:
    """Binance-like whale trades: 8-decimal prices and sizes, 16-decimal amounts."""
    out = []
    for n in range(count):
        price, size = f"{64000 + n}.{n % 97:02d}345678", f"1.{n:02d}456789"
        out.append(WhaleTrade(venue="binance", instrument="BTCUSDT", ts_venue=T0 + n,
                              ts_recv=T0 + n, trade_id=f"w{n}", trader_address="*", side="buy",
                              price=price, size=size,
                              amount=str(Decimal(price) * Decimal(size))))  # fmt: skip
    return out


def trades(count: int) -> list[Trade]:
    return [Trade(venue="binance", instrument="BTCUSDT", ts_venue=T0 + n, ts_recv=T0 + n,
                  trade_id=f"t{n}", price=f"{64000 + n}.12345678", size="0.00000001")
            for n in range(count)]  # fmt: skip


def snapshots(count: int) -> list[BookSnapshot]:
    return [BookSnapshot(venue="kalshi", instrument="KX-1", ts_venue=T0 + n, ts_recv=T0 + n,
                         sequence=n, bids=[BookLevel("0.52", str(5 + n)), BookLevel("0.5", "7")],
                         asks=[BookLevel("0.55", "1.25")])
            for n in range(count)]  # fmt: skip


RECORDS: list[Record] = [*whales(40), *trades(30), *snapshots(5)]
AMOUNT_SUM = sum(Decimal(w.amount) for w in whales(40))
NOTIONAL_SUM = sum(Decimal(t.price) * Decimal(t.size) for t in trades(30))


def glob(root: Path, table: str) -> str:
    return f"{root}/{table}/**/*.parquet"


def check_readers(root: Path) -> None:
    """The same questions asked of the three readers, with exact answers."""
    # pandas (pyarrow engine): Decimal objects, exact sums.
    frame = pd.read_parquet(root / "whale_activity")
    assert len(frame) == 40 and sum(frame["amount"]) == AMOUNT_SUM
    assert set(frame["venue"]) == {"binance"}
    trades_frame = pd.read_parquet(root / "trades")
    assert sum(trades_frame["price"] * trades_frame["size"]) == NOTIONAL_SUM
    # polars: Decimal columns, arithmetic in the engine. A polars product takes the larger
    # input scale (12 here) and rounds to it, so one operand is widened first.
    whales_pl = pl.read_parquet(glob(root, "whale_activity"), hive_partitioning=True)
    assert whales_pl.height == 40 and whales_pl["amount"].sum() == AMOUNT_SUM
    trades_pl = pl.read_parquet(glob(root, "trades"), hive_partitioning=True)
    notional = trades_pl.select(pl.col("price").cast(pl.Decimal(38, 18)) * pl.col("size"))
    assert notional.to_series().sum() == NOTIONAL_SUM
    # DuckDB: DECIMAL columns; price * size is DECIMAL(38, 24) and does not overflow.
    (count, total), *_ = duckdb.sql(
        f"SELECT count(*), sum(amount) FROM read_parquet('{glob(root, 'whale_activity')}',"
        " hive_partitioning = true)"
    ).fetchall()
    assert (count, total) == (40, AMOUNT_SUM)
    ((notional,),) = duckdb.sql(
        f"SELECT sum(price * size) FROM read_parquet('{glob(root, 'trades')}')"
    ).fetchall()
    assert notional == NOTIONAL_SUM
    ((levels, size_sum),) = duckdb.sql(
        "SELECT count(*), sum(b.size) FROM (SELECT unnest(bids) AS b FROM read_parquet("
        f"'{glob(root, 'book_snapshots')}'))"
    ).fetchall()
    assert (levels, size_sum) == (10, sum(Decimal(5 + n) + 7 for n in range(5)))


async def test_live_parquet_reads_exactly_in_pandas_polars_and_duckdb(tmp_path: Path) -> None:
    async with ParquetSink(tmp_path) as sink:
        await sink.write(RECORDS)
    await asyncio.to_thread(check_readers, tmp_path)


async def filled_sqlite(path: Path) -> Path:
    async with SqliteStore(path) as store:
        await store.write(RECORDS)
    return path


async def test_export_reads_like_the_live_files(tmp_path: Path) -> None:
    db = await filled_sqlite(tmp_path / "v.db")
    out = tmp_path / "export"
    for table in ("whale_activity", "trades", "book_snapshots"):
        result = await export("sqlite", table, None, "parquet", out, sqlite_path=db)
        assert result.exact_text == 0
    await asyncio.to_thread(check_readers, out)
    live = tmp_path / "live"
    async with ParquetSink(live) as sink:
        await sink.write(RECORDS)
    for table in ("whale_activity", "trades", "book_snapshots"):
        exported = pl.read_parquet(glob(out, table), hive_partitioning=True).drop("_id")
        written = pl.read_parquet(glob(live, table), hive_partitioning=True).drop("_id")
        assert exported.schema == written.schema
        key = "digest" if table == "book_snapshots" else "trade_id"
        assert exported.sort(key).equals(written.sort(key))  # the same rows, levels included


async def test_book_levels_export_flat_with_their_snapshot(tmp_path: Path) -> None:
    db = await filled_sqlite(tmp_path / "v.db")
    result = await export("sqlite", "book_levels", None, "parquet", tmp_path / "x", sqlite_path=db)
    assert result.rows == 15
    rows = duckdb.sql(
        "SELECT venue, sequence, side, level, price, size FROM read_parquet("
        f"'{glob(tmp_path / 'x', 'book_levels')}', hive_partitioning = true) "
        "WHERE sequence = 2 ORDER BY side DESC, level"
    ).fetchall()
    assert rows == [
        ("kalshi", 2, "bid", 0, Decimal("0.52"), Decimal("7")),
        ("kalshi", 2, "bid", 1, Decimal("0.5"), Decimal("7")),
        ("kalshi", 2, "ask", 0, Decimal("0.55"), Decimal("1.25")),
    ]
    csv_out = tmp_path / "levels.csv"
    await export("sqlite", "book_levels", None, "csv", csv_out, sqlite_path=db)
    lines = csv_out.read_text().splitlines()
    assert lines[0] == ("venue,instrument,ts_venue,ts_recv,sequence,digest,snapshot_id,side,"
                        "level,price,size")  # fmt: skip
    assert len(lines) == 16
    snaps = tmp_path / "snaps.csv"
    await export("sqlite", "book_snapshots", None, "csv", snaps, sqlite_path=db)
    first = snaps.read_text().splitlines()[1]
    assert first.endswith('"[[""0.52"",""5""],[""0.5"",""7""]]","[[""0.55"",""1.25""]]"')


def test_cli_export_of_whale_activity_keeps_every_row(tmp_path: Path) -> None:
    db = asyncio.run(filled_sqlite(tmp_path / "v.db"))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", "--db", str(db), "export", "--table",
         "whale_activity", "--format", "parquet", "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "exported 40 whale_activity row(s)" in done.stdout
    assert "skipped" not in done.stdout + done.stderr
    frame = pd.read_parquet(out / "whale_activity")
    assert len(frame) == 40 and sum(frame["amount"]) == AMOUNT_SUM
