"""Ground truth against what landed: one venue, one store, one scenario."""

from __future__ import annotations

from dataclasses import dataclass, field

from venuefeed.chaos.landed import Landed
from venuefeed.chaos.truth import Truth

__all__ = ["VenueResult", "compare"]

BOOK_DEPTH = 10
"""Levels per side the service stores (``ingestion.book_depth``); books compare at this depth."""


@dataclass
class VenueResult:
    venue: str
    store: str
    emitted: int = 0
    stored: int = 0
    missing: int = 0
    missing_before_subscribe: int = 0
    """Of the missing: printed before the service's first socket opened (start-up back-fill)."""
    duplicated: int = 0
    """Trades stored more than once (a repeated row, or the same trade under two ids)."""
    connection_faults: int = 0
    sequence_skips: int = 0
    frame_faults: int = 0
    http_faults: int = 0
    gaps_detected: int | None = None
    gaps_healed: int | None = None
    gap_causes: dict[str, int] = field(default_factory=dict)
    books_equal: int | None = None
    books_total: int | None = None
    books_unequal: list[str] = field(default_factory=list)
    missing_examples: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.missing == 0 and self.duplicated == 0


def compare(truth: Truth, landed: Landed, store: str) -> VenueResult:
    r = VenueResult(truth.venue, store)
    r.connection_faults = truth.connection_faults
    r.sequence_skips = truth.sequence_skips
    r.frame_faults = sum(truth.frame_faults.values())
    r.http_faults = sum(truth.http_faults.values())
    seen: set[str] = set()
    for t in truth.trades:
        if t.ids[0] in seen:
            continue
        seen.add(t.ids[0])
        r.emitted += 1
        rows = sum(landed.trades.get((t.instrument, i), 0) for i in t.ids)
        if rows == 0:
            r.missing += 1
            if truth.first_open_ns is None or t.printed_ns < truth.first_open_ns:
                r.missing_before_subscribe += 1
            if len(r.missing_examples) < 5:
                r.missing_examples.append(f"{t.instrument}/{t.ids[0]}@{t.printed_ns}")
            continue
        r.stored += 1
        if rows > 1:
            r.duplicated += 1
    if landed.gaps is not None:
        r.gaps_detected = len(landed.gaps)
        r.gaps_healed = sum(1 for _, healed in landed.gaps if healed)
        for cause, _ in landed.gaps:
            r.gap_causes[cause] = r.gap_causes.get(cause, 0) + 1
    if landed.books is not None:
        followed = set(landed.books) | {t.instrument for t in truth.trades}
        expected = {i: b for i, b in truth.final_books.items() if i in followed}
        r.books_total = len(expected)
        r.books_equal = 0
        for instrument, (bids, asks) in sorted(expected.items()):
            if landed.books.get(instrument) == (bids[:BOOK_DEPTH], asks[:BOOK_DEPTH]):
                r.books_equal += 1
            else:
                r.books_unequal.append(instrument)
    return r
