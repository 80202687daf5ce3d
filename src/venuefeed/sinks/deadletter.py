"""The dead-letter store: records a sink proved invalid, set aside with the reason.

Only a record a sink *proves* it can never store -- the batch failed with
:class:`~venuefeed.sinks.base.InvalidRecords` and bisecting isolated that one
record (:mod:`venuefeed.sinks.delivery`) -- comes here. Nothing else is ever
set aside: an infrastructure failure keeps the batch instead.

Why one append-only JSON-lines file rather than a table:

* **Independent of the sink that refused the record.** A value PostgreSQL
  refuses would likely be refused by a PostgreSQL dead-letter table too, and
  the buses and Parquet have no table at all. One file serves every sink.
* **Readable and replayable.** One line per record, ``jq``-friendly, with the
  sink, the reason and the record itself in its canonical JSON form (markets,
  watermarks and raw frames wrapped as in the spool), so
  :func:`read_dead_letters` turns every line back into the record -- to feed
  it again once the cause is fixed.
* **Durable like the spool.** Each line is fsynced before the bad record
  counts as handled; a failed append is cut back, never left torn.

Bounded (rule 5): past ``max_bytes`` the store refuses with
:class:`DeadLetterStoreFull`, an infrastructure condition like a full disk --
the batch is held and status says why -- so a systematic rejection (a bug
refusing every record of a kind) stops intake visibly instead of filling the
disk. Without a path (library use with a hand-built sink) entries are kept in
memory, bounded the same way by count.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import msgspec

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.sinks.base import Record
from venuefeed.sinks.journal import Wire, append_durably, from_wire, to_wire

__all__ = [
    "RECENT_SECONDS",
    "DeadLetter",
    "DeadLetterStore",
    "DeadLetterStoreFull",
    "read_dead_letters",
]

log = get_logger("venuefeed.deadletter")

RECENT_SECONDS = 900.0
"""For this long after a record was set aside, status lists it as a problem."""

_LOG_FIRST = 100
"""Every dead letter up to this many is logged; after that every thousandth (all are counted)."""


class DeadLetterStoreFull(OSError):
    """The dead-letter store reached its bound; the batch is held, not dropped."""


class DeadLetter(msgspec.Struct, frozen=True):
    """One line of the dead-letter file."""

    at: str
    """When it was set aside, UTC ISO 8601."""
    at_ns: int
    sink: str
    reason: str
    kind: str
    """The record's type (``Trade``, ``Market``...), for grepping."""
    record: Wire

    def to_record(self) -> Record:
        return from_wire(self.record)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(DeadLetter).decode


def read_dead_letters(path: str | Path) -> Iterator[DeadLetter]:
    """Every entry of a dead-letter file, oldest first."""
    with Path(path).open("rb") as f:
        for line in f:
            if line.strip():
                yield _decode(line)


class DeadLetterStore:
    """Where invalid records go (see the module docstring)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        max_memory: int = 10_000,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.max_bytes = max_bytes
        self.max_memory = max_memory
        self.memory: list[DeadLetter] = []
        """The entries, when there is no file."""
        self.count = 0
        """Records set aside by this process."""
        self.last_at: float | None = None
        self.last: str | None = None
        self._per_minute: deque[list[int]] = deque()
        """``[minute, records]`` for the recent minutes: bounded by the window, not by volume."""
        self._lock = threading.Lock()

    async def put(self, sink: str, reason: str, record: Record) -> None:
        """Set ``record`` aside durably; raises (OSError) if it cannot be kept."""
        now = time.time_ns()
        entry = DeadLetter(
            at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1e9)),
            at_ns=now,
            sink=sink,
            reason=reason,
            kind=type(record).__name__,
            record=to_wire(record),
        )
        if self.path is None:
            if len(self.memory) >= self.max_memory:
                raise DeadLetterStoreFull(f"dead-letter store full ({self.max_memory} records)")
            self.memory.append(entry)
        else:
            await asyncio.to_thread(self._append, _encode(entry) + b"\n")
        self.count += 1
        self.last_at = now / 1e9
        self.last = f"{sink}: {reason}"
        minute = int(self.last_at // 60)
        if self._per_minute and self._per_minute[-1][0] == minute:
            self._per_minute[-1][1] += 1
        else:
            self._per_minute.append([minute, 1])
        metrics.SINK_DEAD_LETTERS.labels(sink).inc()
        if self.count <= _LOG_FIRST or self.count % 1000 == 0:
            log.error(
                "record set aside as invalid",
                sink=sink, reason=reason, kind=entry.kind, total=self.count,
                dead_letters=str(self.path) if self.path else "memory",
            )  # fmt: skip

    def _append(self, line: bytes) -> None:
        assert self.path is not None
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size + len(line) > self.max_bytes:
                    raise DeadLetterStoreFull(
                        f"dead-letter file {self.path} is at its bound ({self.max_bytes} bytes)"
                    )
                append_durably(fd, line, size)
            finally:
                os.close(fd)

    def recent(self, now: float | None = None) -> int:
        """Records set aside within the last :data:`RECENT_SECONDS`."""
        horizon = ((now if now is not None else time.time()) - RECENT_SECONDS) // 60
        minutes = self._per_minute
        while minutes and minutes[0][0] < horizon:
            minutes.popleft()
        return sum(count for _, count in minutes)

    def problems(self) -> list[str]:
        count = self.recent()
        if not count:
            return []
        where = self.path if self.path is not None else "memory"
        minutes = int(RECENT_SECONDS // 60)
        return [
            f"storage: {count} record(s) set aside as invalid in the last {minutes} min "
            f"(dead letters in {where}); last: {self.last}"
        ]
