"""Control endpoints: discovery, snapshot ingestion, continuous mode, connection tests, jobs.

Everything that changes what the service does is a POST behind
:func:`~venuefeed.api.deps.require_token`; reads are open (the API binds to
loopback unless a token is configured).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response

from venuefeed.api.deps import State, check_known, require_token, resolve_venues
from venuefeed.api.jobs import Job
from venuefeed.api.routes_monitor import UNHEALTHY
from venuefeed.service import Service

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ingestion"])

CONNECTION_TEST_TIMEOUT = 20.0
"""Upper bound for one test-connection call, whatever the venue's retry settings."""

Venues = Annotated[
    list[str] | None,
    Query(description="Venues to act on (repeat the parameter); all running venues if omitted."),
]
Background = Annotated[bool, Query(description="Run as a job and answer 202 with its id at once.")]
VenueStep = Callable[[Service, list[str]], Awaitable[dict[str, Any]]]


async def _discover(service: Service, venues: list[str]) -> dict[str, Any]:
    return await service.discover_markets(venues)


async def _ingest(service: Service, venues: list[str]) -> dict[str, Any]:
    return await service.ingest_once(venues)


async def _control(
    state: State,
    kind: str,
    step: VenueStep,
    venues: list[str],
    background: bool,
    response: Response,
) -> dict[str, Any]:
    """Run ``step`` venue by venue, inline or as a job that reports which venue it is on."""
    service = state.service
    if not background:
        return {"result": await step(service, venues)}

    async def run(job: Job) -> dict[str, Any]:
        results: dict[str, Any] = {}
        job.progress = {"done": 0, "total": len(venues), "current": None}
        for venue in venues:
            job.progress["current"] = venue
            results.update(await step(service, [venue]))
            job.progress["done"] += 1
        job.progress["current"] = None
        return results

    job = state.jobs.submit(kind, run)
    response.status_code = 202
    return {"job_id": job.id, "job": job.view(), "status_url": f"/api/v1/jobs/{job.id}"}


@router.post("/ingestion/discover-markets", dependencies=[Depends(require_token)])
async def discover_markets(
    state: State, response: Response, venues: Venues = None, background: Background = False
) -> dict[str, Any]:
    """Fetch each venue's markets in the resolution window and (re)subscribe to them."""
    names = resolve_venues(state.service, venues)
    return await _control(state, "discover-markets", _discover, names, background, response)


@router.post("/ingestion/ingest-data", dependencies=[Depends(require_token)])
async def ingest_data(
    state: State, response: Response, venues: Venues = None, background: Background = False
) -> dict[str, Any]:
    """One snapshot pass: top-N books and recent trades of every tracked instrument."""
    names = resolve_venues(state.service, venues)
    return await _control(state, "ingest-data", _ingest, names, background, response)


@router.post("/ingestion/start-continuous", dependencies=[Depends(require_token)])
async def start_continuous(
    state: State,
    interval: Annotated[
        float | None,
        Query(gt=0, le=86_400, description="Snapshot interval (s) for venues without a stream."),
    ] = None,
) -> dict[str, Any]:
    """Start streaming and polling every venue; 409 if it already runs."""
    await state.service.start_continuous(interval)
    return {"continuous": True}


@router.post("/ingestion/stop-continuous", dependencies=[Depends(require_token)])
async def stop_continuous(state: State) -> dict[str, Any]:
    """Stop streaming and polling (stored data and the API stay up). Idempotent."""
    await state.service.stop_continuous()
    return {"continuous": False}


@router.get("/ingestion/status")
async def ingestion_status(state: State) -> dict[str, Any]:
    """Whether continuous ingestion runs, each venue's state, and unfinished jobs."""
    service = state.service
    return {
        "continuous": service.continuous,
        "venues": [
            {k: v.get(k) for k in ("venue", "enabled", "state", "subscribed", "markets", "events")}
            for v in service.venues_view()
        ],
        "jobs": [job.view() for job in state.jobs.jobs() if not job.done],
    }


@router.get("/ingestion/venues")
async def ingestion_venues(state: State) -> list[dict[str, Any]]:
    """Every registered venue: enabled, configured, state, counters, capabilities."""
    return state.service.venues_view()


@router.get("/ingestion/health", responses=UNHEALTHY)
async def ingestion_health(state: State, response: Response) -> dict[str, Any]:
    """A compact health verdict (503 when unhealthy, like ``/api/status``) and its problems."""
    status = state.service.status()
    if not status["healthy"]:
        response.status_code = 503
    return {
        "healthy": status["healthy"],
        "problems": status["problems"],
        "database_connected": status["database_connected"],
        "continuous": status["continuous"],
        "venues": {v["venue"]: v.get("state") for v in status["venues"] if v["enabled"]},
        "errors_last_hour": status["errors_last_hour"],
    }


@router.post("/ingestion/test-connection/{venue}", dependencies=[Depends(require_token)])
async def test_connection(
    state: State, venue: Annotated[str, Path(description="A registered venue name.")]
) -> dict[str, Any]:
    """Reachability and authentication of one venue, with a verdict (``ok``)."""
    check_known(venue)
    try:
        result = await asyncio.wait_for(
            state.service.test_connection(venue), CONNECTION_TEST_TIMEOUT
        )
    except TimeoutError:
        return _failed(venue, f"no answer within {CONNECTION_TEST_TIMEOUT:g} s")
    except Exception as exc:  # unreachable, not built, misconfigured: a verdict, not a 500
        return _failed(venue, f"{type(exc).__name__}: {exc}")
    return {**dataclasses.asdict(result), "ok": result.ok}


def _failed(venue: str, detail: str) -> dict[str, Any]:
    return {"venue": venue, "reachable": False, "authenticated": None, "latency_ms": None,
            "detail": detail, "extra": {}, "ok": False}  # fmt: skip


@router.get("/jobs", tags=["jobs"])
async def list_jobs(state: State) -> list[dict[str, Any]]:
    """Recent background jobs, newest first (bounded)."""
    return [job.view() for job in state.jobs.jobs()]


@router.get("/jobs/{job_id}", tags=["jobs"])
async def get_job(
    state: State, job_id: Annotated[str, Path(max_length=64, description="The id from a 202.")]
) -> dict[str, Any]:
    """A job's state, progress (venues done of total), result or error."""
    job = state.jobs.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id!r} (unknown or expired)")
    return job.view()


@router.get("/config", tags=["config"])
async def config_view(state: State) -> dict[str, Any]:
    """The effective configuration with every secret masked."""
    return state.service.settings.masked()
