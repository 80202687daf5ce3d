"""``/api/v1/cluster``: workers, leases and writer lag, as ``venuefeed cluster status`` shows.

Read from JetStream on each request (the service need not be part of the
cluster to show it). Answers 503 with the reason when NATS cannot be
reached, and ``{"running": false}`` when no cluster ever ran there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from venuefeed.api.deps import State
from venuefeed.cluster.jetstream import NoCluster
from venuefeed.cluster.status import read_cluster_status

__all__ = ["router"]

router = APIRouter(tags=["cluster"])


@router.get(
    "/api/v1/cluster",
    responses={503: {"description": "NATS not reachable; `detail` says why."}},
)
async def cluster(state: State, response: Response) -> dict[str, Any]:
    """Workers (shards, instruments, lease age), every lease, writers, consumer lag."""
    settings = state.service.settings
    try:
        status = await read_cluster_status(settings, within=3)
    except NoCluster as exc:
        return {"cluster": settings.cluster.name, "running": False, "detail": str(exc)}
    except Exception as exc:  # unreachable or refusing: the panel shows why
        response.status_code = 503
        detail = f"NATS at {settings.cluster.nats_urls}: {type(exc).__name__}: {exc}"
        return {"cluster": settings.cluster.name, "running": False, "detail": detail}
    return {**status, "running": True}
