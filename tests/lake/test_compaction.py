"""Lake compaction: small parts become one sorted, de-duplicated file per partition."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

from venuefeed.lake.compact import SCHEMA_VERSION, compact_lake
from venuefeed.models import BookLevel, BookSnapshot, Trade
from venuefeed.sinks.base import Record
from venuefeed.sinks.parquet import ParquetSink

T = 1_780_000_000_000_000_000
DAY = 86_400 * 10**9


def trades(start: int, count: int) -> list[Record]:
    return [
        Trade(venue="kalshi" if i % 3 else "polymarket", instrument=f"I{(i * 7) % 5}",
              ts_venue=T + (i % 2) * DAY + (1000 - i) * 1000, ts_recv=T + i,
              trade_id=f"t{i}", price=f"0.{10 + i % 80}", size="1.5", side="buy")
        for i in range(start, start + count)
    ]  # fmt: skip


async def small_parts(root: Path) -> None:
    """Many small parts, with records written twice across them (the sink forgets ids)."""
    sink = ParquetSink(root, roll_rows=40, dedup_ids=1)
    await sink.start()
    for start in range(0, 600, 60):
        await sink.write(trades(start, 60))
    await sink.write(trades(100, 50))  # a replay: 50 records already stored
    await sink.write([
        BookSnapshot(venue="kalshi", instrument=f"B{i % 2}", ts_venue=T, ts_recv=T + 10 - i,
                     sequence=i, bids=[BookLevel("0.4", str(i + 1))], asks=[])
        for i in range(6)
    ])  # fmt: skip
    await sink.close()


def age(root: Path, seconds: float) -> None:
    then = time.time() - seconds
    for path in root.rglob("*.parquet"):
        os.utime(path, (then, then))


def everything(root: Path) -> list[tuple[object, ...]]:
    return sorted(duckdb.sql(
        f"SELECT venue, date, instrument, trade_id, price, ts_venue FROM read_parquet("
        f"'{root}/trades/**/*.parquet', hive_partitioning = true)"
    ).fetchall())  # fmt: skip


async def test_compaction_merges_sorts_dedups_and_readers_agree(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    await small_parts(root)
    before = everything(root)
    unique = sorted(set(before))
    assert len(before) == 650 and len(unique) == 600
    parts_before = len(list(root.rglob("part-*.parquet")))

    young = compact_lake(root, min_age_seconds=3600)
    assert young.partitions == 0  # everything is younger than an hour: left alone
    age(root, 7200)
    result = compact_lake(root, min_age_seconds=3600)

    files = sorted(root.rglob("part-*.parquet"))
    partitions = {f.parent for f in files}
    assert len(files) == len(partitions) == result.files_after < parts_before
    assert result.files_before == parts_before and result.duplicates == 50
    assert everything(root) == unique  # the same rows, each once
    for path in files:
        meta = pq.read_schema(path).metadata
        assert meta[b"venuefeed.schema_version"] == SCHEMA_VERSION.encode()
        table = pq.read_table(path, partitioning=None)
        if "trades" in str(path):
            assert meta[b"venuefeed.sorted_by"] == b"instrument,ts_venue,_id"
            keys = list(zip(table.column("instrument").to_pylist(),
                            table.column("ts_venue").to_pylist(), strict=True))  # fmt: skip
            assert keys == sorted(keys)
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    # pandas, polars and DuckDB read the compacted lake alike.
    glob = f"{root}/trades/**/*.parquet"
    frame = pd.read_parquet(root / "trades")
    lazy = pl.scan_parquet(glob, hive_partitioning=True).collect()
    (counted,) = duckdb.sql(f"SELECT count(*), sum(price) FROM read_parquet('{glob}')").fetchall()
    assert len(frame) == lazy.height == counted[0] == 600
    assert str(frame["price"].sum()) == str(lazy["price"].sum()) == str(counted[1])

    again = compact_lake(root, min_age_seconds=3600)
    assert again.partitions == 0  # one compacted file per partition: nothing more to do


async def test_a_crash_between_rename_and_delete_leaves_no_duplicate_after_next_run(
    tmp_path: Path,
) -> None:
    root = tmp_path / "lake"
    await small_parts(root)
    saved = tmp_path / "saved"
    shutil.copytree(root, saved)
    age(root, 7200)
    compact_lake(root, min_age_seconds=3600)
    # Put the replaced parts back: what a crash before the deletes would have left.
    for part in saved.rglob("part-*.parquet"):
        target = root / part.relative_to(saved)
        shutil.copy2(part, target)
    assert len(everything(root)) > 600
    result = compact_lake(root, min_age_seconds=3600)
    assert result.leftovers_removed > 0
    assert everything(root) == sorted(set(everything(root))) and len(everything(root)) == 600


async def test_sink_restarts_over_a_compacted_lake_and_still_dedups(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    await small_parts(root)
    age(root, 7200)
    compact_lake(root, min_age_seconds=3600)
    sink = ParquetSink(root)
    await sink.start()  # reloads the ids it wrote from the compacted files
    await sink.write(trades(0, 600))
    await sink.close()
    assert len(everything(root)) == 600


def test_a_second_run_waits_its_turn(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    root.mkdir()
    import fcntl

    with (root / "_compact.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert compact_lake(root).skipped == "another compaction is running"
