"""NATS JetStream: the bus topics as subjects ``<prefix>.<topic>.<venue>``, deduplicated by id.

* **Stream created if missing** over ``<prefix>.>`` with a duplicate window,
  so a fresh server needs no setup. An existing stream is left as it is
  (operators may have tuned retention or replicas).
* **Durable before acknowledged.** Every message is published with a reply
  and :meth:`NatsSink.write` returns once JetStream acknowledged each one --
  i.e. the stream stored it. Publishes are pipelined (``publish_async``), so
  a batch costs about one round trip, not one per message.
* **Exactly once in the stream.** ``Nats-Msg-Id`` is the record's natural-key
  id (:func:`venuefeed.sinks.keys.message_id`); the server drops a repeat
  within ``duplicate_window``. A replay from the spool after an outage is
  therefore stored once -- provided the outage is shorter than the window
  (default ten minutes; raise it for longer spools).
* **One deadline per write**: ``ack_timeout`` bounds the whole batch --
  publishing and every acknowledgement -- and the first connect. Past it (a
  server or network that stalls without closing the socket) the batch is
  :class:`SinkUnavailable` and goes to the spool. A stalled connection is
  noticed by the client's pings (every ``ack_timeout``, at most three
  unanswered) and replaced by a fresh one.
* **Errors say what they are**: a message above the server's payload limit is
  :class:`InvalidRecords` (that record can never be published); no
  connection, a lost one, no responders or a missing ack are
  :class:`SinkUnavailable`; any other JetStream refusal is left unclassified
  (the batch is kept and the refusal shown in status).
* **Stamps** (optional): a ``stamp`` callable adds headers to each record's
  message -- the cluster's fencing token (:mod:`venuefeed.cluster.publisher`)
  -- or returns ``None`` to withhold a record this publisher may no longer
  publish (counted in ``withheld``).
* **Close is bounded** (``close_timeout``), else the socket is abandoned --
  a stalled server must not keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.sinks import bus
from venuefeed.sinks.base import InvalidRecords, Record, Sink, SinkUnavailable, Watermark
from venuefeed.sinks.keys import message_id

__all__ = ["NatsSink", "classify", "subject_for"]

log = get_logger("venuefeed.nats")

_OUTAGES: tuple[type[BaseException], ...] = (OSError, TimeoutError, nats.errors.Error)


def classify(exc: BaseException) -> BaseException:
    """The exception as the sink contract names it (:mod:`venuefeed.sinks.base`)."""
    if isinstance(exc, nats.errors.MaxPayloadError):
        return InvalidRecords("nats", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, nats.js.errors.APIError) and not isinstance(
        exc, nats.js.errors.ServiceUnavailableError
    ):
        return exc  # JetStream refused for a reason of its own: unclassified, kept
    if isinstance(exc, TimeoutError):
        return SinkUnavailable("nats: no acknowledgement in time (TimeoutError)")
    if isinstance(exc, _OUTAGES):
        return SinkUnavailable(f"nats: {type(exc).__name__}: {exc}")
    return exc


_SUBJECT_UNSAFE = str.maketrans({".": "_", " ": "_", "*": "_", ">": "_"})


def subject_for(prefix: str, record: Record) -> str | None:
    """``<prefix>.<topic>.<venue>``, or ``None`` for records that are not published."""
    topic = bus.topic_for(record)
    if topic is None or isinstance(record, Watermark):
        return None
    return f"{prefix}.{topic}.{record.venue.translate(_SUBJECT_UNSAFE)}"


class NatsSink(Sink):
    """Publishes canonical events to a JetStream stream (see the module docstring)."""

    name = "nats"

    def __init__(
        self,
        url: str | list[str],
        *,
        subject_prefix: str = "venuefeed",
        stream: str = "VENUEFEED",
        duplicate_window: float = 600.0,
        ack_timeout: float = 5.0,
        close_timeout: float = 5.0,
        fmt: bus.WireFormat = "json",
        stamp: Callable[[Record], Mapping[str, str] | None] | None = None,
    ) -> None:
        self._url = url
        self.subject_prefix = subject_prefix
        self.stream = stream
        self._duplicate_window = duplicate_window
        self._ack_timeout = ack_timeout
        self._close_timeout = close_timeout
        self._fmt: bus.WireFormat = fmt
        self._nc: Any = None
        self._js: Any = None
        self._stamp = stamp
        self.published = 0
        self.duplicates = 0
        self.withheld = 0

    async def start(self) -> None:
        nc = NATS()
        try:
            # The client retries a failed first connect forever; bound it here.
            await asyncio.wait_for(
                nc.connect(
                    self._url,
                    connect_timeout=max(1, math.ceil(self._ack_timeout)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    ping_interval=max(1, math.ceil(self._ack_timeout)),
                    max_outstanding_pings=3,
                    error_cb=self._on_error,
                    name="venuefeed",
                ),
                self._ack_timeout,
            )
            js = nc.jetstream(timeout=self._ack_timeout)
            async with asyncio.timeout(self._ack_timeout):
                await self._ensure_stream(js)
        except BaseException as exc:
            await self._close_client(nc)
            failure = classify(exc)
            if isinstance(failure, SinkUnavailable):
                raise failure from exc
            raise
        self._nc, self._js = nc, js

    async def _ensure_stream(self, js: Any) -> None:
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.subject_prefix}.>"],
                    duplicate_window=self._duplicate_window,
                )
            )
            log.info("nats stream created", stream=self.stream, prefix=self.subject_prefix)

    async def _on_error(self, exc: Exception) -> None:
        # Reconnects are the client's job; an outage surfaces as SinkUnavailable in write().
        log.debug("nats client error", error=f"{type(exc).__name__}: {exc}")

    async def write(self, batch: Sequence[Record]) -> None:
        js = self._js
        if js is None:
            raise SinkUnavailable("nats: not started")
        pending: list[asyncio.Future[Any]] = []
        try:
            # One deadline for the whole batch. (publish_async's own wait_stall would
            # wrap every publish in a task, and the client would then flush each
            # message on its own: ~7x slower.)
            async with asyncio.timeout(self._ack_timeout):
                for record in batch:
                    subject = subject_for(self.subject_prefix, record)
                    if subject is None:
                        continue
                    headers = {"Nats-Msg-Id": message_id(record)}
                    if self._stamp is not None:
                        stamp = self._stamp(record)
                        if stamp is None:
                            self.withheld += 1
                            continue
                        headers.update(stamp)
                    future = await js.publish_async(
                        subject, bus.encode(record, self._fmt), headers=headers
                    )
                    pending.append(future)
                if not pending:
                    return
                acks = await asyncio.gather(*pending)
        except BaseException as exc:
            for future in pending:
                future.cancel()  # releases the client's in-flight slots
            failure = classify(exc)
            if isinstance(failure, SinkUnavailable):
                metrics.SINK_UNAVAILABLE.labels(self.name).inc()
            if failure is exc:
                raise
            raise failure from exc
        duplicates = sum(1 for ack in acks if ack.duplicate)
        if duplicates:
            self.duplicates += duplicates
            metrics.NATS_DUPLICATES.labels(self.stream).inc(duplicates)
        self.published += len(acks)
        metrics.SINK_RECORDS.labels(self.name).inc(len(acks))

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            await self._close_client(nc)

    async def _close_client(self, nc: Any) -> None:
        """Close within ``close_timeout``, else abandon the socket.

        Not ``drain()``: it swallows cancellation and then flushes with a
        timeout of its own, so it cannot be bounded -- and there is nothing to
        drain, since every batch was acknowledged or is in the spool.
        """
        try:
            await asyncio.wait_for(nc.close(), self._close_timeout)
        except Exception as exc:  # a stalled server: do not wait for it
            error = f"{type(exc).__name__}: {exc}"
            log.warning("nats client did not close cleanly; socket dropped", error=error)
            _abort_socket(nc)


def _abort_socket(nc: Any) -> None:
    """Drop the client's TCP socket without flushing (a timed-out close can leave it open).

    nats-py has no public call for this; its TCP transport keeps the stream
    writer in ``_io_writer``. Missing attributes mean nothing is left to abort.
    """
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    if writer is not None:
        writer.transport.abort()
