"""``venuefeed query``: DuckDB over the Parquet lake and the SQLite/PostgreSQL store alike.

The same records go to a store and to the lake; the same SQL must give the
same exact answers over both (the store is typed like the lake), offline.
"""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq
import pytest

from venuefeed.lake.query import Catalog, StoreSource
from venuefeed.models import BookLevel, BookSnapshot, Candle, DataGap, Trade
from venuefeed.sinks.base import Record, Sink
from venuefeed.sinks.parquet import ParquetSink
from venuefeed.sinks.postgres import PostgresStore
from venuefeed.sinks.sqlite import SqliteStore

from ..sinks.helpers import require_postgres

T = 1_780_000_000_000_000_000


def records() -> list[Record]:
    out: list[Record] = [
        Trade(venue="kalshi" if i % 2 else "polymarket", instrument=f"I{i % 3}", ts_venue=T + i,
              ts_recv=T + i + 5, trade_id=f"t{i}", price=f"0.{10 + i}", size=f"{i}.25", side="buy")
        for i in range(40)
    ]  # fmt: skip
    # Wider than decimal(38, 12): kept exactly, as text in _exact, in the lake and the store.
    out.append(Trade(venue="kalshi", instrument="I0", ts_venue=T, ts_recv=T, trade_id="wide",
                     price="0.1234567890123", size="1", side="sell"))  # fmt: skip
    out.extend(
        BookSnapshot(
            venue="polymarket", instrument="I1", ts_venue=T + i, ts_recv=T + 100 + i, sequence=i,
            bids=[BookLevel("0.5", str(10 + i)), BookLevel("0.49", "3")],
            asks=[BookLevel("0.52", "7")] if i != 1 else [],
        )
        for i in range(3)
    )  # fmt: skip
    out.append(Candle(venue="kalshi", instrument="I2", ts_venue=T, ts_recv=T, interval="1m",
                      open_time=T, close_time=T + 60 * 10**9, open="0.1", high="0.3", low="0.05",
                      close="0.2", volume="1000.5"))  # fmt: skip
    gap = DataGap(venue="kalshi", instrument="conn:0", ts_venue=0, ts_recv=T, cause="disconnect",
                  start=T - 10, end=T, instruments=("I0", "I1"))  # fmt: skip
    out.append(gap)
    return out


async def fill(sink: Sink) -> None:
    await sink.start()
    try:
        await sink.write(records())
    finally:
        await sink.close()


@pytest.fixture
async def lake_and_store(tmp_path: Path) -> tuple[Path, Path]:
    db, lake = tmp_path / "v.db", tmp_path / "parquet"
    await fill(SqliteStore(db))
    await fill(ParquetSink(lake))
    return lake, db


QUERIES = [
    "SELECT venue, count(*) AS n, sum(size) AS volume, min(price) AS low, max(price) AS high "
    "FROM {}trades GROUP BY venue ORDER BY venue",
    "SELECT trade_id, price, _exact FROM {}trades WHERE price IS NULL OR trade_id = 't3'"
    " ORDER BY trade_id",
    "SELECT instrument, ts_recv, sequence, bids, asks FROM {}books ORDER BY ts_recv",
    "SELECT instrument, open, high, low, close, volume FROM {}candles",
    "SELECT instrument, cause, start_ns, end_ns, instruments FROM {}gaps",
]


def run(catalog: Catalog, sql: str) -> list[dict[str, object]]:
    return catalog.run(sql).to_pylist()


