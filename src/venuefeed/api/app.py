"""The FastAPI application: control API, monitoring, live socket and dashboard.

:func:`create_app` wires one running :class:`~venuefeed.service.Service` to
routes kept in small modules (``routes_*.py``). The app never starts or stops
the service -- whoever owns the service (the CLI, ``venuefeed demo``, a test)
does, and serves the app with :class:`~venuefeed.api.server.ApiServer`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from venuefeed import __version__
from venuefeed.api import (
    routes_cluster,
    routes_ingestion,
    routes_instrument,
    routes_live,
    routes_monitor,
    routes_pairs,
)
from venuefeed.api.deps import ApiState, UnknownVenue, VenueNotEnabled
from venuefeed.api.guard import RequestGuard, allowed_hosts
from venuefeed.api.jobs import TooManyJobs
from venuefeed.api.views import Redactor
from venuefeed.config import ApiSettings
from venuefeed.service import AlreadyRunning, Service
from venuefeed.venues.base import known_venues

__all__ = ["DASHBOARD_DIR", "create_app"]

DASHBOARD_DIR = Path(str(resources.files("venuefeed.api") / "dashboard"))

_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)
"""The dashboard loads nothing from elsewhere; the browser enforces it too."""


def _json_response_class(redactor: Redactor) -> type[JSONResponse]:
    """JSON responses with configured secrets and URL passwords masked."""

    class RedactedJSONResponse(JSONResponse):
        def render(self, content: Any) -> bytes:
            return redactor.text(super().render(content).decode()).encode()

    return RedactedJSONResponse


def create_app(service: Service, settings: ApiSettings) -> FastAPI:
    """The API for ``service``; ``settings`` decide auth (token), CORS and the allowed hosts."""
    state = ApiState(service, settings)
    response_class = _json_response_class(state.redactor)
    app = FastAPI(
        title="venuefeed",
        version=__version__,
        description="Control, monitoring and live data of a venuefeed service.",
        default_response_class=response_class,
        docs_url=None,  # Swagger/ReDoc pages load their assets from a CDN; the schema is
        redoc_url=None,  # at /openapi.json for any local tool
    )
    app.state.api = state
    app.state.hosts = allowed_hosts(settings.host, settings.allowed_hosts)
    if settings.cors_origins:  # closed unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.exception_handler(UnknownVenue)
    async def _unknown_venue(_: Request, exc: UnknownVenue) -> JSONResponse:
        return response_class(
            {"detail": f"unknown venue {exc.venue!r}", "known_venues": known_venues()},
            status_code=404,
        )

    @app.exception_handler(VenueNotEnabled)
    async def _not_enabled(_: Request, exc: VenueNotEnabled) -> JSONResponse:
        return response_class(
            {"detail": f"venue {exc.venue!r} is not enabled", "enabled_venues": exc.enabled},
            status_code=409,
        )

    @app.exception_handler(AlreadyRunning)
    async def _already_running(_: Request, exc: AlreadyRunning) -> JSONResponse:
        return response_class({"detail": str(exc)}, status_code=409)

    @app.exception_handler(TooManyJobs)
    async def _too_many_jobs(_: Request, exc: TooManyJobs) -> JSONResponse:
        return response_class(
            {"detail": str(exc)},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )

    app.include_router(routes_ingestion.router)
    app.include_router(routes_monitor.router)
    app.include_router(routes_live.router)
    app.include_router(routes_instrument.router)
    app.include_router(routes_pairs.router)
    app.include_router(routes_cluster.router)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(
            DASHBOARD_DIR / "index.html",
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
        )

    @app.get("/instrument", include_in_schema=False)
    async def instrument_page() -> FileResponse:
        return FileResponse(
            DASHBOARD_DIR / "instrument.html",
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
        )

    app.mount("/static", StaticFiles(directory=DASHBOARD_DIR), name="static")
    # outermost: a refused request reaches nothing else
    app.add_middleware(RequestGuard, hosts=app.state.hosts, trusted_origins=settings.cors_origins)
    return app
