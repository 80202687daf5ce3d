"""Recent history per instrument, for the dashboard's instrument page.

The live hub hands every published event to :meth:`InstrumentHistory.observe`
(the event object itself: nothing is encoded). It keeps, per instrument, the
last trades, the sync-state changes of its book and the gaps that touched
it; a gap that covers a whole venue (a restart) is kept once per venue and
shown for each of its instruments. Everything is bounded: entries per
instrument, and instruments (the least recently active are forgotten).
History starts when the service starts; the stores keep the durable record.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from venuefeed.models import BookState, DataGap, Event, Trade

__all__ = ["InstrumentHistory"]

ALL = "*"


@dataclass(eq=False)
class _Entry:
    trades: deque[Trade] = field(default_factory=lambda: deque(maxlen=50))
    states: deque[BookState] = field(default_factory=lambda: deque(maxlen=100))
    gaps: OrderedDict[tuple[str, str, int], DataGap] = field(default_factory=OrderedDict)


class InstrumentHistory:
    def __init__(self, max_instruments: int = 10_000, max_gaps: int = 100) -> None:
        self.max_instruments = max_instruments
        self.max_gaps = max_gaps
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def observe(self, event: Event) -> None:
        kind = type(event)
        if kind is Trade:
            self._entry(event.venue, event.instrument).trades.append(event)  # type: ignore[arg-type]
        elif kind is BookState:
            self._entry(event.venue, event.instrument).states.append(event)  # type: ignore[arg-type]
        elif kind is DataGap:
            gap: DataGap = event  # type: ignore[assignment]
            scopes = set(gap.instruments)
            if not gap.instrument.startswith("conn:"):
                scopes.add(gap.instrument)
            for instrument in scopes:
                gaps = self._entry(gap.venue, instrument).gaps
                gaps[(gap.cause, gap.instrument, gap.start)] = gap  # healed: replaces the open one
                while len(gaps) > self.max_gaps:
                    gaps.popitem(last=False)

    def _entry(self, venue: str, instrument: str) -> _Entry:
        key = (venue, instrument)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            if len(self._entries) > self.max_instruments:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return entry

    def knows(self, venue: str, instrument: str) -> bool:
        return (venue, instrument) in self._entries

    def view(self, venue: str, instrument: str) -> dict[str, Any]:
        """Trades newest first; states and gaps oldest first (a timeline)."""
        entry = self._entries.get((venue, instrument)) or _Entry()
        venue_wide = self._entries.get((venue, ALL))
        gaps = list(entry.gaps.values()) + (list(venue_wide.gaps.values()) if venue_wide else [])
        gaps.sort(key=lambda g: g.start)
        return {
            "trades": [
                {"ts": t.ts_venue or t.ts_recv, "price": t.price, "size": t.size, "side": t.side}
                for t in reversed(entry.trades)
            ],
            "states": [
                {"ts": s.ts_recv, "state": s.state, "reason": s.reason} for s in entry.states
            ],
            "gaps": [
                {"cause": g.cause, "scope": g.instrument, "start": g.start, "end": g.end,
                 "healed": g.healed, "detail": g.detail}
                for g in gaps
            ],
        }  # fmt: skip
