"""Cross-venue pairs over HTTP: suggest, confirm, reject, list, and the live quotes.

Deciding a pair is a person's act, so it is a POST behind the token like
every other change; the running service re-reads confirmed pairs within
``pairs.refresh_seconds`` and starts quoting them.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from venuefeed.api.deps import State, require_token
from venuefeed.pairs.match import Mapping
from venuefeed.pairs.store import PairStore, Status
from venuefeed.pairs.suggestions import NoMarkets, suggest_from_store

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/pairs", tags=["pairs"])

PairId = Annotated[str, Path(max_length=400, description="kalshi ticker~polymarket market id")]


def _store(state: State) -> PairStore:
    return PairStore(state.service.settings.storage.sqlite_path)


@router.get("")
async def list_pairs(
    state: State, status: Annotated[Status | None, Query()] = None
) -> dict[str, Any]:
    """Stored pairs (suggested, confirmed, rejected), best score first."""
    pairs = await asyncio.to_thread(lambda: _store(state).all(status))
    return {"count": len(pairs), "pairs": pairs}


@router.get("/quotes")
async def quotes(state: State) -> dict[str, Any]:
    """The latest fee-adjusted quote of every confirmed pair, and pairs waiting for books."""
    return state.service.pairs.view()


@router.post("/suggest", dependencies=[Depends(require_token)])
async def suggest(
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    min_score: Annotated[float | None, Query(ge=0, le=100)] = None,
) -> dict[str, Any]:
    """Score stored Kalshi and Polymarket markets; store and return the candidates."""
    settings = state.service.settings.pairs

    def run() -> list[dict[str, Any]]:
        found = suggest_from_store(_store(state), settings, limit=limit, min_score=min_score)
        return [
            {"pair_id": c.pair_id, "score": c.score, "mapping": c.mapping,
             "kalshi_title": c.kalshi.title, "polymarket_title": c.polymarket.title}
            for c in found
        ]  # fmt: skip

    try:
        found = await asyncio.to_thread(run)
    except NoMarkets as exc:
        raise HTTPException(409, str(exc)) from None
    return {"count": len(found), "candidates": found}


async def _decide(
    state: State, pair_id: str, status: Status, mapping: Mapping | None = None
) -> dict[str, Any]:
    found = await asyncio.to_thread(lambda: _store(state).decide(pair_id, status, mapping))
    if not found:
        raise HTTPException(404, f"no pair {pair_id!r}: suggest first")
    return {"pair_id": pair_id, "status": status}


@router.post("/{pair_id}/confirm", dependencies=[Depends(require_token)])
async def confirm(
    state: State,
    pair_id: PairId,
    mapping: Annotated[Literal["yes_yes", "yes_no"] | None, Query()] = None,
) -> dict[str, Any]:
    """Confirm a suggested pair (``mapping`` overrides the suggested outcome mapping)."""
    return await _decide(state, pair_id, "confirmed", mapping)


@router.post("/{pair_id}/reject", dependencies=[Depends(require_token)])
async def reject(state: State, pair_id: PairId) -> dict[str, Any]:
    """Reject a pair: it is not suggested as a candidate again."""
    return await _decide(state, pair_id, "rejected")
