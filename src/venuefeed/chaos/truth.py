"""Reading a simulator's ground truth (``venuefeed sim --truth FILE``) for one window.

The simulators write one vocabulary (:mod:`venuefeed.sim.truth`); what differs
per venue is only how a printed trade becomes the id the client stores, which
:func:`trade_ids` knows -- using the venue's own parse functions, so the
harness cannot disagree with the client about what "the same trade" means.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from venuefeed.sim.base import Book
from venuefeed.venues.binance.parse import AGG_TRADE_ID_PREFIX
from venuefeed.venues.polymarket import parse as pm_parse

__all__ = ["Truth", "TruthTrade", "read_truth", "trade_ids"]


@dataclass(frozen=True, slots=True)
class TruthTrade:
    instrument: str
    ids: tuple[str, ...]
    """Every id the client may store this trade under (first: the live stream's)."""
    printed_ns: int


@dataclass
class Truth:
    """What one simulator did inside the window."""

    venue: str
    trades: list[TruthTrade] = field(default_factory=list)
    connection_faults: int = 0
    """``ws_cut`` (fault) and ``ws_silence`` while a client was connected."""
    sequence_skips: int = 0
    """Book updates withheld from a listening client."""
    frame_faults: dict[str, int] = field(default_factory=dict)
    http_faults: dict[str, int] = field(default_factory=dict)
    final_books: dict[str, Book] = field(default_factory=dict)
    first_open_ns: int | None = None
    """When the first client socket opened in the window (the service subscribed)."""


def trade_ids(venue: str, t: dict[str, Any]) -> tuple[str, ...]:
    """The ids the client stores a ground-truth trade under."""
    if venue == "polymarket":
        return (pm_parse.trade_id(t["token_id"], t["side"].lower(), t["size"], t["price"],
                                  t["transaction_hash"]),)  # fmt: skip
    if venue == "binance":
        # Live ``@aggTrade`` and REST aggTrades give "a<id>"; ``@trade`` gives the trade id.
        return (f"{AGG_TRADE_ID_PREFIX}{t['agg_id']}", str(t["trade_id"]))
    return (str(t["trade_id"]),)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("rb") as handle:
        for line in handle:
            try:
                entry = msgspec.json.decode(line)
            except msgspec.DecodeError:  # a line cut by a kill: the rest is still good
                continue
            if isinstance(entry, dict):
                yield entry


def read_truth(venue: str, path: Path, start_ns: int, end_ns: int) -> Truth:
    """The trades printed and faults injected in ``[start_ns, end_ns]``, and the final books."""
    truth = Truth(venue)
    for e in _lines(path):
        kind, ns = e.get("kind"), e.get("ns", 0)
        if kind == "final_book":
            truth.final_books[e["instrument"]] = (
                [tuple(level) for level in e["bids"]],
                [tuple(level) for level in e["asks"]],
            )
            continue
        if not start_ns <= ns <= end_ns:
            continue
        if kind == "trade":
            printed = int(e.get("sent_ns", ns))
            truth.trades.append(TruthTrade(e["instrument"], trade_ids(venue, e), printed))
        elif kind == "ws_open" and truth.first_open_ns is None:
            truth.first_open_ns = ns
        elif kind == "ws_silence" or (kind == "ws_cut" and e.get("reason") == "fault"):
            truth.connection_faults += 1
        elif kind == "sequence_skip":
            heard = e.get("conn") is not None or e.get("listeners", 0) > 0
            truth.sequence_skips += int(heard)
        elif kind in ("duplicate_frame", "out_of_order", "malformed_frame"):
            truth.frame_faults[kind] = truth.frame_faults.get(kind, 0) + 1
        elif kind in ("http_429", "http_5xx"):
            truth.http_faults[kind] = truth.http_faults.get(kind, 0) + 1
    return truth
