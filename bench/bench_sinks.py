"""Sink throughput: rows/s per sink for batches of trades and book deltas (not a test).

    PYTHONPATH=src python bench/bench_sinks.py [--rows 50000] [--batch 500]

Uses the machine's PostgreSQL (VENUEFEED_TEST_DATABASE_URL) and NATS
(VENUEFEED_TEST_NATS_URL) when they answer, librdkafka's mock cluster for
Kafka, and a temporary directory for SQLite and Parquet. PostgreSQL runs twice:
the COPY + staging path and plain ``executemany``, both idempotent. Each line
gives the wall rate and the CPU time per record of the whole process (every
thread): on a shared machine the second is the one to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from venuefeed.models import BookDelta, BookLevel, Trade
from venuefeed.sinks.base import Record, Sink

PG_URL = os.environ.get("VENUEFEED_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("VENUEFEED_TEST_NATS_URL", "nats://127.0.0.1:4222")
T0 = 1_700_000_000_000_000_000


def trades(n: int, run: str) -> list[Record]:
    return [
        Trade(venue="binance", instrument=f"S{i % 50}", ts_venue=T0 + i, ts_recv=T0 + i,
              trade_id=f"{run}-{i}", price=f"{64000 + i % 1000}.{i % 100:02d}",
              size="0.00123", side="buy")
        for i in range(n)
    ]  # fmt: skip


def deltas(n: int) -> list[Record]:
    return [
        BookDelta(venue="binance", instrument=f"S{i % 50}", ts_venue=T0 + i, ts_recv=T0 + i,
                  sequence=i, bids=[BookLevel(f"{64000 + i % 500}.1", "1.5")], asks=[])
        for i in range(n)
    ]  # fmt: skip


async def measure(name: str, sink: Sink, records: list[Record], batch: int) -> None:
    await sink.start()
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(records), batch):
            await sink.write(records[i : i + batch])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await sink.close()
    report(name, len(records), elapsed, cpu)


def report(name: str, count: int, elapsed: float, cpu: float) -> None:
    """Wall rate, and CPU per record (all threads): the figure that survives a busy machine."""
    print(f"{name:<36} {count / elapsed:>10,.0f} records/s  ({elapsed:.2f} s)"
          f"  {cpu / count * 1e6:6.2f} µs CPU/record")  # fmt: skip


class NullSink(Sink):
    """Stores nothing: what is left is the writer's own cost per record."""

    name = "null"

    async def write(self, batch: Sequence[Record]) -> None:
        return None


async def measure_writer(name: str, sink: Sink, records: list[Record], batch: int) -> None:
    """The pipeline's path: ``offer`` (``put`` when full) into a SinkWriter, then drain."""
    from venuefeed.pipeline.writer import SinkWriter

    await sink.start()
    writer = SinkWriter(sink, max_pending=10_000, batch_size=batch)
    writer.start()
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for record in records:
            if not writer.offer(record):
                await writer.put(record)
        await writer.close()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await sink.close()
    report(name, len(records), elapsed, cpu)


async def pg_case(copy_threshold: int) -> Callable[[], Awaitable[Sink]] | None:
    import asyncpg

    from venuefeed.sinks.postgres import PostgresStore

    try:
        conn = await asyncpg.connect(PG_URL, timeout=2)
    except OSError:
        return None
    await conn.close()
    schema = f"vf_bench_{uuid.uuid4().hex[:8]}"

    async def make() -> Sink:
        return PostgresStore(PG_URL, pg_schema=schema, copy_threshold=copy_threshold)

    return make


async def drop_bench_schemas() -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    for row in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'vf_bench_%'"):
        await conn.execute(f'DROP SCHEMA "{row[0]}" CASCADE')
    await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    n, batch = args.rows, args.batch
    print(f"{n} records per case, batches of {batch}")
    with tempfile.TemporaryDirectory() as tmp:
        from venuefeed.sinks.parquet import ParquetSink
        from venuefeed.sinks.spool import SpoolingSink
        from venuefeed.sinks.sqlite import SqliteStore

        await measure_writer("writer -> null sink", NullSink(), trades(4 * n, "w"), batch)
        await measure_writer(
            "writer -> sqlite trades", SqliteStore(Path(tmp) / "w.db"), trades(n, "w"), batch
        )
        spooled = SpoolingSink(SqliteStore(Path(tmp) / "s.db"), Path(tmp) / "spool", 1 << 28)
        await measure_writer("writer -> spool -> sqlite (service)", spooled, trades(n, "s"), batch)

        for kind, make in (("trades", trades), ("book deltas", lambda k: deltas(k))):
            records = make(n, "s") if kind == "trades" else make(n)  # type: ignore[call-arg]
            await measure(f"sqlite {kind}", SqliteStore(Path(tmp) / f"{kind}.db"), records, batch)
            await measure(f"parquet {kind}", ParquetSink(Path(tmp) / f"pq-{kind}"), records, batch)
            for label, threshold in (("COPY+staging", 1), ("executemany", 10**9)):
                factory = await pg_case(threshold)
                if factory is not None:
                    await measure(f"postgres {kind} {label}", await factory(), records, batch)
        with contextlib.suppress(OSError):
            await drop_bench_schemas()
    from confluent_kafka import Producer

    from venuefeed.sinks.kafka import KafkaSink

    holder = Producer({"test.mock.num.brokers": 3, "log_level": 0})
    brokers = ",".join(
        f"{b.host}:{b.port}" for b in holder.list_topics(timeout=10).brokers.values()
    )
    await measure("kafka trades (mock cluster)", KafkaSink(brokers, topic_prefix="bench."),
                  trades(n, "k"), batch)  # fmt: skip
    from venuefeed.sinks.nats import NatsSink

    stream = f"VFBENCH_{uuid.uuid4().hex[:8]}"
    sink = NatsSink(NATS_URL, subject_prefix=stream.lower(), stream=stream)
    try:
        await measure("nats trades (JetStream)", sink, trades(n, "n"), batch)
    finally:
        import nats

        nc = await nats.connect(NATS_URL)
        await nc.jetstream().delete_stream(stream)
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
