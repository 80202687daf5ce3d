"""Helpers for the Polymarket tests: capture paths and an adapter wired to a simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from venuefeed.config import (
    RateLimitSettings,
    RetrySettings,
    Settings,
    VenueSettings,
    WebSocketSettings,
)
from venuefeed.venues.polymarket import Adapter, Simulator

CAPTURES = next(
    p / "shared" / "captures" / "polymarket"
    for p in Path(__file__).resolve().parents
    if (p / "shared" / "captures" / "polymarket").is_dir()
)


def capture(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def make_adapter(sim: Simulator, **options: Any) -> Adapter:
    """An adapter pointed at ``sim`` with fast retries and quick stream jobs."""
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
    )
    return Adapter(venue, Settings(venues={"polymarket": venue}))
