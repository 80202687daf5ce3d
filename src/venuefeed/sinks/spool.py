"""A bounded on-disk queue in front of a sink that may fail.

:class:`SpoolingSink` wraps every configured sink (:func:`~venuefeed.sinks.fanout.build_sinks`).
While the sink stores, a batch goes straight through. When it fails -- it is
unavailable, or it raised something nobody classified -- the batch is
appended to an fsynced segment file (:mod:`venuefeed.sinks.journal`) and
``write`` returns: the batch is durable on disk, which is what rule 4 asks
before acknowledging. A background task replays the spool, oldest first,
until the sink takes it again.

Invalid records: when the sink proves part of a batch invalid
(:class:`~venuefeed.sinks.base.InvalidRecords`), the batch is bisected and
only the refused records go to the dead-letter store
(:mod:`venuefeed.sinks.delivery`), on the direct path and on replay alike. A
replayed batch that fails half-way keeps its progress, so no record is set
aside twice.

Order: while anything is spooled, new batches queue behind it instead of
overtaking it, so one writer's batches reach the sink in the order written.

Bounded (rule 5): at ``max_bytes`` on disk ``write`` waits until the drain
frees room -- backpressure towards the intake, counted in
``sink_spool_blocked_total`` and reported by :meth:`SpoolingSink.problems`.
A single batch larger than the whole bound is let in when the spool is empty,
so it cannot wait forever.

The spool's own disk full (or failing): the append is cut back, nothing is
half-written, and ``write`` raises :class:`SinkUnavailable` naming both
causes -- the caller keeps the batch in memory and intake stops. Nothing
accepted is dropped, and status says why.

Restart: segments left by a previous process are found on ``start`` and
replayed first. A segment is deleted only after all its batches were written
to the sink; a crash in between replays some batches twice, which the sink's
idempotent writes absorb.
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

import msgspec

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.models import DataGap
from venuefeed.sinks.base import Record, Sink, SinkUnavailable, failure_text
from venuefeed.sinks.deadletter import DeadLetterStore
from venuefeed.sinks.delivery import Delivery
from venuefeed.sinks.journal import Journal, batch_length, decode_batch, encode_batch, read_frames

__all__ = ["FILLING_RATIO", "SpoolingSink"]

log = get_logger("venuefeed.spool")
T = TypeVar("T")

FILLING_RATIO = 0.8
"""Past this share of ``max_bytes`` the spool is reported as a problem before it blocks."""


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(slots=True)
class _Segment:
    path: Path
    frames: deque[tuple[int, int]]
    """``(size on disk, records)`` of each frame not yet drained, oldest first."""
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
        dead_letters: DeadLetterStore | None = None,
        segment_bytes: int = 4 * 1024 * 1024,
        retry_min_seconds: float = 0.05,
        retry_max_seconds: float = 2.0,
        close_timeout_seconds: float = 5.0,
    ) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self._dead_letters = dead_letters or inner.dead_letters or DeadLetterStore(None)
        self.dead_letters = self._dead_letters
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
        self._records = 0
        self._head: Delivery | None = None
        """The oldest spooled batch while it is being replayed (keeps bisect progress)."""
        self._inner_started = False
        self._changed = asyncio.Condition()
        self._io = threading.Lock()
        """Serialises file work and its bookkeeping in worker threads (an asyncio lock
        would be released by a cancelled ``await to_thread(...)`` while its thread runs)."""
        self._drainer: asyncio.Task[None] | None = None
        self._closing = False
        self.blocked_writers = 0
        self.blocked_total = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self.spool_error: str | None = None
        """Why the spool itself cannot append (its disk full, say), while that lasts."""
        self.spool_error_since: float | None = None
        self.undecodable = 0
        self.spooled_total = 0

    # -- Sink --------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._locked, self._load)
        self._publish_gauges()
        try:
            await self.inner.start()
            self._inner_started = True
        except SinkUnavailable as exc:
            self._failed(exc)
        if self._batches:
            log.info("replaying spool", sink=self.name, batches=self._batches, bytes=self._bytes)
        self._drainer = asyncio.create_task(self._drain(), name=f"spool-drain-{self.name}")

    async def write(self, batch: Sequence[Record]) -> None:
        if not batch:
            return
        if self._batches == 0 and self._inner_started:
            delivery = Delivery(batch)
            try:
                await delivery.run(self.inner, self._dead_letters)
            except Exception as exc:  # an outage or unclassified: the rest goes to disk
                self._failed(exc)
                batch = delivery.records()
            else:
                self._recovered()
                self._spool_usable()  # nothing needs it now; a stale complaint would mislead
                return
        await self._spool(batch)

    async def read_watermarks(self, prefix: str) -> dict[str, str]:
        """The inner sink's watermarks (spooled ones are not visible until replayed: older
        values, so a restart back-fills more, never less)."""
        if not self._inner_started:
            raise SinkUnavailable(f"{self.name}: not reachable; watermarks unknown")
        return await self.inner.read_watermarks(prefix)

    async def close(self) -> None:
        """Stop replaying within ``close_timeout_seconds``; the rest waits for the next start."""
        self._closing = True
        async with self._changed:
            self._changed.notify_all()  # releases writers waiting for room: they keep their batch
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(drainer), self._close_timeout)
            except TimeoutError:
                drainer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drainer
        if self._batches:
            log.warning(
                "spool not drained at close; it is replayed at the next start",
                sink=self.name,
                batches=self._batches,
                bytes=self._bytes,
                directory=str(self.directory),
            )
        with self._io:
            if self._tail is not None:
                self._tail.close()
                self._tail = None
        if self._inner_started:
            self._inner_started = False
            try:
                async with asyncio.timeout(self._close_timeout):
                    await self.inner.close()
            except Exception as exc:  # closing a broken connection must not fail the shutdown
                log.warning("sink did not close cleanly", sink=self.name,
                            error=failure_text(self.name, exc))  # fmt: skip

    async def read_open_gaps(self, venue: str) -> list[DataGap]:
        if not self._inner_started:
            raise SinkUnavailable(f"{self.name}: not reachable")
        return await self.inner.read_open_gaps(venue)

    def status(self) -> dict[str, Any]:
        """What an operator needs to see: is the sink storing, how full is the spool."""
        return {
            "sink": self.name,
            "available": self._inner_started and self.failing_since is None,
            "failing_since": self.failing_since,
            "spooled_batches": self._batches,
            "spooled_records": self._records,
            "spooled_bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "blocked_writers": self.blocked_writers,
            "blocked_total": self.blocked_total,
            "last_error": self.last_error,
            "spool_error": self.spool_error,
            "undecodable_batches": self.undecodable,
        }

    def problems(self) -> list[str]:
        out: list[str] = []
        held = f"{self._records} records in the spool" if self._batches else "nothing spooled"
        if self.failing_since is not None:
            out.append(f"storage: {self.last_error} (since {_utc(self.failing_since)}; {held})")
        if self.spool_error_since is not None:
            out.append(
                f"storage: {self.name} spool cannot write to {self.directory}: {self.spool_error} "
                f"(since {_utc(self.spool_error_since)}): batches are held in memory, "
                "intake stops when the writer queue is full"
            )
        if self.blocked_writers:
            out.append(
                f"storage: {self.name} spool full ({self._bytes} of {self.max_bytes} bytes, "
                f"{self._records} records): intake is waiting"
            )
        elif self._bytes > FILLING_RATIO * self.max_bytes:
            out.append(
                f"storage: {self.name} spool {100 * self._bytes // self.max_bytes} % full "
                f"({self._bytes} of {self.max_bytes} bytes, {self._records} records)"
            )
        if self.undecodable:
            out.append(
                f"storage: {self.name} spool: {self.undecodable} batch(es) could not be decoded; "
                f"kept in {self.directory}/undecodable-*.spool"
            )
        return out

    # -- failure state -------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        text = failure_text(self.name, exc)
        if self.failing_since is None or text != self.last_error:
            log.warning("sink failing; batches go to the spool", sink=self.name, error=text)
        if self.failing_since is None:
            self.failing_since = time.time()
            metrics.SINK_FAILING.labels(self.name).set(1)
        self.last_error = text

    def _recovered(self) -> None:
        if self.failing_since is None:
            return
        after = round(time.time() - self.failing_since, 1)
        log.info("sink storing again", sink=self.name, after_s=after, spooled=self._batches)
        self.failing_since = None
        metrics.SINK_FAILING.labels(self.name).set(0)

    def _spool_usable(self) -> None:
        if self.spool_error_since is not None:
            log.info("spool writable again", sink=self.name)
            self.spool_error = self.spool_error_since = None

    # -- spooling ----------------------------------------------------------

    async def _spool(self, batch: Sequence[Record]) -> None:
        payload = encode_batch(batch)
        size = len(payload) + 8
        async with self._changed:
            if self._bytes and self._bytes + size > self.max_bytes:
                self.blocked_writers += 1
                self.blocked_total += 1
                metrics.SPOOL_BLOCKED.labels(self.name).inc()
                try:
                    await self._changed.wait_for(
                        lambda: (
                            self._closing
                            or self._bytes == 0
                            or self._bytes + size <= self.max_bytes
                        )
                    )
                finally:
                    self.blocked_writers -= 1
            if self._closing:
                raise SinkUnavailable(f"{self.name}: spool closing; the batch was not spooled")
            try:
                await asyncio.to_thread(self._locked, self._append, payload, len(batch))
            except OSError as exc:
                if self.spool_error_since is None:
                    self.spool_error_since = time.time()
                    log.error(
                        "spool cannot write; batches are held in memory",
                        sink=self.name,
                        directory=str(self.directory),
                        error=str(exc),
                    )
                self.spool_error = str(exc)
                cause = self.last_error or f"{self.name}: queued behind the spool"
                raise SinkUnavailable(
                    f"{cause}; and its spool cannot take the batch: {exc}"
                ) from exc
            self._spool_usable()
            self.spooled_total += 1
            self._publish_gauges()
            self._changed.notify_all()

    def _locked(self, work: Callable[..., T], *args: Any) -> T:
        with self._io:
            return work(*args)

    def _append(self, payload: bytes, records: int) -> None:
        """Append one batch (all or nothing) and count it. Worker thread, under ``_io``."""
        if self._tail is None or self._tail.size >= self._segment_bytes:
            if self._tail is not None:
                self._tail.close()
                self._tail = None
            self.directory.mkdir(parents=True, exist_ok=True)  # only once something spools
            path = self.directory / f"seg-{self._next_number:012d}.spool"
            self._next_number += 1
            self._tail = Journal(path)
            self._segments.append(_Segment(path, deque()))
        written = self._tail.append(payload)
        self._segments[-1].frames.append((written, records))
        self._bytes += written
        self._batches += 1
        self._records += records

    def _load(self) -> None:
        """Find segments a previous process left behind (oldest first)."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("seg-*.spool")):
            Journal(path).close()  # truncates a torn tail
            frames: deque[tuple[int, int]] = deque()
            previous = 0
            for end, payload in read_frames(path):
                frames.append((end - previous, batch_length(payload)))
                previous = end
            self._next_number = int(path.stem.split("-")[1]) + 1
            if not frames:
                path.unlink()
                continue
            self._segments.append(_Segment(path, frames))
            self._bytes += sum(size for size, _ in frames)
            self._batches += len(frames)
            self._records += sum(records for _, records in frames)

    # -- draining ----------------------------------------------------------

    async def _drain(self) -> None:
        try:
            await self._drain_loop()
        except Exception as exc:  # a bug here must be seen, not end the replay silently
            self.last_error = failure_text(self.name, exc)
            self.failing_since = self.failing_since or time.time()
            log.error("spool replay stopped", sink=self.name, error=self.last_error)
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
        """Replay the oldest spooled batch; False if the sink did not take it (yet)."""
        if not self._inner_started:
            try:
                await self.inner.start()
            except Exception as exc:  # not reachable yet, or unclassified: try again later
                self._failed(exc)
                return False
            self._inner_started = True
            log.info("sink reachable again", sink=self.name)
        if self._head is None:
            payload = await asyncio.to_thread(self._locked, _read_frame, self._segments[0])
            try:
                self._head = Delivery(decode_batch(payload))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await asyncio.to_thread(self._locked, self._set_aside_undecodable, payload)
                self.undecodable += 1
                log.error("spooled batch cannot be decoded; kept aside", sink=self.name,
                          error=str(exc), directory=str(self.directory))  # fmt: skip
        if self._head is not None:
            try:
                await self._head.run(self.inner, self._dead_letters)
            except Exception as exc:
                self._failed(exc)
                return False
            self._head = None
            self._recovered()
        async with self._changed:
            await asyncio.to_thread(self._locked, self._pop)
            self._publish_gauges()
            self._changed.notify_all()
        return True

    def _set_aside_undecodable(self, payload: bytes) -> None:
        """A frame this version cannot read (a spool from another version): keep it, unread."""
        journal = Journal(self.directory / f"undecodable-{time.time_ns()}.spool")
        try:
            journal.append(payload)
        finally:
            journal.close()

    def _pop(self) -> None:
        segment = self._segments[0]
        size, records = segment.frames.popleft()
        segment.offset += size
        self._bytes -= size
        self._batches -= 1
        self._records -= records
        if not segment.frames:
            if self._tail is not None and segment.path == self._tail.path:
                # The open tail is fully drained: start a fresh segment rather than grow it.
                self._tail.close()
                self._tail = None
            segment.path.unlink()
            self._segments.popleft()

    def _publish_gauges(self) -> None:
        metrics.SPOOL_BYTES.labels(self.name).set(self._bytes)
        metrics.SPOOL_BATCHES.labels(self.name).set(self._batches)


def _read_frame(segment: _Segment) -> bytes:
    with segment.path.open("rb") as f:
        f.seek(segment.offset)
        header = f.read(8)
        length = int.from_bytes(header[:4], "little")
        return f.read(length)
