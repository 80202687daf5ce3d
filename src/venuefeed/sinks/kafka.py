"""Kafka: every event on a topic by kind, keyed by instrument, acknowledged by all replicas.

* **Order per instrument.** The message key is the instrument, so all of an
  instrument's events land in one partition in the order produced; the
  idempotent producer (``enable.idempotence``) keeps that order and drops its
  own duplicates across internal retries.
* **Durable before acknowledged.** ``acks=all``, and :meth:`KafkaSink.write`
  returns only once every message of the batch has a successful delivery
  report. One deadline covers the whole write -- queueing every message
  (librdkafka's local queue may be full) and every report -- at
  ``delivery_timeout`` plus five seconds; a failed or missing report raises
  :class:`SinkUnavailable`, and the batch is spooled and sent again.
* **Errors say what they are**: a message the broker refuses for its size or
  content is :class:`InvalidRecords`; retriable errors and timeouts are
  :class:`SinkUnavailable`; anything else (authorisation, say) is left
  unclassified -- the batch is kept and the error shown in status.
* **At-least-once on the bus.** A batch sent again after a timeout may
  already be partly in Kafka. Every message carries ``venuefeed-msg-id``, the
  record's natural-key id (:func:`venuefeed.sinks.keys.message_id`), so a
  consumer deduplicates exactly where it needs to.
* **One poll thread.** librdkafka serves delivery reports from ``poll()``; a
  dedicated thread polls and hands each batch's completion to the event loop,
  so the loop never blocks and many batches can be in flight at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.sinks import bus
from venuefeed.sinks.base import InvalidRecords, Record, Sink, SinkUnavailable
from venuefeed.sinks.keys import message_id, partition_key

__all__ = ["MSG_ID_HEADER", "KafkaDeliveryError", "KafkaSink"]

log = get_logger("venuefeed.kafka")

MSG_ID_HEADER = "venuefeed-msg-id"
TYPE_HEADER = "venuefeed-type"

_OUTAGE_CODES = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)


_INVALID_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
    }
)
"""Refusals caused by the message itself: retrying it can never succeed."""


def _msg_id(msg: Any) -> str | None:
    for name, value in msg.headers() or ():
        if name == MSG_ID_HEADER:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


class KafkaDeliveryError(Exception):
    """The broker refused a message for a reason that a retry will not fix."""


class _BatchAck:
    """Counts one batch's delivery reports (on the poll thread) and wakes its writer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.remaining = expected
        self.errors: list[tuple[KafkaError, str | None]] = []
        """Each failed message's error and its ``venuefeed-msg-id``."""
        self._lock = threading.Lock()

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        topic = msg.topic()
        if err is None:
            latency = msg.latency()
            if latency is not None:
                metrics.KAFKA_PUBLISH_LATENCY.labels(topic).observe(latency)
            metrics.KAFKA_DELIVERIES.labels(topic, "ok").inc()
            self.settle(None)
        else:
            metrics.KAFKA_DELIVERIES.labels(topic, "error").inc()
            self.settle((err, _msg_id(msg)))

    def settle(self, err: tuple[KafkaError, str | None] | None) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(err)
            self.remaining -= 1
            done = self.remaining == 0
        if done:
            self.loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class KafkaSink(Sink):
    """Publishes canonical events to Kafka (see the module docstring)."""

    name = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        fmt: bus.WireFormat = "json",
        topic_prefix: str = "",
        delivery_timeout: float = 30.0,
        close_timeout: float = 5.0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.timeout.ms": int(delivery_timeout * 1000),
            "error_cb": self._on_client_error,
            **(config or {}),
        }
        self._fmt: bus.WireFormat = fmt
        self._prefix = topic_prefix
        self._delivery_timeout = delivery_timeout
        self._close_timeout = close_timeout
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self.delivered = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        producer = Producer(self._config)
        try:
            # Fail fast (SinkUnavailable) when no broker answers, instead of at the first batch.
            await asyncio.to_thread(producer.list_topics, timeout=min(self._delivery_timeout, 10))
        except KafkaException as exc:
            raise SinkUnavailable(f"kafka: {exc}") from exc
        self._producer = producer
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll, args=(producer,), name="venuefeed-kafka-poll", daemon=True
        )
        self._poller.start()

    def _poll(self, producer: Producer) -> None:
        while not self._stop.is_set():
            producer.poll(0.05)

    def _on_client_error(self, err: KafkaError) -> None:
        self.last_error = str(err)

    async def write(self, batch: Sequence[Record]) -> None:
        producer = self._producer
        if producer is None:
            raise SinkUnavailable("kafka: not started")
        messages = [(t, r) for r in batch if (t := bus.topic_for(r)) is not None]
        if not messages:
            return
        ack = _BatchAck(asyncio.get_running_loop(), len(messages))
        try:
            async with asyncio.timeout(self._delivery_timeout + 5):
                for topic, record in messages:
                    await self._produce(producer, ack, self._prefix + topic, record)
                await asyncio.shield(ack.future)
        except TimeoutError:
            metrics.SINK_UNAVAILABLE.labels(self.name).inc()
            raise SinkUnavailable("kafka: no delivery report in time") from None
        if ack.errors:
            self._raise(ack.errors, [record for _, record in messages])
        self.delivered += len(messages)
        metrics.SINK_RECORDS.labels(self.name).inc(len(messages))

    async def _produce(self, producer: Producer, ack: _BatchAck, topic: str, r: Record) -> None:
        value = bus.encode(r, self._fmt)
        msg_id = message_id(r)
        headers: list[tuple[str, str | bytes | None]] = [
            (MSG_ID_HEADER, msg_id),
            (TYPE_HEADER, bus.type_tag(r)),
        ]
        key = partition_key(r).encode()
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=ack.on_delivery
                )
                return
            except BufferError:  # librdkafka's local queue is full: let it drain
                await asyncio.sleep(0.005)
            except KafkaException as exc:  # refused before it was queued (too large, say)
                ack.settle((exc.args[0], msg_id))
                return

    def _raise(self, errors: list[tuple[KafkaError, str | None]], sent: list[Record]) -> None:
        codes = [error.code() for error, _ in errors]
        first = errors[0][0]
        self.last_error = f"{first.name()}: {first.str()}"
        if all(
            c in _OUTAGE_CODES or e.retriable() for c, (e, _) in zip(codes, errors, strict=True)
        ):
            metrics.SINK_UNAVAILABLE.labels(self.name).inc()
            raise SinkUnavailable(f"kafka: {len(errors)} message(s) not delivered: {first}")
        if all(c in _INVALID_CODES for c in codes):
            # Every other message was delivered: name the refused ones, so that the
            # caller sets them aside without sending their neighbours again.
            by_id = {message_id(r): r for r in sent}
            refused = [by_id[i] for _, i in errors if i in by_id]
            named = refused if len(refused) == len(errors) else None
            raise InvalidRecords("kafka", f"{first.name()}: {first.str()}", named)
        raise KafkaDeliveryError(f"kafka refused {len(errors)} message(s): {first}")

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        # Bounded: anything not delivered was not acknowledged, so its batch is in the spool.
        remaining = await asyncio.to_thread(producer.flush, self._close_timeout)
        if remaining:
            log.warning("kafka messages not delivered at close", messages=remaining)
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, self._close_timeout)
            self._poller = None
