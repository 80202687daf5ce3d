"""Helpers for the Kalshi tests: capture paths, a fixed clock, settings pointed at a simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.venues.captures import ROOT
from venuefeed.config import Settings, load_config

CAPTURES = ROOT / "kalshi"
ANCHOR = 1_790_000_000 // 86_400 * 86_400
"""A fixed 'now' for simulators whose payloads must not depend on the wall clock."""


def kalshi_settings(
    rest: str, ws: str = "", private_pem: bytes | None = None, **extra: Any
) -> Settings:
    """Settings for the Kalshi adapter against a simulator: fast retries, no rate limit."""
    overrides: dict[str, Any] = {
        "venues.kalshi.urls.rest": rest,
        "venues.kalshi.rate_limit.requests_per_second": 10_000,
        "venues.kalshi.rate_limit.burst": 1000,
        "venues.kalshi.retry.backoff_base_seconds": 0.01,
        "venues.kalshi.retry.backoff_max_seconds": 0.05,
        "venues.kalshi.retry.recovery_step_seconds": 0.05,
        "venues.kalshi.retry.timeout_seconds": 10,
        "venues.kalshi.retry.breaker_cooldown_seconds": 0.1,
    }
    if ws:
        overrides["venues.kalshi.urls.ws"] = ws
    if private_pem is not None:
        overrides["venues.kalshi.credentials.api_key_id"] = "test-key-id"
        overrides["venues.kalshi.credentials.private_key"] = private_pem.decode()
    overrides.update(extra)
    return load_config(overrides=overrides, environ={})


async def until(check: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait until ``check()`` holds (polling), or fail after ``limit`` seconds."""
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
