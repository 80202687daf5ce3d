"""Helpers for the API tests: settings, the service+API stack, canonical events."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from venuefeed.api.server import ApiServer
from venuefeed.config import Settings, load_config
from venuefeed.models import Trade
from venuefeed.service import Service

TOKEN = "s3cret-api-token-for-tests"
VENUES = ("polymarket", "kalshi", "binance", "polygon")


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """No venue enabled unless a test turns one on; the API on an ephemeral port."""
    base: dict[str, Any] = {
        "storage.sqlite_path": tmp_path / "api.db",
        "api.port": 0,
        **{f"venues.{v}.enabled": False for v in VENUES},
        # an unreachable venue answers "unreachable" at once instead of after retries
        **{f"venues.{v}.retry": {"attempts": 0, "timeout_seconds": 5} for v in VENUES},
    }
    return load_config(overrides={**base, **overrides}, environ={})


class Stack:
    def __init__(self, service: Service, api: ApiServer, client: httpx.AsyncClient) -> None:
        self.service, self.api, self.client = service, api, client

    @property
    def ws_url(self) -> str:
        return self.api.url.replace("http://", "ws://") + "/ws/live"


StackFactory = Callable[..., Awaitable[Stack]]


def trade(
    trade_id: str,
    venue: str = "polymarket",
    instrument: str = "tok-yes",
    price: str = "0.54",
    size: str = "10",
    age_s: float = 0.5,
    **kw: Any,
) -> Trade:
    now = time.time_ns()
    return Trade(venue=venue, instrument=instrument, ts_venue=now - int(age_s * 1e9), ts_recv=now,
                 trade_id=trade_id, price=price, size=size, side="buy", **kw)  # fmt: skip


def polygon_overrides(urls: dict[str, str], api_key: str) -> dict[str, Any]:
    """Point the Polygon venue at a local simulator, with fast reconnects and no free-plan limit."""
    return {
        "venues.polygon.enabled": True,
        "venues.polygon.urls": urls,
        "venues.polygon.credentials": {"api_key": api_key},
        "venues.polygon.instruments": ["AAPL", "MSFT"],
        "venues.polygon.rate_limit": {"requests_per_second": 200, "burst": 200},
        "venues.polygon.websocket": {"backoff_base_seconds": 0.1, "backoff_cap_seconds": 0.5},
    }
