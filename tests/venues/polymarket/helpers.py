"""Helpers for the Polymarket tests: an adapter wired to a simulator."""

from __future__ import annotations

from typing import Any

from venuefeed.config import (
    IngestionSettings,
    RateLimitSettings,
    RetrySettings,
    Settings,
    VenueSettings,
    WebSocketSettings,
)
from venuefeed.venues.polymarket import Adapter, Simulator


def make_adapter(
    sim: Simulator,
    credentials: dict[str, str] | None = None,
    *,
    ingestion: IngestionSettings | None = None,
    **options: Any,
) -> Adapter:
    """An adapter pointed at ``sim`` with fast retries and quick stream jobs (and
    ``credentials``, e.g. the user channel's api_key, api_secret, api_passphrase;
    ``ingestion``, e.g. a narrower venue-time window)."""
    opts: dict[str, Any] = {
        "audit_interval_seconds": 0.2,
        "discovery_debounce_seconds": 0.05,
        "resync_retry_interval_seconds": 0.05,
    }
    opts.update(options)
    venue = VenueSettings(
        enabled=True,
        urls=sim.urls(),
        rate_limit=RateLimitSettings(requests_per_second=1000, burst=100),
        retry=RetrySettings(attempts=6, backoff_base_seconds=0.01, backoff_max_seconds=0.05),
        websocket=WebSocketSettings(
            backoff_base_seconds=0.02, backoff_cap_seconds=0.1, idle_timeout_seconds=2.0
        ),
        options=opts,
        credentials=credentials or {},
    )
    return Adapter(
        venue, Settings(venues={"polymarket": venue}, ingestion=ingestion or IngestionSettings())
    )
