"""Keeping the Parquet lake healthy: many small parts become few large, sorted files.

The Parquet sink writes a part per partition every roll (five minutes by
default): hundreds of small files a day per table and venue, each a separate
open-and-read for every query. Compaction merges, per partition
(``<table>/venue=<v>/date=<d>/``), the parts smaller than ``target_bytes``
and older than ``min_age`` into one file that is

* zstd-compressed, in row groups of ``row_group_rows``;
* sorted by instrument, then event time (so a filter on an instrument reads
  a few row groups, by their statistics);
* free of repeated records (the same ``_id`` twice: the sink's memory of
  ids is bounded, replays can write a record again);
* stamped with the schema version in its metadata
  (``venuefeed.schema_version``, with ``venuefeed.sorted_by`` and the parts
  it replaced in ``venuefeed.compacted_from``).

Large files are left alone, so no byte is rewritten more than a few times.

**Crash safety.** The new file is written hidden, fsynced, renamed into
place, and only then are the parts it replaced deleted. A crash between the
rename and the deletes leaves both: the next run deletes every part a
compacted file names as replaced before anything else, so a duplicate never
outlives the next run. Runs exclude each other with a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from venuefeed import schema
from venuefeed.log import get_logger
from venuefeed.sinks.columnar import TIME_COLUMNS
from venuefeed.sinks.journal import fsync_dir

__all__ = ["SCHEMA_VERSION", "CompactionResult", "compact_lake"]

log = get_logger("venuefeed.lake.compact")

SCHEMA_VERSION = str(schema.MIGRATIONS[-1].version)
_REPLACED = b"venuefeed.compacted_from"


@dataclass
class CompactionResult:
    partitions: int = 0
    """Partitions that were compacted."""
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    rows_before: int = 0
    rows_after: int = 0
    leftovers_removed: int = 0
    """Parts an interrupted run had already replaced, deleted now."""
    skipped: str = ""
    """Why nothing was done (another run holds the lock)."""

    @property
    def duplicates(self) -> int:
        return self.rows_before - self.rows_after


def compact_lake(
    root: Path,
    *,
    min_age_seconds: float = 600.0,
    target_bytes: int = 128 * 2**20,
    row_group_rows: int = 128_000,
    now: float | None = None,
) -> CompactionResult:
    """Compact every partition under ``root`` (blocking; run it in a thread)."""
    result = CompactionResult()
    if not root.is_dir():
        return result
    with _locked(root) as held:
        if not held:
            result.skipped = "another compaction is running"
            return result
        cutoff = (time.time() if now is None else now) - min_age_seconds
        for partition in _partitions(root):
            result.leftovers_removed += _finish_interrupted(partition)
            parts = [
                p
                for p in sorted(partition.glob("part-*.parquet"))
                if _small_and_old(p, target_bytes, cutoff)
            ]
            if len(parts) < 2 and not (parts and not _compacted(parts[0])):
                continue
            _compact_partition(partition, parts, row_group_rows, result)
    return result


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[bool]:
    fd = os.open(root / "_compact.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _partitions(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.glob("*/venue=*/date=*")
        if p.is_dir() and not p.parts[-3].startswith(("_", "."))
    )


def _small_and_old(path: Path, target_bytes: int, cutoff: float) -> bool:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return stat.st_size < target_bytes and stat.st_mtime <= cutoff


def _metadata(path: Path) -> dict[bytes, bytes]:
    try:
        return dict(pq.read_schema(path).metadata or {})
    except (OSError, pa.ArrowInvalid):
        return {}


def _compacted(path: Path) -> bool:
    return _REPLACED in _metadata(path)


def _finish_interrupted(partition: Path) -> int:
    """Delete parts a compacted file says it replaced (a crash came before the deletes)."""
    removed = 0
    for path in partition.glob("part-*.parquet"):
        names = _metadata(path).get(_REPLACED)
        if names is None:
            continue
        for name in json.loads(names):
            leftover = partition / name
            if leftover.exists():
                leftover.unlink()
                removed += 1
    if removed:
        fsync_dir(partition)
        log.info("compaction: removed parts an interrupted run had replaced",
                 partition=str(partition), parts=removed)  # fmt: skip
    return removed


def _sort_keys(table: pa.Table, name: str) -> list[str]:
    keys = [c for c in ("instrument", "token_id", "key") if c in table.column_names][:1]
    times = [c for c in TIME_COLUMNS.get(name, ()) if c in table.column_names]
    return [*keys, *times[:1], *(["_id"] if "_id" in table.column_names else [])]


def _compact_partition(
    partition: Path, parts: list[Path], row_group_rows: int, result: CompactionResult
) -> None:
    table_name = partition.parts[-3]
    tables = [pq.read_table(p, partitioning=None) for p in parts]
    merged = pa.concat_tables(tables, promote_options="default")
    rows_before = merged.num_rows
    if "_id" in merged.column_names:
        merged = _first_of_each_id(merged)
    keys = _sort_keys(merged, table_name)
    if keys:
        merged = merged.sort_by([(k, "ascending") for k in keys])
    metadata = dict(merged.schema.metadata or {})
    metadata.update({
        b"venuefeed.schema_version": SCHEMA_VERSION.encode(),
        b"venuefeed.sorted_by": ",".join(keys).encode(),
        _REPLACED: json.dumps([p.name for p in parts]).encode(),
    })  # fmt: skip
    merged = merged.replace_schema_metadata(metadata)
    name = f"part-{time.time_ns()}-compact-{uuid.uuid4().hex[:8]}.parquet"
    final, temp = partition / name, partition / f".{name}.inprogress"
    try:
        pq.write_table(merged, temp, compression="zstd", row_group_size=row_group_rows)
        with temp.open("rb+") as fh:
            os.fsync(fh.fileno())
        temp.rename(final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(partition)
    bytes_before = sum(p.stat().st_size for p in parts)
    for part in parts:
        part.unlink()
    fsync_dir(partition)
    result.partitions += 1
    result.files_before += len(parts)
    result.files_after += 1
    result.bytes_before += bytes_before
    result.bytes_after += final.stat().st_size
    result.rows_before += rows_before
    result.rows_after += merged.num_rows


def _first_of_each_id(table: pa.Table) -> pa.Table:
    """Rows whose ``_id`` was not seen earlier in the table (rows without one are kept)."""
    ids = table.column("_id")
    indices = pa.array(range(table.num_rows), pa.int64())
    keyed = pa.table({"_id": ids, "i": indices})
    first = keyed.group_by("_id", use_threads=False).aggregate([("i", "min")])
    keep = first.filter(pc.is_valid(first.column("_id"))).column("i_min")
    missing = pc.is_null(ids)
    if pc.any(missing).as_py():
        keep = pa.concat_arrays([keep.combine_chunks(), pc.filter(indices, missing)])
    return table.take(pc.sort_indices(keep))
