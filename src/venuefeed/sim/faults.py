"""The fault switches every simulator understands, each with exactly one meaning.

A switch means the same thing in every venue (ARCHITECTURE rule 9), so a
scenario written for one venue reads the same for another. Where a venue has
nothing a switch could act on (Polygon has no sequenced book), the switch does
nothing there, and the table below says so. Every fault that fires is written
to the ground truth under one name (:mod:`venuefeed.sim.truth`), so a test can
count what it injected.

======================== ====================================================
switch                   meaning
======================== ====================================================
http_429_rate            each REST request answers the venue's 429 with this
                         probability (``http_429``)
http_5xx_rate            each REST request answers 503 (``http_5xx``)
retry_after_seconds      the ``Retry-After`` sent with a 429, where the venue
                         sends one; None sends none
http_delay_seconds       every REST answer is delayed this long
disconnect_every_seconds every N seconds the venue closes *every* open
                         WebSocket at once (a restart, a load balancer cut;
                         ``ws_cut`` per socket)
silence_after_seconds    each WebSocket goes silent N seconds after it opened:
                         no data, no pings, no pongs, TCP stays open (a
                         half-open peer; ``ws_silence``)
malformed_rate           before each live data frame on each socket, a
                         garbled frame is sent with this probability
                         (``malformed_frame``)
duplicate_rate           each live data frame on each socket is sent twice
                         with this probability (``duplicate_frame``)
out_of_order_rate        each live data frame on each socket is held back and
                         sent after the next one (``out_of_order``)
skip_update_rate         each sequenced book update is not sent while its
                         sequence advances, so the client must see a gap
                         (``sequence_skip``); Polymarket, whose books carry
                         no sequence, changes the book without telling
                         anyone; Polygon has no book updates
stale_snapshot_rate      a REST book snapshot is older than updates already
                         streamed (Binance's ``lastUpdateId`` below the
                         buffered ``U``; ``stale_snapshot``); Binance only
======================== ====================================================

Rates are probabilities drawn from the simulator's seeded generator, so a
scenario replays identically. Switches can change while a simulator runs
(``POST /__sim/faults``, :mod:`venuefeed.sim.control`); the disconnect cadence
and the silence delay are read each time they are used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Faults"]


@dataclass(slots=True)
class Faults:
    """Fault switches, all off by default; a scenario turns on what it tests (see module)."""

    http_429_rate: float = 0.0
    http_5xx_rate: float = 0.0
    retry_after_seconds: float | None = 1.0
    http_delay_seconds: float = 0.0
    disconnect_every_seconds: float | None = None
    silence_after_seconds: float | None = None
    malformed_rate: float = 0.0
    duplicate_rate: float = 0.0
    out_of_order_rate: float = 0.0
    skip_update_rate: float = 0.0
    stale_snapshot_rate: float = 0.0

    @classmethod
    def from_spec(cls, spec: str) -> Faults:
        """Parse ``"http_429_rate=0.1,disconnect_every_seconds=5"`` (CLI ``--faults``)."""
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, raw = part.partition("=")
            values[key] = None if raw in ("", "none", "None") else raw
        faults = cls()
        faults.update(values)
        return faults

    def update(self, values: Mapping[str, Any]) -> None:
        """Set switches by name; an unknown name or a value that is not a number is refused.

        Nothing is changed unless every value is valid, so a half-applied
        update never leaves a scenario in a state nobody asked for.
        """
        names = {f.name for f in dataclasses.fields(self)}
        parsed: dict[str, float | None] = {}
        for key, raw in values.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(names))}")
            if raw is None:
                parsed[key] = None
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"fault {key}: {raw!r} is not a number") from None
            if value < 0 or value != value:
                raise ValueError(f"fault {key}: {raw!r} must be a number >= 0")
            if key.endswith("_rate") and value > 1:
                raise ValueError(f"fault {key}: {raw!r} is a probability (0..1)")
            parsed[key] = value
        for key, parsed_value in parsed.items():
            rate = key.endswith("_rate")
            setattr(self, key, 0.0 if parsed_value is None and rate else parsed_value)

    def as_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
