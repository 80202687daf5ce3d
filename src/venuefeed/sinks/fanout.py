"""Several sinks at once, each at its own pace, and the factory for the configured set.

:class:`FanOut` gives every sink a lane: a bounded buffer of batches and its
own writer task. A slow sink fills only its own buffer; the others keep
writing. A writer that finds several batches waiting hands them to its sink
as one (fewer commits, fewer round trips).

When is a batch acknowledged? Rule 4 says nothing is acknowledged before it
is durable, so by default (``ack="all"``) :meth:`FanOut.write` returns once
every sink holds the batch durably -- committed, broker-acknowledged, or in
that sink's on-disk spool when it is down (:func:`build_sinks` puts a spool
in front of every network sink, so a sink that is *down* costs a disk append,
not a stall). The price: a sink that is up but slow sets the acknowledgement
pace once its buffer is full; the caller keeps several batches in flight to
hide the latency of the others.

``ack="primary"`` acknowledges once the durable stores (SQLite, PostgreSQL)
have the batch and lets the other sinks (buses, Parquet) trail behind within
their buffers. It is faster under a slow bus but weaker: a crash loses what
sat in those in-memory buffers for the trailing sinks -- nothing replays it
from the store. Choose it only where the buses are a best-effort feed.

When a lane fails, :meth:`FanOut.write` raises the failure that matters most:
an outage (or anything unclassified) before :class:`InvalidRecords`, so the
caller keeps the batch rather than bisecting it because of one sink's outage.
Bisecting through the fan-out re-writes the good halves to every sink, which
their idempotent writes absorb.

Closing is bounded: lanes get ``close_timeout_seconds`` to write what they
buffer, then each sink closes (bounded by itself).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal

from venuefeed import metrics
from venuefeed.config import Settings
from venuefeed.log import get_logger
from venuefeed.models import DataGap
from venuefeed.sinks.base import InvalidRecords, Record, Sink, failure_text
from venuefeed.sinks.deadletter import DeadLetterStore
from venuefeed.sinks.spool import SpoolingSink

__all__ = ["FanOut", "build_sinks"]

log = get_logger("venuefeed.fanout")

AckMode = Literal["all", "primary"]
PRIMARY_SINKS = frozenset({"sqlite", "postgres"})

_Item = tuple[Sequence[Record], asyncio.Future[None]]
_STOP = None


class _Lane:
    """One sink, its bounded buffer and its writer task."""

    def __init__(self, sink: Sink, buffer_batches: int, max_group_records: int) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[_Item | None] = asyncio.Queue(buffer_batches)
        self.max_group_records = max_group_records
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None

    def stop(self) -> None:
        """Finish what is buffered, then end (wakes a lane waiting on an empty buffer)."""
        self.stopping = True
        if not self.queue.full():
            self.queue.put_nowait(_STOP)

    async def run(self) -> None:
        while True:
            if self.stopping and self.queue.empty():
                return
            item = await self.queue.get()
            if item is _STOP:
                return
            group = [item]
            records = len(item[0])
            stop = False
            while records < self.max_group_records and not self.queue.empty():
                more = self.queue.get_nowait()
                if more is _STOP:
                    stop = True
                    break
                group.append(more)
                records += len(more[0])
            metrics.SINK_BUFFERED_BATCHES.labels(self.sink.name).set(self.queue.qsize())
            await self._write(group)
            if stop:
                return

    async def _write(self, group: list[_Item]) -> None:
        parts = [part for part, _ in group]
        batch = parts[0] if len(parts) == 1 else [r for part in parts for r in part]
        try:
            await self.sink.write(batch)
        except Exception as exc:
            self.errors += 1
            self.last_error = failure_text(self.sink.name, exc)
            if self.failing_since is None:
                self.failing_since = time.time()
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self.failing_since = None
        self.written += len(batch)
        for _, future in group:
            if not future.done():
                future.set_result(None)


class FanOut(Sink):
    """Writes every batch to every sink; see the module docstring for when it acknowledges."""

    name = "fanout"

    def __init__(
        self,
        sinks: Sequence[Sink],
        buffer_batches: int = 64,
        *,
        ack: AckMode = "all",
        primary: Collection[str] = PRIMARY_SINKS,
        max_group_records: int = 5000,
        dead_letters: DeadLetterStore | None = None,
        close_timeout_seconds: float = 5.0,
    ) -> None:
        if not sinks:
            raise ValueError("FanOut needs at least one sink")
        self.lanes = [_Lane(s, buffer_batches, max_group_records) for s in sinks]
        self.dead_letters = dead_letters
        self._close_timeout = close_timeout_seconds
        self.ack: AckMode = ack
        self._primary = frozenset(primary)
        if ack == "primary" and not any(s.name in self._primary for s in sinks):
            raise ValueError(f"ack='primary' needs one of {sorted(self._primary)} among the sinks")

    async def start(self) -> None:
        started: list[Sink] = []
        try:
            for lane in self.lanes:
                await lane.sink.start()
                started.append(lane.sink)
        except BaseException:
            for sink in reversed(started):
                await sink.close()
            raise
        for lane in self.lanes:
            lane.task = asyncio.create_task(lane.run(), name=f"fanout-{lane.sink.name}")

    async def write(self, batch: Sequence[Record]) -> None:
        if not batch:
            return
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for lane in self.lanes:
            future: asyncio.Future[None] = loop.create_future()
            await lane.queue.put((batch, future))
            metrics.SINK_BUFFERED_BATCHES.labels(lane.sink.name).set(lane.queue.qsize())
            if self.ack == "all" or lane.sink.name in self._primary:
                waits.append(future)
            else:
                future.add_done_callback(_log_trailing_failure)
        results = await asyncio.gather(*waits, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # An outage anywhere means "keep the batch", whatever another sink said.
            raise next((f for f in failures if not isinstance(f, InvalidRecords)), failures[0])

    async def close(self) -> None:
        lanes = [lane for lane in self.lanes if lane.task is not None]
        for lane in lanes:
            lane.stop()
        tasks = {lane.task for lane in lanes if lane.task is not None}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._close_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for lane in lanes:
            lane.task = None
            left = sum(len(item[0]) for item in _items(lane.queue))
            if left:  # ack="primary" lets trailing sinks lag: these were acknowledged
                log.error("sink closed before writing what it buffered; those records are "
                          "missing from it", sink=lane.sink.name, records=left)  # fmt: skip
        for lane in self.lanes:
            await lane.sink.close()

    async def read_watermarks(self, prefix: str) -> dict[str, str]:
        """From the first store that keeps watermarks (SQLite, PostgreSQL), primaries first."""
        for sink in self._readable():
            return await sink.read_watermarks(prefix)
        return {}

    async def read_open_gaps(self, venue: str) -> list[DataGap]:
        for sink in self._readable():
            return await sink.read_open_gaps(venue)
        return []

    def _readable(self) -> list[Sink]:
        sinks = [lane.sink for lane in self.lanes]
        return [s for s in sinks if s.name in PRIMARY_SINKS]

    def problems(self) -> list[str]:
        out: list[str] = []
        for lane in self.lanes:
            found = lane.sink.problems()
            if not found and lane.failing_since is not None:
                since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lane.failing_since))
                found = [f"storage: {lane.last_error} (since {since})"]
            out.extend(found)
        return out

    def status(self) -> dict[str, Any]:
        """Per sink: buffered batches, records written, errors, and its spool if any."""
        out: dict[str, Any] = {}
        for lane in self.lanes:
            entry: dict[str, Any] = {
                "buffered_batches": lane.queue.qsize(),
                "buffer_capacity": lane.queue.maxsize,
                "records_written": lane.written,
                "errors": lane.errors,
                "last_error": lane.last_error,
            }
            if isinstance(lane.sink, SpoolingSink):
                entry["spool"] = lane.sink.status()
            out[lane.sink.name] = entry
        return out


def _items(queue: asyncio.Queue[_Item | None]) -> list[_Item]:
    out: list[_Item] = []
    while not queue.empty():
        item = queue.get_nowait()
        if item is not None:
            out.append(item)
    return out


def _log_trailing_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("trailing sink failed a batch", error=str(future.exception()))


def build_sinks(settings: Settings, *, spool: bool = True) -> Sink:
    """The configured set of sinks: one sink, or a :class:`FanOut` of several.

    Every sink gets a :class:`SpoolingSink` in ``storage.spool_dir/<sink>``,
    bounded by ``storage.spool_max_bytes``: a network sink may be down, and a
    local one may be locked, out of space or failing I/O -- and when its disk
    is also the spool's, the spool reports that too and the writer holds the
    batch. All of them share one dead-letter store
    (``storage.dead_letter_path``).

    ``spool=False`` leaves the spools out: a cluster writer acknowledges a
    message only once the store itself committed it, and its redelivery is
    the spool (:mod:`venuefeed.cluster.writer`).
    """
    storage, bus = settings.storage, settings.bus
    dead_letters = DeadLetterStore(
        storage.dead_letter_path, max_bytes=storage.dead_letter_max_bytes
    )
    close_timeout = storage.close_timeout_seconds

    def spooled(sink: Sink) -> Sink:
        if not spool:
            return sink
        return SpoolingSink(
            sink,
            Path(storage.spool_dir) / sink.name,
            storage.spool_max_bytes,
            dead_letters=dead_letters,
            close_timeout_seconds=close_timeout,
        )

    sinks: list[Sink] = []
    for name in dict.fromkeys(storage.sinks):
        if name == "sqlite":
            from venuefeed.sinks.sqlite import SqliteStore

            sinks.append(spooled(SqliteStore(storage.sqlite_path)))
        elif name == "postgres":
            from venuefeed.sinks.postgres import PostgresStore, resolve_url

            url = storage.database_url.get_secret_value() if storage.database_url else None
            sinks.append(
                spooled(
                    PostgresStore(
                        resolve_url(url),
                        pg_schema=storage.postgres_schema,
                        pool_size=storage.postgres_pool_size,
                        write_timeout=storage.postgres_write_timeout_seconds,
                        close_timeout=close_timeout,
                    )
                )
            )
        elif name == "parquet":
            from venuefeed.sinks.parquet import ParquetSink

            sinks.append(
                spooled(
                    ParquetSink(
                        storage.parquet_root,
                        roll_rows=storage.parquet_roll_rows,
                        roll_seconds=storage.parquet_roll_seconds,
                        row_group_rows=storage.parquet_row_group_rows,
                    )
                )
            )
        elif name == "kafka":
            from venuefeed.sinks.kafka import KafkaSink

            if not bus.kafka_bootstrap_servers:
                raise ValueError("the kafka sink needs bus.kafka_bootstrap_servers")
            sinks.append(
                spooled(
                    KafkaSink(
                        bus.kafka_bootstrap_servers,
                        fmt=bus.kafka_format,
                        topic_prefix=bus.kafka_topic_prefix,
                        delivery_timeout=bus.kafka_delivery_timeout_seconds,
                        close_timeout=close_timeout,
                    )
                )
            )
        elif name == "nats":
            from venuefeed.sinks.nats import NatsSink

            if not bus.nats_url:
                raise ValueError("the nats sink needs bus.nats_url")
            sinks.append(
                spooled(
                    NatsSink(
                        bus.nats_url,
                        subject_prefix=bus.nats_subject_prefix,
                        stream=bus.nats_stream,
                        duplicate_window=bus.nats_duplicate_window_seconds,
                        ack_timeout=bus.nats_ack_timeout_seconds,
                        close_timeout=close_timeout,
                    )
                )
            )
    if len(sinks) == 1:
        return sinks[0]
    return FanOut(
        sinks,
        storage.fanout_buffer_batches,
        ack=storage.fanout_ack,
        dead_letters=dead_letters,
        close_timeout_seconds=close_timeout,
    )
