"""A bounded on-disk queue in front of a sink that may be unreachable.

:class:`SpoolingSink` wraps a network sink (PostgreSQL, Kafka, NATS). While
the sink answers, a batch goes straight through. When it raises
:class:`SinkUnavailable`, the batch is appended to an fsynced segment file
(:mod:`venuefeed.sinks.journal`) and ``write`` returns: the batch is durable
on disk, which is what rule 4 asks before acknowledging. A background task
replays the spool, oldest first, once the sink is back.

Order: while anything is spooled, new batches queue behind it instead of
overtaking it, so one writer's batches reach the sink in the order written.

Bounded (rule 5): at ``max_bytes`` on disk ``write`` waits until the drain
frees room -- backpressure towards the intake, counted in
``sink_spool_blocked_total`` and visible in :meth:`SpoolingSink.status`. A
single batch larger than the whole bound is let in when the spool is empty,
so it cannot wait forever.

Restart: segments left by a previous process are found on ``start`` and
replayed first. A segment is deleted only after all its batches were written
to the sink; a crash in between replays some batches twice, which the sink's
idempotent writes absorb.

A batch the sink rejects for another reason than being unreachable (a bug, a
record it cannot store) would block the queue forever; it is moved to a
``rejected-*.spool`` file beside the segments, logged and counted instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.models import DataGap
from venuefeed.sinks.base import Record, Sink, SinkUnavailable
from venuefeed.sinks.journal import Journal, decode_batch, encode_batch, read_frames

__all__ = ["SpoolingSink"]

log = get_logger("venuefeed.spool")
T = TypeVar("T")


@dataclass(slots=True)
class _Segment:
    path: Path
    frames: deque[int]
    """Size on disk of each frame not yet drained, oldest first."""
    offset: int = 0
    """Bytes of the file already drained."""


class SpoolingSink(Sink):
    """``inner`` plus an on-disk FIFO of the batches it could not take yet."""

    def __init__(
        self,
        inner: Sink,
        directory: str | Path,
        max_bytes: int,
        *,
        segment_bytes: int = 4 * 1024 * 1024,
        retry_min_seconds: float = 0.05,
        retry_max_seconds: float = 2.0,
        close_timeout_seconds: float = 5.0,
    ) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._retry_min = retry_min_seconds
        self._retry_max = retry_max_seconds
        self._close_timeout = close_timeout_seconds
        self._segments: deque[_Segment] = deque()
        self._tail: Journal | None = None
        self._next_number = 1
        self._bytes = 0
        self._batches = 0
        self._inner_started = False
        self._changed = asyncio.Condition()
        self._io = threading.Lock()
        """Serialises file work in worker threads (an asyncio lock would be released
        by a cancelled ``await to_thread(...)`` while its thread still runs)."""
        self._drainer: asyncio.Task[None] | None = None
        self._closing = False
        self.blocked_writers = 0
        self.blocked_total = 0
        self.last_error: str | None = None
        self.spooled_total = 0

    # -- Sink --------------------------------------------------------------

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._locked, self._load)
        self._publish_gauges()
        try:
            await self.inner.start()
            self._inner_started = True
        except SinkUnavailable as exc:
            self.last_error = str(exc)
            log.warning("sink unavailable at start; spooling", sink=self.name, error=str(exc))
        if self._batches:
            log.info("replaying spool", sink=self.name, batches=self._batches, bytes=self._bytes)
        self._drainer = asyncio.create_task(self._drain(), name=f"spool-drain-{self.name}")

    async def write(self, batch: Sequence[Record]) -> None:
        if not batch:
            return
        if self._batches == 0 and self._inner_started:
            try:
                await self.inner.write(batch)
                return
            except SinkUnavailable as exc:
                self.last_error = str(exc)
        await self._spool(encode_batch(batch))

    async def close(self) -> None:
        self._closing = True
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            async with self._changed:
                self._changed.notify_all()
            try:
                await asyncio.wait_for(asyncio.shield(drainer), self._close_timeout)
            except TimeoutError:
                drainer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drainer
                log.warning(
                    "spool not drained at close; it is replayed at the next start",
                    sink=self.name, batches=self._batches, bytes=self._bytes,
                )  # fmt: skip
        with self._io:
            if self._tail is not None:
                self._tail.close()
                self._tail = None
        if self._inner_started:
            await self.inner.close()
            self._inner_started = False

    async def read_watermarks(self, prefix: str) -> dict[str, str]:
        """The sink's watermarks, once the spool has drained into it (older ones otherwise).

        Raises :class:`SinkUnavailable` while the sink cannot be asked.
        """
        if not self._inner_started:
            raise SinkUnavailable(f"{self.name}: not reachable")
        return await self.inner.read_watermarks(prefix)

    async def read_open_gaps(self, venue: str) -> list[DataGap]:
        if not self._inner_started:
            raise SinkUnavailable(f"{self.name}: not reachable")
        return await self.inner.read_open_gaps(venue)

    def status(self) -> dict[str, Any]:
        """What an operator needs to see: is the sink reachable, how full is the spool."""
        return {
            "sink": self.name,
            "available": self._inner_started and self._batches == 0,
            "spooled_batches": self._batches,
            "spooled_bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "blocked_writers": self.blocked_writers,
            "blocked_total": self.blocked_total,
            "last_error": self.last_error,
        }

    # -- spooling ----------------------------------------------------------

    async def _spool(self, payload: bytes) -> None:
        size = len(payload) + 8
        async with self._changed:
            if self._bytes and self._bytes + size > self.max_bytes:
                self.blocked_writers += 1
                self.blocked_total += 1
                metrics.SPOOL_BLOCKED.labels(self.name).inc()
                try:
                    await self._changed.wait_for(
                        lambda: self._bytes == 0 or self._bytes + size <= self.max_bytes
                    )
                finally:
                    self.blocked_writers -= 1
            written = await asyncio.to_thread(self._locked, self._append, payload)
            self._bytes += written
            self._batches += 1
            self.spooled_total += 1
            self._publish_gauges()
            self._changed.notify_all()

    def _locked(self, work: Callable[..., T], *args: Any) -> T:
        with self._io:
            return work(*args)

    def _append(self, payload: bytes) -> int:
        if self._tail is None or self._tail.size >= self._segment_bytes:
            if self._tail is not None:
                self._tail.close()
            path = self.directory / f"seg-{self._next_number:012d}.spool"
            self._next_number += 1
            self._tail = Journal(path)
            self._segments.append(_Segment(path, deque()))
        written = self._tail.append(payload)
        self._segments[-1].frames.append(written)
        return written

    def _load(self) -> None:
        """Find segments a previous process left behind (oldest first)."""
        for path in sorted(self.directory.glob("seg-*.spool")):
            Journal(path).close()  # truncates a torn tail
            sizes: deque[int] = deque()
            previous = 0
            for end, _ in read_frames(path):
                sizes.append(end - previous)
                previous = end
            if not sizes:
                path.unlink()
                continue
            self._segments.append(_Segment(path, sizes))
            self._bytes += sum(sizes)
            self._batches += len(sizes)
            self._next_number = int(path.stem.split("-")[1]) + 1

    # -- draining ----------------------------------------------------------

    async def _drain(self) -> None:
        try:
            await self._drain_loop()
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("spool drain stopped", sink=self.name, error=self.last_error)
            raise

    async def _drain_loop(self) -> None:
        delay = self._retry_min
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._batches > 0 or self._closing)
                if self._batches == 0:
                    return
            if not await self._drain_one():
                if self._closing:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
            else:
                delay = self._retry_min

    async def _drain_one(self) -> bool:
        """Write the oldest spooled batch to the sink; False if the sink is still down."""
        if not self._inner_started:
            try:
                await self.inner.start()
            except SinkUnavailable as exc:
                self.last_error = str(exc)
                return False
            self._inner_started = True
            log.info("sink reachable again", sink=self.name)
        payload = await asyncio.to_thread(self._locked, _read_frame, self._segments[0])
        try:
            await self.inner.write(decode_batch(payload))
        except SinkUnavailable as exc:
            self.last_error = str(exc)
            return False
        except Exception as exc:  # a poison batch must not block the queue forever
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("spooled batch rejected by sink", sink=self.name, error=self.last_error)
            await asyncio.to_thread(self._locked, self._reject, payload)
        async with self._changed:
            freed = await asyncio.to_thread(self._locked, self._pop)
            self._bytes -= freed
            self._batches -= 1
            self._publish_gauges()
            self._changed.notify_all()
        return True

    def _reject(self, payload: bytes) -> None:
        journal = Journal(self.directory / f"rejected-{time.time_ns()}.spool")
        journal.append(payload)
        journal.close()

    def _pop(self) -> int:
        segment = self._segments[0]
        size = segment.frames.popleft()
        segment.offset += size
        if not segment.frames:
            if self._tail is not None and segment.path == self._tail.path:
                # The open tail is fully drained: start a fresh segment rather than grow it.
                self._tail.close()
                self._tail = None
            segment.path.unlink()
            self._segments.popleft()
        return size

    def _publish_gauges(self) -> None:
        metrics.SPOOL_BYTES.labels(self.name).set(self._bytes)
        metrics.SPOOL_BATCHES.labels(self.name).set(self._batches)


def _read_frame(segment: _Segment) -> bytes:
    with segment.path.open("rb") as f:
        f.seek(segment.offset)
        header = f.read(8)
        length = int.from_bytes(header[:4], "little")
        return f.read(length)
