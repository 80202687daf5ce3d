"""Monitoring: status, the 5-minute metrics window, recent events, probes, Prometheus."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from venuefeed.api.deps import State
from venuefeed.api.views import metrics_view
from venuefeed.models import EVENT_TYPES

__all__ = ["EVENT_TYPE_NAMES", "UNHEALTHY", "router"]

EVENT_TYPE_NAMES: tuple[str, ...] = tuple(sorted(str(t.__struct_config__.tag) for t in EVENT_TYPES))

router = APIRouter(tags=["monitoring"])


UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {"description": "Unhealthy: the same body; `problems` says why, one line each."}
}


@router.get("/api/status", responses=UNHEALTHY)
async def status(state: State, response: Response) -> dict[str, Any]:
    """Healthy, problems, uptime, per-venue state and last event age, database, errors.

    503 while the service is unhealthy (``problems`` is not empty), so ``curl -f``
    or a container healthcheck sees it; the body is the same either way.
    """
    service = state.service
    body = {**service.status(), "recent_errors": service.errors.recent(3600)[:20]}
    if not body["healthy"]:
        response.status_code = 503
    return body


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
    """Liveness: the process and its event loop answer (a restart would not fix a venue).

    Always 200 while the process answers; ``healthy`` says whether it works well
    (``/api/status`` answers 503 when it does not).
    """
    status = state.service.status()
    return {"status": "ok", "uptime_s": status["uptime_s"], "healthy": status["healthy"]}


@router.get("/readyz", responses={503: {"description": "Not ready; the body says why."}})
async def readyz(state: State, response: Response) -> dict[str, Any]:
    """Ready when healthy (no problems) and at least one venue is connected."""
    service = state.service
    reasons = service.problems()
    if not service.ready():
        if not service.sink_ok and not reasons:
            reasons.append("storage: not connected")
        if not any(v.get("state") == "connected" for v in service.venues_view()):
            reasons.append("no venue is connected")
    if reasons:
        response.status_code = 503
        return {"ready": False, "reasons": reasons}
    return {"ready": True}


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus() -> PlainTextResponse:
    """Prometheus text exposition of every venuefeed metric."""
    return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
