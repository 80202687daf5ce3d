"""Batches records into the sink, with bounded memory and counted backpressure.

Records wait in a bounded deque; one task drains whatever is waiting into a
batch (up to ``batch_size``) and awaits the sink's durable write. Batches
therefore grow by themselves under load and stay single-record when traffic
is light -- no linger timer adds latency. When the deque is full,
:meth:`SinkWriter.put` waits for room: intake slows down instead of memory
growing (rule 5), and each wait is counted.

A batch the sink rejects as a whole is retried record by record, so one bad
record costs only itself (logged and counted), never its neighbours. An
unreachable sink (:class:`SinkUnavailable`) is retried with backoff while the
queue fills and backpressure takes over.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence

from venuefeed.log import get_logger
from venuefeed.metrics import BACKPRESSURE_WAITS, INGESTION_ERRORS, SINK_QUEUE, TRADE_LATENCY
from venuefeed.models import Trade
from venuefeed.sinks.base import Record, Sink, SinkUnavailable
from venuefeed.transport.backoff import Backoff

__all__ = ["SinkWriter"]

log = get_logger("venuefeed.writer")


class SinkWriter:
    def __init__(
        self,
        sink: Sink,
        *,
        max_pending: int = 10_000,
        batch_size: int = 500,
        on_stored: Callable[[Sequence[Record]], None] | None = None,
    ) -> None:
        self.sink = sink
        self._pending: deque[Record] = deque()
        self._max = max_pending
        self._batch_size = batch_size
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._on_stored: list[Callable[[Sequence[Record]], None]] = []
        if on_stored is not None:
            self._on_stored.append(on_stored)
        self.stored = 0
        self.rejected = 0
        self.backpressure_waits = 0
        self.last_error: str | None = None
        self._failing_since: float | None = None

    def problems(self) -> list[str]:
        """Storage trouble right now (the sink unreachable and the batch held), one line each."""
        if self._failing_since is None:
            return []
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._failing_since))
        return [f"storage: {self.last_error} (since {since}; {self.pending} records held)"]

    def on_stored(self, listener: Callable[[Sequence[Record]], None]) -> None:
        """Call ``listener(batch)`` after each durable write (status, latency probes)."""
        self._on_stored.append(listener)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="venuefeed-sink-writer")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def offer(self, record: Record) -> bool:
        """Queue ``record`` if there is room; False means the caller must ``await put``."""
        if len(self._pending) >= self._max:
            return False
        self._pending.append(record)
        self._idle.clear()
        self._wakeup.set()
        return True

    async def put(self, record: Record) -> None:
        while not self.offer(record):
            self.backpressure_waits += 1
            BACKPRESSURE_WAITS.inc()
            self._room.clear()
            await self._room.wait()

    async def drain(self) -> None:
        """Wait until everything queued so far is durable."""
        while self._pending or not self._idle.is_set():
            await self._idle.wait()

    async def close(self) -> None:
        """Flush everything queued, then stop the writer task."""
        await self.drain()
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        backoff = Backoff(0.05, 5.0)
        while True:
            if not self._pending:
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [
                self._pending.popleft() for _ in range(min(self._batch_size, len(self._pending)))
            ]
            SINK_QUEUE.set(len(self._pending))
            self._room.set()
            while True:
                try:
                    await self._write(batch)
                except SinkUnavailable as exc:
                    self.last_error = f"sink unavailable: {exc}"
                    if self._failing_since is None:
                        self._failing_since = time.time()
                    INGESTION_ERRORS.labels("*", "sink_unavailable").inc()
                    await asyncio.sleep(backoff.next_delay())
                    continue
                self._failing_since = None
                backoff.reset()
                break

    async def _write(self, batch: list[Record]) -> None:
        try:
            await self.sink.write(batch)
        except SinkUnavailable:
            raise
        except Exception as exc:
            if len(batch) == 1:
                self.rejected += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                INGESTION_ERRORS.labels(getattr(batch[0], "venue", "*"), "sink_rejected").inc()
                log.error("record rejected by sink", error=self.last_error,
                          record=type(batch[0]).__name__)  # fmt: skip
                return
            for record in batch:
                await self._write([record])
            return
        self.stored += len(batch)
        now = time.time_ns()
        for record in batch:
            if type(record) is Trade:
                TRADE_LATENCY.observe((now - record.ts_recv) / 1e9)
        for listener in self._on_stored:
            listener(batch)
