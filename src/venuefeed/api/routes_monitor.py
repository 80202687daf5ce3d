"""Monitoring: status, the 5-minute metrics window, recent events, probes, Prometheus."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from venuefeed.api.deps import State
from venuefeed.api.views import metrics_view
from venuefeed.models import EVENT_TYPES

__all__ = ["EVENT_TYPE_NAMES", "router"]

EVENT_TYPE_NAMES: tuple[str, ...] = tuple(sorted(str(t.__struct_config__.tag) for t in EVENT_TYPES))

router = APIRouter(tags=["monitoring"])


@router.get("/api/status")
async def status(state: State) -> dict[str, Any]:
    """Healthy, uptime, per-venue WebSocket state and last event age, database, errors."""
    service = state.service
    return {**service.status(), "recent_errors": service.errors.recent(3600)[:20]}


@router.get("/api/metrics")
async def metrics(state: State) -> dict[str, Any]:
    """Rolling 5-minute window: events, rate, trades stored, G1/G3/G5, trade age, errors."""
    return metrics_view(state.service)


@router.get("/api/events")
async def events(
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    type: Annotated[
        list[str] | None,
        Query(description=f"Only these event types: {', '.join(EVENT_TYPE_NAMES)}."),
    ] = None,
) -> dict[str, Any]:
    """Recent live events, newest first."""
    types = _event_types(type)
    found = state.service.hub.recent(limit, offset, types)
    enrich = state.catalog.enrich
    return {"limit": limit, "offset": offset, "count": len(found),
            "events": [enrich(e) for e in found]}  # fmt: skip


def _event_types(types: list[str] | None) -> tuple[str, ...]:
    unknown = sorted(set(types or ()) - set(EVENT_TYPE_NAMES))
    if unknown:
        raise RequestValidationError([{
            "loc": ("query", "type"), "type": "value_error", "input": unknown,
            "msg": f"unknown event type(s) {unknown}; known: {list(EVENT_TYPE_NAMES)}",
        }])  # fmt: skip
    return tuple(types or ())


@router.get("/healthz")
async def healthz(state: State) -> dict[str, Any]:
    """Liveness: the process and its event loop answer."""
    return {"status": "ok", "uptime_s": state.service.status()["uptime_s"]}


@router.get("/readyz", responses={503: {"description": "Not ready; the body says why."}})
async def readyz(state: State) -> JSONResponse:
    """Ready only when storage is reachable and at least one venue is connected."""
    service = state.service
    if service.ready():
        return JSONResponse({"ready": True})
    reasons = []
    if not service.sink_ok:
        reasons.append("storage is not reachable")
    connected = [v["venue"] for v in service.venues_view() if v.get("state") == "connected"]
    if not connected:
        reasons.append("no venue is connected")
    return JSONResponse({"ready": False, "reasons": reasons}, status_code=503)


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus() -> PlainTextResponse:
    """Prometheus text exposition of every venuefeed metric."""
    return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
