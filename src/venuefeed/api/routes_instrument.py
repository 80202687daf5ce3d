"""One instrument: its live ladder, recent trades, gap timeline and sync-state history.

``GET /api/v1/instruments/{venue}/{instrument}`` feeds the dashboard's
instrument page (``/instrument?venue=...&id=...``), reached from the live
events table. The ladder is the stream's own book, read when asked; the rest
is the service's recent history (:mod:`venuefeed.pipeline.history`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from venuefeed.api.deps import State, check_known

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])


@router.get("/api/v1/instruments/{venue}/{instrument}")
async def instrument(
    state: State,
    venue: str,
    instrument: str,
    depth: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """The instrument's book (top ``depth`` a side), recent trades, gaps and book states."""
    check_known(venue)
    service = state.service
    runner = service.runners.get(venue)
    history = service.history
    if (runner is None or instrument not in runner.instruments) and not history.knows(
        venue, instrument
    ):
        raise HTTPException(404, f"{venue} has no instrument {instrument!r}")
    book = runner.book(instrument) if runner is not None else None
    ladder = None
    if book is not None:
        ladder = {
            "ts_recv": book.ts_recv,
            "sequence": book.sequence,
            "bids": [[lv.price, lv.size] for lv in book.bids(depth)],
            "asks": [[lv.price, lv.size] for lv in book.asks(depth)],
            "levels": list(book.depth()),
        }
    label = state.catalog.label(venue, instrument)
    return {
        "venue": venue,
        "instrument": instrument,
        "title": label[0] if label else None,
        "outcome": label[1] if label else None,
        "state": service.pipeline.book_states.get((venue, instrument)),
        "book": ladder,
        **history.view(venue, instrument),
    }
