"""The ground truth: what a simulator did, in one vocabulary for every venue.

A test or the chaos suite compares what landed with this record. Every entry
is a JSON object with ``kind`` and ``ns`` (wall-clock time it happened); the
kinds below mean the same in every venue.

Market:
    ``trade``        the venue printed a trade, whether or not anyone was
                     connected (``instrument``, ``sent_ns``: when it printed,
                     plus the venue's own fields)
    ``final_book``   on stop, each instrument's book (``instrument``,
                     ``bids``/``asks``: canonical ``[price, size]`` best first)

Connections (``conn`` is the simulator's socket number):
    ``ws_open`` / ``ws_close``   a client WebSocket opened / ended (``ws_close``
                     also says how many frames were ``queued`` for it, ``sent``,
                     and ``unsent``: never written before it closed)
    ``ws_cut``       the venue closed a socket (``reason``: ``fault`` for the
                     disconnect switch or a scripted cut, ``slow_consumer``
                     when the client stopped reading and its outbox filled)
    ``ws_silence``   a socket went silent (no data, pings or pongs; TCP open)

Frames (``conn``):
    ``trade_undelivered``  a printed trade's frame was never written to this
                         socket (still queued, or refused, when it closed: a cut,
                         a slow consumer, the client leaving, the venue stopping);
                         ``token_id``, ``transaction_hash``
    ``sequence_skip``    a sequenced book update was not sent (``instrument``;
                         ``conn`` is None where the model skips for everyone)
    ``duplicate_frame``  a data frame was sent twice
    ``out_of_order``     a data frame was held back behind the next one
    ``malformed_frame``  a garbled frame was sent

REST:
    ``http_429`` / ``http_5xx``  an injected refusal (``path``)

Venue behaviours that are not fault switches keep their own names (a
Polymarket ``ping_before_subscribe``, a Kalshi ``pagination_failure``, a
Binance ``http_418``, ...); the venue module documents them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import msgspec

__all__ = ["CONNECTION_FAULTS", "FRAME_FAULTS", "GroundTruth"]

CONNECTION_FAULTS: Final = frozenset({"ws_cut", "ws_silence"})
FRAME_FAULTS: Final = frozenset(
    {"sequence_skip", "duplicate_frame", "out_of_order", "malformed_frame"}
)


@dataclass
class GroundTruth:
    """Everything a simulator did that a test may compare with what landed.

    Kept in memory for in-process tests (``keep=True``) and, with ``path``,
    appended to a JSON-lines file as it happens -- the record a separate
    process (``venuefeed sim --truth``, the chaos suite) reads. A long-running
    simulator writes the file only (``keep=False``), so its memory stays flat.
    Each line is flushed as written: a reader sees what happened up to now.
    """

    path: Path | None = None
    keep: bool = True
    trades: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    trade_count: int = 0
    _file: IO[bytes] | None = None

    def record_trade(self, trade: dict[str, Any]) -> None:
        entry = {"kind": "trade", "ns": time.time_ns(), **trade}
        self.trade_count += 1
        if self.keep:
            self.trades.append(trade)
        self._write(entry)

    def record(self, kind: str, **data: Any) -> None:
        entry = {"kind": kind, "ns": time.time_ns(), **data}
        if self.keep:
            self.events.append(entry)
        self._write(entry)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e["kind"] == kind)

    def _write(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = self.path.open("ab")
        self._file.write(msgspec.json.encode(entry) + b"\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
