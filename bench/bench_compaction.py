"""What compaction does to a lake of small parts: files, bytes, and a query's time.

Run: ``PYTHONPATH=src python bench/bench_compaction.py``. Prints figures,
asserts nothing. The Parquet sink writes 400,000 trades (40 instruments, two
venues, half a day) in batches of 1,000, rolling parts every 1,000 rows -- about
what five-minute rolls leave after a day -- then the lake is compacted and the same DuckDB queries
run again (best of three).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import duckdb

from venuefeed.lake.compact import compact_lake
from venuefeed.models import Trade
from venuefeed.sinks.parquet import ParquetSink

T = 1_780_000_000_000_000_000
ROWS = 400_000


async def fill(root: Path) -> None:
    sink = ParquetSink(root, roll_rows=1_000)
    await sink.start()
    for start in range(0, ROWS, 1_000):
        await sink.write([
            Trade(venue="kalshi" if i % 2 else "polymarket", instrument=f"I{i % 40}",
                  ts_venue=T + i * 100_000_000, ts_recv=T + i * 100_000_000 + 5,
                  trade_id=f"t{i}", price=f"0.{10 + i % 89}", size=f"{1 + i % 500}.5",
                  side="buy" if i % 3 else "sell")
            for i in range(start, start + 1_000)
        ])  # fmt: skip
    await sink.close()


def lake_stats(root: Path) -> tuple[int, int]:
    files = list(root.rglob("*.parquet"))
    return len(files), sum(f.stat().st_size for f in files)


def timed(sql: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        duckdb.sql(sql).fetchall()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        asyncio.run(fill(root))
        then = time.time() - 7200
        for path in root.rglob("*.parquet"):
            os.utime(path, (then, then))
        glob = f"{root}/trades/**/*.parquet"
        queries = {
            "count + sum over all": (
                f"SELECT count(*), sum(price * size) FROM read_parquet('{glob}')"
            ),
            "one instrument's trades": (
                f"SELECT * FROM read_parquet('{glob}') WHERE instrument = 'I7' ORDER BY ts_venue"
            ),
        }
        files, size = lake_stats(root)
        before = {name: timed(sql) for name, sql in queries.items()}
        start = time.perf_counter()
        result = compact_lake(root, min_age_seconds=3600)
        took = time.perf_counter() - start
        files_after, size_after = lake_stats(root)
        print(f"{ROWS:,} trades, a roll every 1,000 rows")
        print(f"files   {files:6d} -> {files_after:6d}   bytes {size:,} -> {size_after:,}")
        print(f"compaction took {took:.2f} s ({result.rows_before / took:,.0f} rows/s)")
        for name, sql in queries.items():
            print(f"{name:26s} {before[name]:8.1f} ms -> {timed(sql):8.1f} ms")


if __name__ == "__main__":
    main()
