"""Leases in a JetStream KV bucket with a TTL, and the fences that make them safe.

* **take** = ``create`` (only if the key is absent): the revision it returns is
  the lease's **epoch**, the fencing token the holder stamps on everything it
  publishes.
* **renew** = ``update`` on the last revision we wrote: fails if anyone else
  wrote the key, or if it aged out -- the bucket TTL deleted it because we did
  not renew in time. Either way the lease is **lost** and never renewed again.
* **release** = ``delete`` on the last revision (SIGTERM; a handover).

Local validity is judged on the monotonic clock from the moment the last
successful renewal was *sent*, minus a safety margin: the server's TTL
started later than that, so a holder always believes its lease gone before
the server lets anyone else take it. A process frozen by SIGSTOP wakes up to
a clock that has moved on, and stops publishing before it even asks.

**Fences.** Every take appends ``(epoch, stream sequence)`` to the key's fence
list in the state bucket: from that sequence on, messages stamped with an
older epoch of this key are stale. Writers check every message against it
(:func:`superseded`) -- "nothing is acknowledged before it is durable" has a
twin here: nothing from a superseded owner is written after its successor
took over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import nats.errors
import nats.js.errors

from venuefeed.cluster.jetstream import Bus
from venuefeed.log import get_logger

__all__ = ["FENCE_HISTORY", "Lease", "LeaseTable", "decode_fences", "lease_epoch", "superseded"]

log = get_logger("venuefeed.cluster.leases")

FENCE_HISTORY = 64
"""Fences kept per key: older ones concern messages long written or long refused."""

_LOST = (
    nats.js.errors.KeyWrongLastSequenceError,
    nats.js.errors.KeyNotFoundError,
    nats.js.errors.KeyDeletedError,
)


class _Value(msgspec.Struct):
    holder: str
    epoch: int = 0
    """0 in the value written by the take itself (its revision is the epoch)."""
    ns: int = 0


@dataclass(eq=False)
class Lease:
    """One lease this process holds."""

    key: str
    holder: str
    epoch: int
    revision: int
    renewed_at: float
    """Monotonic time the last successful renewal (or the take) was sent."""
    taken_ns: int

    def valid(self, now: float, ttl: float, margin: float) -> bool:
        return now < self.renewed_at + ttl - margin


def lease_epoch(value: bytes | None, revision: int) -> int:
    """The epoch of a lease entry (its own revision when written by the take)."""
    try:
        epoch = msgspec.json.decode(value or b"{}", type=_Value).epoch
    except (msgspec.DecodeError, msgspec.ValidationError):
        return revision
    return epoch or revision


def lease_holder(value: bytes | None) -> str | None:
    try:
        return msgspec.json.decode(value or b"{}", type=_Value).holder
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def decode_fences(value: bytes | None) -> list[tuple[int, int]]:
    """``[(epoch, sequence), ...]`` from a fence entry (empty when unreadable)."""
    try:
        pairs = msgspec.json.decode(value or b"[]", type=list[tuple[int, int]])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []
    return pairs


def superseded(fences: list[tuple[int, int]], epoch: int, sequence: int) -> bool:
    """Was a message stamped ``epoch`` at stream ``sequence`` published after a newer take?"""
    return any(newer > epoch and placed < sequence for newer, placed in fences)


class LeaseTable:
    """Take, renew and release leases for one holder."""

    def __init__(
        self,
        bus: Bus,
        holder: str,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.holder = holder
        self.ttl = ttl
        self.margin = max(0.5, ttl * 0.2)
        self._clock = clock

    def valid(self, lease: Lease) -> bool:
        return lease.valid(self._clock(), self.ttl, self.margin)

    def _value(self, epoch: int) -> bytes:
        return msgspec.json.encode(_Value(self.holder, epoch, time.time_ns()))

    async def take(self, key: str) -> Lease | None:
        """The lease on ``key`` if nobody holds it, fenced; None if someone does."""
        sent = self._clock()
        try:
            epoch = await self.bus.leases.create(key, self._value(0))
        except nats.js.errors.KeyWrongLastSequenceError:
            return None
        lease = Lease(key, self.holder, epoch, epoch, sent, time.time_ns())
        await self._fence(key, epoch)
        # The fence may have taken a while: the lease counts from the take's send time.
        return lease

    async def _fence(self, key: str, epoch: int) -> None:
        """Record that epochs older than ``epoch`` are stale after the stream's current end."""
        sequence = await self.bus.last_sequence()
        state = self.bus.state
        fence_key = f"fence.{key}"
        for _ in range(20):
            try:
                entry = await state.get(fence_key)
                fences, last = decode_fences(entry.value), int(entry.revision or 0)
            except nats.js.errors.KeyNotFoundError:
                fences, last = [], 0
            fences = [*fences, (epoch, sequence)][-FENCE_HISTORY:]
            try:
                if last:
                    await state.update(fence_key, msgspec.json.encode(fences), last=last)
                else:
                    await state.create(fence_key, msgspec.json.encode(fences))
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # a concurrent fence of another key's holder? retry on the new value
        raise RuntimeError(f"could not record the fence of {key}")

    async def renew(self, lease: Lease) -> bool:
        """Extend ``lease``; False when it is lost (taken over, or aged out)."""
        if not self.valid(lease):
            return False
        sent = self._clock()
        try:
            lease.revision = await self.bus.leases.update(
                lease.key, self._value(lease.epoch), last=lease.revision
            )
        except _LOST:
            return False
        lease.renewed_at = sent
        return True

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up now (only if it is still ours: delete on its last revision)."""
        try:
            await self.bus.leases.delete(lease.key, last=lease.revision)
        except (*_LOST, nats.errors.Error, TimeoutError) as exc:
            log.info("lease not released (already gone?)", key=lease.key, error=type(exc).__name__)
        lease.renewed_at = float("-inf")
