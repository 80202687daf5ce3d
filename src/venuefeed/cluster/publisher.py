"""A worker's output: the NATS sink, with every message stamped by the lease that allows it.

Each record belongs to one lease (:meth:`Ownership.lease_key`): a market
to the planner's; an instrument's record to its shard's lease; a record about no single
instrument (a connection gap) to the shard of the first instrument it
names, else to the worker's membership lease. The stamp is two headers --
the lease key and its epoch -- that writers check against the fences
(:mod:`venuefeed.cluster.leases`).

The message id is the record's natural-key id *and the epoch*
(``<id>.<epoch>``): JetStream drops a repeat from the same owner, but not the
same record from the next owner. That matters: a frozen owner may still get
a message out after it woke up (it was stamped before the freeze), writers
refuse it -- and if it carried the plain id, it would have taken the place
of the successor's back-filled copy, which the server would then drop as a
duplicate: refused once, dropped once, stored never. Copies from two owners
are two messages and one row (the stores' natural keys).

A record whose lease this worker does not hold *right now* (by the local,
conservative clock) is withheld, not published: after a pause longer than
the lease, a frozen worker wakes up holding nothing, and what it had
buffered is the next owner's to back-fill -- from the completeness mark this
worker wrote while it still held the shard. (What was stamped in the instant
before the freeze still goes out when the process wakes: the writers'
fence check is what keeps it out of the stores.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from venuefeed.cluster.hashing import shard_of
from venuefeed.cluster.leases import Lease
from venuefeed.cluster.planner import PLANNER_KEY
from venuefeed.models import DataGap, Market
from venuefeed.sinks.base import Record
from venuefeed.sinks.keys import message_id

__all__ = ["EPOCH_HEADER", "LEASE_HEADER", "Ownership", "shard_key"]

LEASE_HEADER = "Venuefeed-Lease"
EPOCH_HEADER = "Venuefeed-Epoch"

_SHARD_PREFIX = "shard:"


def shard_key(venue: str, shard: int) -> str:
    """The lease (and state) key of one shard."""
    return f"shard.{venue}.{shard}"


class Ownership:
    """What this worker holds, and the stamp for each record it may publish."""

    def __init__(self, shards: int, member_key: str, valid: Callable[[Lease], bool]) -> None:
        self.shards = shards
        self.member_key = member_key
        self.held: dict[str, Lease] = {}
        self._valid = valid

    def lease_key(self, record: Record) -> str:
        venue = getattr(record, "venue", "")
        if isinstance(record, Market):
            return PLANNER_KEY  # markets come from discovery, which the planner runs
        instrument: str = getattr(record, "instrument", "")
        if isinstance(record, DataGap):
            if instrument.startswith(_SHARD_PREFIX) and instrument[len(_SHARD_PREFIX) :].isdigit():
                return shard_key(venue, int(instrument[len(_SHARD_PREFIX) :]))
            if record.instruments:
                instrument = record.instruments[0]
            elif not instrument or instrument == "*" or ":" in instrument:
                return self.member_key
        return shard_key(venue, shard_of(venue, instrument, self.shards))

    def stamp(self, record: Record) -> Mapping[str, str] | None:
        """The fencing headers for ``record``, or None: not ours to publish now."""
        lease = self.held.get(self.lease_key(record))
        if lease is None or not self._valid(lease):
            return None
        return {
            LEASE_HEADER: lease.key,
            EPOCH_HEADER: str(lease.epoch),
            "Nats-Msg-Id": f"{message_id(record)}.{lease.epoch}",
        }
