"""`venuefeed export`: SQLite or PostgreSQL rows to the Parquet sink's layout, or CSV."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import pyarrow.dataset as ds
import pytest

from venuefeed.sinks.export import export, parse_since
from venuefeed.sinks.parquet import ParquetSink
from venuefeed.sinks.postgres import PostgresStore
from venuefeed.sinks.sqlite import SqliteStore

from .helpers import mixed_batch, require_postgres, trade

DAY2 = 1_700_086_400_000_000_000  # 2023-11-15T22:13:20Z


def late_trade(n: int) -> object:
    return trade(n).__class__(
        venue="pm", instrument="tok", ts_venue=DAY2 + n, ts_recv=DAY2 + n, trade_id=f"late{n}",
        price="0.123456789", size="1",
    )  # fmt: skip


async def filled_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "v.db"
    async with SqliteStore(path) as store:
        await store.write([*mixed_batch(1), trade(2), late_trade(1)])  # type: ignore[list-item]
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_parse_since() -> None:
    assert parse_since(None) == 0
    assert parse_since("2023-11-15") == 1_700_006_400_000_000_000
    assert parse_since("2023-11-15T00:00:01+01:00") == 1_700_002_801_000_000_000
    assert parse_since("123") == 123
    with pytest.raises(ValueError, match="not a date"):
        parse_since("yesterday")


async def test_sqlite_to_parquet_matches_the_sink_layout(tmp_path: Path) -> None:
    db = await filled_sqlite(tmp_path)
    result = await export("sqlite", "trades", None, "parquet", tmp_path / "out", sqlite_path=db)
    assert result.rows == 3 and result.exact_text == 0
    exported = ds.dataset(tmp_path / "out" / "trades", format="parquet", partitioning="hive")
    rows = sorted(exported.to_table().to_pylist(), key=lambda r: r["trade_id"])
    assert [(r["date"], r["trade_id"], r["price"]) for r in rows] == [
        ("2023-11-15", "late1", Decimal("0.123456789")),
        ("2023-11-14", "t1", Decimal("0.5")),
        ("2023-11-14", "t2", Decimal("0.5")),
    ]
    async with ParquetSink(tmp_path / "live") as sink:
        await sink.write([trade(1)])
    live = ds.dataset(tmp_path / "live" / "trades", format="parquet", partitioning="hive")
    assert live.schema == exported.schema


async def test_since_filters_on_event_time(tmp_path: Path) -> None:
    db = await filled_sqlite(tmp_path)
    out = tmp_path / "t.csv"
    result = await export("sqlite", "trades", "2023-11-15", "csv", out, sqlite_path=db)
    assert result.rows == 1
    (row,) = read_csv(out)
    assert row["trade_id"] == "late1" and row["price"] == "0.123456789" and row["venue"] == "pm"


async def test_postgres_to_parquet_and_csv(tmp_path: Path) -> None:
    url = require_postgres()
    pg_schema = f"vf_export_{uuid.uuid4().hex[:10]}"
    try:
        async with PostgresStore(url, pg_schema=pg_schema) as store:
            await store.write([*mixed_batch(1), trade(2, price="64000.00000001")])
        result = await export(
            "postgres", "trades", None, "parquet", tmp_path / "pq", database_url=url,
            pg_schema=pg_schema,
        )  # fmt: skip
        assert result.rows == 2
        table = ds.dataset(tmp_path / "pq" / "trades", format="parquet", partitioning="hive")
        prices = sorted(table.to_table(columns=["price"]).column(0).to_pylist())
        assert prices == [Decimal("0.5"), Decimal("64000.00000001")]
        await export(
            "postgres", "candles", "0", "csv", tmp_path / "c.csv", database_url=url,
            pg_schema=pg_schema,
        )  # fmt: skip
        (candle,) = read_csv(tmp_path / "c.csv")
        assert (candle["volume"], candle["closed"]) == ("12.125", "true")
        books = await export(
            "postgres", "book_snapshots", None, "parquet", tmp_path / "pq", database_url=url,
            pg_schema=pg_schema,
        )  # fmt: skip
        assert books.rows == 1
        table = ds.dataset(tmp_path / "pq" / "book_snapshots", format="parquet",
                           partitioning="hive")  # fmt: skip
        (snap,) = table.to_table().to_pylist()
        assert [(lv["price"], lv["size"]) for lv in snap["bids"]] == [
            (Decimal("0.52"), Decimal("5")), (Decimal("0.5"), Decimal("7"))
        ]  # fmt: skip
        assert [(lv["price"], lv["size"]) for lv in snap["asks"]] == [(Decimal("0.55"), 1)]
    finally:
        conn = await asyncpg.connect(url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE')
        await conn.close()


def test_cli_export(tmp_path: Path) -> None:
    db = asyncio.run(filled_sqlite(tmp_path))
    base = [sys.executable, "-m", "venuefeed.cli", "--db", str(db), "export"]
    done = subprocess.run(
        [*base, "--table", "book_deltas", "--format", "parquet", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "exported 3 book_deltas row(s)" in done.stdout
    csv_out = subprocess.run(
        [*base, "--table", "trades", "--format", "csv", "--out", "-", "--since", "2023-11-15"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert csv_out.stdout.splitlines()[1].startswith("pm,tok,late1,,0.123456789,1,")
    bad = subprocess.run([*base, "--table", "watermarks"], capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot export" in bad.stderr
