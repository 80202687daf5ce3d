"""``venuefeed writer``: the stream into the configured stores, exactly once at rest.

Every writer of a cluster pulls from ONE durable consumer
(``<cluster.name>-writers``), so the stream's messages are shared out among
however many writers run, and a message nobody acknowledged is delivered
again (after ``cluster.writer_ack_wait_seconds``) -- to any writer. That is
the whole crash story: a writer acknowledges a batch only after the stores
committed it ("nothing is acknowledged before it is durable"); killed in
between, the batch comes back, and the stores' natural keys make the second
write a no-op ("at-least-once in, exactly-once at rest"). The stores are
used without the local spool for that reason: redelivery is the spool.

**Fencing.** Each message carries the lease key and epoch it was published
under (:mod:`venuefeed.cluster.publisher`). Per batch, the writer reads the
fences and the current lease of every key in it, and per message decides:

* *refused*: a newer epoch took the key before this message entered the
  stream (:func:`~venuefeed.cluster.leases.superseded`) -- a stale owner's
  output; acknowledged and counted, never written;
* *later*: the key is held under a newer epoch whose fence is not recorded
  yet (the takeover is seconds from done) -- not acknowledged, delivered
  again shortly;
* *stored*: otherwise.

A message that is no record (:class:`~venuefeed.cluster.codec.Undecodable`)
is acknowledged, counted and logged with its subject: it can never be
stored, and it must not block the ones behind it. A record a store proves
invalid goes to the dead-letter store with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from venuefeed.cluster.codec import Undecodable, decode
from venuefeed.cluster.jetstream import Bus, connect
from venuefeed.cluster.leases import decode_fences, lease_epoch, superseded
from venuefeed.cluster.publisher import EPOCH_HEADER, LEASE_HEADER
from venuefeed.config import Settings
from venuefeed.log import get_logger
from venuefeed.metrics_port import MetricsPort
from venuefeed.sinks.base import InvalidRecords, Record, Sink
from venuefeed.sinks.deadletter import DeadLetterStore
from venuefeed.transport.backoff import Backoff

__all__ = ["ClusterWriter", "KeyState", "Verdict", "consumer_name", "judge"]

log = get_logger("venuefeed.cluster.writer")

_BUS_ERRORS = (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError)


def consumer_name(settings: Settings) -> str:
    return f"{settings.cluster.name}-writers"


@dataclass(frozen=True, slots=True)
class KeyState:
    fences: list[tuple[int, int]]
    epoch: int | None
    """The epoch holding the key now (None: nobody)."""


class Verdict:
    STORE = "store"
    REFUSE = "refuse"
    LATER = "later"


def judge(state: KeyState | None, epoch: int, sequence: int) -> str:
    """What to do with a message stamped ``epoch`` at stream ``sequence`` (module docstring)."""
    if state is None:
        return Verdict.STORE
    if superseded(state.fences, epoch, sequence):
        return Verdict.REFUSE
    newer = state.epoch is not None and state.epoch > epoch
    if newer and state.epoch not in {e for e, _ in state.fences}:
        return Verdict.LATER
    return Verdict.STORE


class ClusterWriter:
    """One writer process (see the module docstring)."""

    def __init__(self, settings: Settings, sink: Sink | None = None) -> None:
        self.settings = settings
        self.id = settings.cluster.worker_id
        self._sink = sink
        self.bus: Bus | None = None
        self.stored = 0
        self.refused = 0
        self.undecodable = 0
        self.redelivered = 0
        self.dead_lettered = 0
        self.batches = 0
        self.last_error: str | None = None
        self.last_batch_ns = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first."""
        from venuefeed.sinks.fanout import build_sinks

        settings = self.settings
        sink = self._sink or build_sinks(settings, spool=False)
        dead = DeadLetterStore(
            settings.storage.dead_letter_path, max_bytes=settings.storage.dead_letter_max_bytes
        )
        self.bus = bus = await connect(settings, client_name=f"venuefeed-writer-{self.id}")
        port = settings.metrics.port
        exposition = MetricsPort(settings.metrics.host, port) if port is not None else None
        try:
            await sink.start()
            sub = await bus.js.pull_subscribe(
                f"{bus.prefix}.>",
                durable=consumer_name(settings),
                stream=bus.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=settings.cluster.writer_ack_wait_seconds,
                    max_deliver=-1,
                    max_ack_pending=50_000,
                ),
            )
            heartbeat = asyncio.ensure_future(self._heartbeat_loop(stop))
            backoff = Backoff(0.2, 5.0)
            try:
                while not stop.is_set():
                    try:
                        msgs = await sub.fetch(settings.cluster.writer_batch, timeout=1)
                    except (TimeoutError, nats.errors.TimeoutError):
                        continue
                    except _BUS_ERRORS as exc:
                        self.last_error = f"fetch: {type(exc).__name__}: {exc}"
                        await asyncio.sleep(backoff.next_delay())
                        continue
                    try:
                        await self._handle(msgs, sink, dead)
                        backoff = Backoff(0.2, 5.0)
                    except Exception as exc:  # the store or the bus: not acked, comes back
                        self.last_error = f"{type(exc).__name__}: {exc}"
                        log.warning("batch not stored; it will be delivered again",
                                    error=self.last_error, messages=len(msgs))  # fmt: skip
                        for msg in msgs:
                            with contextlib.suppress(*_BUS_ERRORS):
                                await msg.nak(delay=1)
                        await asyncio.sleep(backoff.next_delay())
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
        finally:
            await sink.close()
            await bus.close()
            if exposition is not None:
                exposition.close()

    async def _key_states(self, keys: set[str]) -> dict[str, KeyState]:
        bus = self.bus
        assert bus is not None

        async def one(key: str) -> tuple[str, KeyState]:
            fences: list[tuple[int, int]] = []
            epoch: int | None = None
            with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                fences = decode_fences((await bus.state.get(f"fence.{key}")).value)
            with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                entry = await bus.leases.get(key)
                epoch = lease_epoch(entry.value, int(entry.revision or 0))
            return key, KeyState(fences, epoch)

        return dict(await asyncio.gather(*(one(k) for k in keys)))

    async def _handle(self, msgs: Sequence[Any], sink: Sink, dead: DeadLetterStore) -> None:
        stamps: list[tuple[str, int] | None] = []
        for msg in msgs:
            headers = msg.headers or {}
            key, epoch = headers.get(LEASE_HEADER), headers.get(EPOCH_HEADER, "")
            stamps.append((key, int(epoch)) if key and epoch.isdigit() else None)
        states = await self._key_states({s[0] for s in stamps if s is not None})
        records: list[Record] = []
        done: list[Any] = []
        for msg, stamp in zip(msgs, stamps, strict=True):
            meta = msg.metadata
            if meta.num_delivered > 1:
                self.redelivered += 1
            if stamp is not None:
                verdict = judge(states.get(stamp[0]), stamp[1], meta.sequence.stream)
                if verdict == Verdict.LATER:
                    await msg.nak(delay=0.5)
                    continue
                if verdict == Verdict.REFUSE:
                    self.refused += 1
                    done.append(msg)
                    continue
            try:
                records.append(decode(msg.data))
            except Undecodable as exc:
                self.undecodable += 1
                log.error("message is no record; acknowledged unstored",
                          subject=msg.subject, error=str(exc))  # fmt: skip
            done.append(msg)
        if records:
            await self._store(records, sink, dead)
        for msg in done:
            await msg.ack()
        self.batches += 1
        self.last_batch_ns = time.time_ns()

    async def _store(self, records: list[Record], sink: Sink, dead: DeadLetterStore) -> None:
        try:
            await sink.write(records)
        except InvalidRecords:
            # Which record? Write them one by one: the stores are idempotent.
            for record in records:
                try:
                    await sink.write([record])
                except InvalidRecords as exc:
                    self.dead_lettered += 1
                    await dead.put(sink.name, str(exc), record)
        self.stored += len(records)

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        """The writer's entry in the lease bucket (ages out if the writer dies): status."""
        bus = self.bus
        assert bus is not None
        while not stop.is_set():
            with contextlib.suppress(*_BUS_ERRORS):
                await bus.leases.put(f"writer.{self.id}", msgspec.json.encode(self.view()))
            await asyncio.sleep(max(0.5, self.settings.cluster.lease_ttl_seconds / 4))

    def view(self) -> dict[str, Any]:
        return {
            "holder": self.id,
            "stored": self.stored,
            "refused": self.refused,
            "undecodable": self.undecodable,
            "redelivered": self.redelivered,
            "dead_lettered": self.dead_lettered,
            "batches": self.batches,
            "last_batch_ns": self.last_batch_ns,
            "last_error": self.last_error,
        }
