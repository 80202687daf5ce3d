"""Building blocks for end-to-end tests: a service pointed at simulators."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from venuefeed.config import Settings, load_config
from venuefeed.sim.base import SimulatorBase
from venuefeed.sinks.sqlite import open_reader


def settings_for(
    sims: Mapping[str, SimulatorBase], db: Path, extra: Mapping[str, Any] | None = None
) -> Settings:
    """Only the simulated venues enabled, pointed at the simulators; SQLite at ``db``."""
    overrides: dict[str, Any] = {
        "storage.sqlite_path": db,
        "ingestion.book_persist_interval_seconds": 0.2,
        "ingestion.heal_delay_seconds": 0.1,
        "ingestion.completeness_interval_seconds": 0.2,
        "discovery.interval_seconds": 3600,
    }
    for name in ("polymarket", "kalshi", "binance", "polygon"):
        overrides[f"venues.{name}.enabled"] = name in sims
    for name, sim in sims.items():
        overrides[f"venues.{name}.urls"] = sim.urls()
        overrides[f"venues.{name}.rate_limit"] = {"requests_per_second": 500, "burst": 500}
        overrides[f"venues.{name}.retry"] = {
            "attempts": 4, "backoff_base_seconds": 0.02, "backoff_max_seconds": 0.2,
            "timeout_seconds": 3,
        }  # fmt: skip
        for key, value in sim.client_credentials().items():
            overrides[f"venues.{name}.credentials.{key}"] = value
    overrides.update(extra or {})
    return load_config(overrides=overrides, environ={})


async def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def stored_trades(db: Path, venue: str) -> list[tuple[str, str, str, str]]:
    rows = open_reader(db).execute(
        "SELECT instrument, trade_id, price, size FROM trades WHERE venue = ?", (venue,)
    )
    return [tuple(r) for r in rows.fetchall()]  # type: ignore[misc]


def truth_trades(sim: SimulatorBase) -> list[tuple[str, str, str, str]]:
    return [(t["instrument"], t["trade_id"], t["price"], t["size"]) for t in sim.truth.trades]
