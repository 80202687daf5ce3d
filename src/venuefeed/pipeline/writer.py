"""Batches records into the sink: bounded memory, backpressure, and nothing lost on failure.

Records wait in two bounded deques: trades and everything else on the short
path, book snapshots, book deltas and raw frames on the bulk one. One task
drains whatever is waiting into a batch (up to ``batch_size``), the short
path first, and awaits the sink's durable write: a burst of stored books
never holds a trade back. Batches therefore grow by themselves under load
and stay small when traffic is light -- no linger timer adds latency. When
the deques are full, :meth:`SinkWriter.put` waits for room: intake slows
down instead of memory growing (rule 5), and each wait is counted.

Failures, as the sink classifies them (:mod:`venuefeed.sinks.base`, rule 6):

* A record the sink *proves* invalid is isolated by bisecting and set aside
  in the dead-letter store with its reason (:mod:`venuefeed.sinks.delivery`);
  its neighbours are stored.
* Anything else -- the sink unavailable, or an exception nobody classified --
  keeps the batch. It is written again with backoff until it is stored, while
  the deque fills and backpressure stops intake; :meth:`SinkWriter.problems`
  names the cause, since when, and how many records are held. Writing resumes
  by itself when the cause clears.

All of this is per batch: the pipeline hands over a batch at a time
(:meth:`offer_many`), one length check and an append per record.

Shutdown: :meth:`close` stores everything queued. If storage is stuck -- a
problem is reported and nothing moved for ``close_patience_seconds`` -- it
gives up, logging how many records are lost and why: a process that never
exits gets killed anyway, and then nobody learns what was lost. A sink that
is merely slow is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from venuefeed.log import get_logger
from venuefeed.metrics import (
    BACKPRESSURE_WAITS,
    INGESTION_ERRORS,
    SINK_FAILING,
    SINK_QUEUE,
    TRADE_LATENCY,
)
from venuefeed.models import BookDelta, BookSnapshot, Trade
from venuefeed.sinks.base import RawMessage, Record, Sink, failure_text
from venuefeed.sinks.deadletter import DeadLetterStore
from venuefeed.sinks.delivery import Delivery
from venuefeed.transport.backoff import Backoff

__all__ = ["SinkWriter"]

log = get_logger("venuefeed.writer")

_BULK: frozenset[type] = frozenset({BookSnapshot, BookDelta, RawMessage})
"""Records that wait behind the short path: bulky, and nobody waits on them to act."""


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class SinkWriter:
    def __init__(
        self,
        sink: Sink,
        *,
        max_pending: int = 10_000,
        batch_size: int = 500,
        on_stored: Callable[[Sequence[Record]], None] | None = None,
        dead_letters: DeadLetterStore | None = None,
        retry_max_seconds: float = 2.0,
        close_patience_seconds: float = 20.0,
    ) -> None:
        self.sink = sink
        self.dead_letters = dead_letters or sink.dead_letters or DeadLetterStore(None)
        self._pending: deque[Record] = deque()
        self._bulk: deque[Record] = deque()
        self._max = max_pending
        self._batch_size = batch_size
        self._retry_max = retry_max_seconds
        self.close_patience_seconds = close_patience_seconds
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._delivery: Delivery | None = None
        self._on_stored: list[Callable[[Sequence[Record]], None]] = []
        if on_stored is not None:
            self._on_stored.append(on_stored)
        self.stored = 0
        self.backpressure_waits = 0
        self.abandoned = 0
        """Records given up at shutdown because storage never took them (logged)."""
        self.last_error: str | None = None
        self.failing_since: float | None = None

    @property
    def rejected(self) -> int:
        """Records set aside as invalid in the dead-letter store."""
        return self.dead_letters.count

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._bulk)

    @property
    def held(self) -> int:
        """Records accepted but not yet durable: queued plus the batch being written."""
        delivery = self._delivery
        return self.pending + (delivery.remaining if delivery is not None else 0)

    def problems(self) -> list[str]:
        """Every storage problem right now, one line each; cheap (a few attribute reads)."""
        out: list[str] = []
        if self.failing_since is not None:
            out.append(
                f"storage: {self.last_error} (since {_utc(self.failing_since)}; "
                f"{self.held} records held)"
            )
        if self.pending >= self._max:
            out.append(f"storage: writer queue full ({self._max} records): intake is waiting")
        out.extend(self.sink.problems())
        out.extend(self.dead_letters.problems())
        return list(dict.fromkeys(out))

    def on_stored(self, listener: Callable[[Sequence[Record]], None]) -> None:
        """Call ``listener(batch)`` after each durable write (status, latency probes)."""
        self._on_stored.append(listener)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="venuefeed-sink-writer")

    def offer(self, record: Record) -> bool:
        """Queue ``record`` if there is room; False means the caller must ``await put``."""
        return self.offer_many((record,))

    def offer_many(self, records: Sequence[Record]) -> bool:
        """Queue all of ``records`` if there is room; False means ``await put_many``.

        Room means the queues are below ``max_pending``: a batch is taken whole,
        so they exceed it by at most one batch (still bounded, rule 5).
        """
        if len(self._pending) + len(self._bulk) >= self._max:
            return False
        pending, bulk = self._pending, self._bulk
        for record in records:
            (bulk if type(record) in _BULK else pending).append(record)
        self._idle.clear()
        self._wakeup.set()
        return True

    async def put(self, record: Record) -> None:
        await self.put_many((record,))

    async def put_many(self, records: Sequence[Record]) -> None:
        while not self.offer_many(records):
            self.backpressure_waits += 1
            BACKPRESSURE_WAITS.inc()
            self._room.clear()
            await self._room.wait()

    async def drain(self) -> None:
        """Wait until everything queued so far is durable (or set aside as invalid)."""
        while self.pending or not self._idle.is_set():
            await self._idle.wait()

    async def close(self) -> None:
        """Store everything queued, then stop the writer task (see the module docstring)."""
        if not await self._unless_stuck(self.drain()):
            await self._abandon()
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _unless_stuck(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Await ``work`` (the final drain) unless storage is stuck.

        Stuck means: a storage problem is reported (the writer failing, a spool
        full or unwritable) and nothing was stored, set aside or taken from the
        queue for ``close_patience_seconds``. Then ``work`` is cancelled and
        False returned. A sink that is slow but fine is waited for: its own
        deadline bounds each write.
        """
        task = asyncio.ensure_future(work)
        progress = self._progress()
        while True:
            done, _ = await asyncio.wait({task}, timeout=self.close_patience_seconds)
            if done:
                task.result()
                return True
            now = self._progress()
            if now == progress and (self.failing_since is not None or self.sink.problems()):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return False
            progress = now

    def _progress(self) -> tuple[int, int, int]:
        return (self.stored, self.rejected, self.held)

    async def _abandon(self) -> None:
        lost = self.held
        self.abandoned += lost
        problems = [self.last_error] if self.failing_since is not None else self.sink.problems()
        cause = "; ".join(p for p in problems if p) or "no progress"
        log.error("shutdown: storage did not take these records; they are lost",
                  records=lost, cause=cause)  # fmt: skip
        INGESTION_ERRORS.labels("*", "abandoned_at_shutdown").inc(lost)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.clear()
        self._bulk.clear()
        self._delivery = None
        self._idle.set()

    async def _run(self) -> None:
        backoff = Backoff(0.05, self._retry_max)
        pending, bulk = self._pending, self._bulk
        while True:
            if not pending and not bulk:
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [pending.popleft() for _ in range(min(self._batch_size, len(pending)))]
            if len(batch) < self._batch_size and bulk:
                room = min(self._batch_size - len(batch), len(bulk))
                batch.extend(bulk.popleft() for _ in range(room))
            SINK_QUEUE.set(len(pending) + len(bulk))
            self._room.set()
            delivery = self._delivery = Delivery(batch)
            while True:
                try:
                    await delivery.run(self.sink, self.dead_letters, self._stored)
                except Exception as exc:  # an outage or unclassified: keep the batch, retry
                    self._failed(exc)
                    await asyncio.sleep(backoff.next_delay())
                    continue
                break
            self._delivery = None
            if self.failing_since is not None:
                self._recovered()
                backoff.reset()

    def _failed(self, exc: Exception) -> None:
        text = failure_text(self.sink.name, exc)
        if self.failing_since is None or text != self.last_error:
            log.error("storage failing; the batch is held and retried",
                      error=text, held=self.held)  # fmt: skip
        if self.failing_since is None:
            self.failing_since = time.time()
            SINK_FAILING.labels(self.sink.name).set(1)
        self.last_error = text
        INGESTION_ERRORS.labels("*", "sink_unavailable").inc()

    def _recovered(self) -> None:
        assert self.failing_since is not None
        log.info("storage recovered", sink=self.sink.name,
                 after_s=round(time.time() - self.failing_since, 1))  # fmt: skip
        self.failing_since = None
        SINK_FAILING.labels(self.sink.name).set(0)

    def _stored(self, batch: Sequence[Record]) -> None:
        self.stored += len(batch)
        now = time.time_ns()
        for record in batch:
            if type(record) is Trade:
                TRADE_LATENCY.observe((now - record.ts_recv) / 1e9)
        for listener in self._on_stored:
            listener(batch)
