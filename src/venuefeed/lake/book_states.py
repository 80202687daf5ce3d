"""Every book state a replay went through: what a stored snapshot is checked against.

A snapshot the pipeline stores is the stream's book at that moment, stamped
with the receive time of the last event applied to it -- so which states get
stored depends on when the store was asked (batch boundaries, the persist
interval on the wall clock), but what a state *is* depends only on the frames
received up to its stamp. :class:`BookStates`, hooked into a replay
(:func:`venuefeed.lake.replay.replay`), keeps each distinct top-N state of
every book, as the store would keep it, keyed the way the store keys
snapshots; a snapshot from any run over the same frames -- the live one, a
replay, a client of the replay server -- is right if it is one of them.
"""

from __future__ import annotations

from typing import Any

from venuefeed.lake.replay import Replaying, TimeHook
from venuefeed.sinks.rows import snapshot_digest

__all__ = ["BookStates", "StateKey"]

StateKey = tuple[str, str, int | None, int, str]
"""venue, instrument, venue time (None: the venue sent none), sequence (-1: none), digest."""


class BookStates:
    """Top-``depth`` states of every replayed book (pass :meth:`hook` to ``replay``)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.states: dict[StateKey, list[dict[str, Any]]] = {}
        """Rows by the store's key: one key can hold several states (the same levels at
        the same venue time, received again later: the store keeps whichever came first)."""
        self.final: dict[tuple[str, str], dict[str, Any]] = {}
        """Each book's last state."""

    def hook(self, view: Replaying) -> TimeHook:
        seen: dict[tuple[str, str], int] = {}
        books = [(venue, instrument, stream) for venue, stream in view.streams.items()
                 for instrument in view.instruments.get(venue, ())]  # fmt: skip

        def on_time(ts: int) -> None:
            for venue, instrument, stream in books:
                book = stream.book(instrument)
                if book is None or not book.ts_recv or book.depth() == (0, 0):
                    continue
                if seen.get((venue, instrument)) == book.ts_recv:
                    continue
                seen[(venue, instrument)] = book.ts_recv
                self._keep(book.snapshot(self.depth))

        return on_time

    def _keep(self, snap: Any) -> None:
        digest = snapshot_digest(snap)
        sequence = -1 if snap.sequence is None else snap.sequence
        row = {
            "venue": snap.venue, "instrument": snap.instrument, "ts_venue": snap.ts_venue,
            "ts_recv": snap.ts_recv, "sequence": sequence, "checksum": snap.checksum,
            "digest": digest,
            "bids": [(lv.price, lv.size) for lv in snap.bids],
            "asks": [(lv.price, lv.size) for lv in snap.asks],
        }  # fmt: skip
        key = (snap.venue, snap.instrument, snap.ts_venue, sequence, digest)
        self.states.setdefault(key, []).append(row)
        self.final[(snap.venue, snap.instrument)] = row

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.states.values())

    def holds(self, key: StateKey, row: dict[str, Any], ignore: tuple[str, ...] = ()) -> bool:
        """Whether ``row`` (a stored snapshot) is one of the states, on every field but
        ``ignore``."""
        return any(
            all(row[f] == state[f] for f in row if f not in ignore)
            for state in self.states.get(key, ())
        )
