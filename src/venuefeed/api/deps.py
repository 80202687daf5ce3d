"""What every route needs: the app's state, the bearer-token check, venue names.

Routes get the running :class:`~venuefeed.service.Service` through
:func:`api_state` rather than a module global, so one process (or one test)
can hold several apps.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from venuefeed.api.jobs import JobRegistry
from venuefeed.api.views import Catalog, LatencySampler, Redactor
from venuefeed.config import ApiSettings
from venuefeed.service import Service
from venuefeed.venues.base import known_venues

__all__ = [
    "ApiState",
    "State",
    "UnknownVenue",
    "VenueNotEnabled",
    "api_state",
    "require_token",
    "resolve_venues",
]


@dataclass(eq=False)
class ApiState:
    service: Service
    settings: ApiSettings
    jobs: JobRegistry = field(init=False)
    catalog: Catalog = field(init=False)
    latency: LatencySampler = field(default_factory=LatencySampler)
    redactor: Redactor = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = JobRegistry(max_running=self.settings.max_running_jobs)
        self.catalog = Catalog(self.service)
        self.redactor = Redactor.for_service(self.service, self.settings.token)


def api_state(conn: HTTPConnection) -> ApiState:
    state: ApiState = conn.app.state.api
    return state


State = Annotated[ApiState, Depends(api_state)]

_bearer = HTTPBearer(
    auto_error=False,
    description="Required on mutating endpoints when api.token is configured.",
)


async def require_token(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Mutating endpoints need ``Authorization: Bearer <token>`` once a token is set."""
    token = state.settings.token
    expected = token.get_secret_value() if token is not None else ""
    if not expected:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


class UnknownVenue(LookupError):
    """Not a registered venue; the API answers 404 with the known ones."""

    def __init__(self, venue: str) -> None:
        super().__init__(venue)
        self.venue = venue


class VenueNotEnabled(LookupError):
    """A registered venue that this service does not run; the API answers 409."""

    def __init__(self, venue: str, enabled: Iterable[str]) -> None:
        super().__init__(venue)
        self.venue = venue
        self.enabled = sorted(enabled)


def check_known(venue: str) -> str:
    if venue not in known_venues():
        raise UnknownVenue(venue)
    return venue


def resolve_venues(service: Service, venues: list[str] | None) -> list[str]:
    """The venues a control call applies to: the named ones (validated) or all running."""
    if not venues:
        return list(service.runners)
    for venue in venues:
        check_known(venue)
        if venue not in service.runners:
            raise VenueNotEnabled(venue, service.runners)
    return list(dict.fromkeys(venues))