async def test_the_same_sql_answers_the_same_over_lake_and_store(
    lake_and_store: tuple[Path, Path],
) -> None:
    lake, db = lake_and_store
    catalog = Catalog(lake, StoreSource("sqlite", sqlite_path=db))
    try:
        for template in QUERIES:
            lake_sql = template.format("lake.").replace("lake.books", "lake.book_snapshots")
            lake_sql = lake_sql.replace("lake.gaps", "lake.data_gaps")
            over_store = run(catalog, template.format(""))
            assert over_store == run(catalog, template.format("store.").replace(
                "store.gaps", "store.data_gaps"))  # fmt: skip
            assert over_store == run(catalog, lake_sql), template
            assert over_store, template
        volume = run(catalog, QUERIES[0].format(""))
        assert volume[0] == {"venue": "kalshi", "n": 21, "volume": Decimal("406.000000000000"),
                             "low": Decimal("0.11"), "high": Decimal("0.49")}  # fmt: skip
        wide = run(catalog, QUERIES[1].format(""))
        assert wide[1] == {"trade_id": "wide", "price": None,
                           "_exact": '{"price":"0.1234567890123"}'}  # fmt: skip
        books = run(catalog, QUERIES[2].format(""))
        assert books[0]["bids"] == [{"price": Decimal("0.5"), "size": Decimal("10")},
                                    {"price": Decimal("0.49"), "size": Decimal("3")}]  # fmt: skip
        assert books[1]["asks"] == []
        # Joins across the two work too: every stored trade is in the lake.
        missing = run(catalog, "SELECT count(*) AS n FROM store.trades s ANTI JOIN lake.trades l "
                               "USING (venue, instrument, trade_id)")  # fmt: skip
        assert missing == [{"n": 0}]
    finally:
        catalog.close()


def test_lake_only_and_store_only(lake_and_store: tuple[Path, Path]) -> None:
    lake, db = lake_and_store
    lake_only, store_only = (
        Catalog(lake, None),
        Catalog(None, StoreSource("sqlite", sqlite_path=db)),
    )
    sql = "SELECT count(*) AS n FROM trades"
    assert run(lake_only, sql) == run(store_only, sql) == [{"n": 41}]


def cli(db: Path, lake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env_lake = ["env", f"VENUEFEED_STORAGE__PARQUET_ROOT={lake}"]
    return subprocess.run(
        [*env_lake, sys.executable, "-m", "venuefeed.cli", "--db", str(db), "query", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_cli_prints_a_table_writes_csv_and_parquet_and_names_bad_sql(
    lake_and_store: tuple[Path, Path], tmp_path: Path
) -> None:
    lake, db = lake_and_store
    table = cli(db, lake, "SELECT venue, count(*) AS n FROM lake.trades GROUP BY 1 ORDER BY 1")
    assert table.returncode == 0, table.stderr
    assert "polymarket" in table.stdout and "20" in table.stdout
    csv_out = cli(db, lake, "SELECT trade_id, price FROM trades ORDER BY ts_recv LIMIT 2",
                  "--format", "csv")  # fmt: skip
    assert list(csv.reader(io.StringIO(csv_out.stdout))) == [
        ["trade_id", "price"],
        ["wide", ""],
        ["t0", "0.100000000000"],
    ]
    out = tmp_path / "q.parquet"
    done = cli(db, lake, "SELECT * FROM books", "--format", "parquet", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert pq.read_table(out).num_rows == 3
    bad = cli(db, lake, "SELECT nope FROM trades")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: query: Binder Error") and len(bad.stderr.splitlines()) == 1
    nothing = cli(tmp_path / "none.db", tmp_path / "none", "SELECT 1")
    assert nothing.returncode == 2 and "nothing to query" in nothing.stderr


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    url = require_postgres()
    name = f"vf_query_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def test_postgres_store_answers_like_sqlite(
    pg_schema: str, lake_and_store: tuple[Path, Path]
) -> None:
    url = require_postgres()
    await fill(PostgresStore(url, pg_schema=pg_schema))
    _, db = lake_and_store
    pg = Catalog(None, StoreSource("postgres", database_url=url, pg_schema=pg_schema))
    sqlite = Catalog(None, StoreSource("sqlite", sqlite_path=db))

    def both(sql: str) -> tuple[object, object]:
        return run(pg, sql), run(sqlite, sql)

    for template in QUERIES:
        a, b = await asyncio.to_thread(both, template.format(""))
        assert a == b and a, template
