"""Seed-document behaviour of the service: Prometheus on its own port, the whale banner."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest

from venuefeed.config import Settings, load_config
from venuefeed.pipeline.whales import whale_store
from venuefeed.service import Service

from .helpers import wait_for


def quiet_settings(db: Path, **more: object) -> Settings:
    overrides = {"storage.sqlite_path": db, "venues.polymarket.enabled": False,
                 "venues.kalshi.enabled": False, **more}  # fmt: skip
    return load_config(overrides=overrides, environ={})


async def test_metrics_on_their_own_port_when_configured(tmp_path: Path) -> None:
    settings = load_config(
        overrides={"storage.sqlite_path": tmp_path / "m.db", "venues.polymarket.enabled": False,
                   "venues.kalshi.enabled": False},
        environ={"PROMETHEUS_PORT": "0"},  # the seed's variable; 0 = any free port
    )  # fmt: skip
    service = Service(settings)
    await service.start()
    try:
        assert service.metrics_port is not None
        url = service.metrics_port.url
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        assert b"market_data_ingestion_errors_total" in body
    finally:
        await service.stop()
    with pytest.raises(OSError):  # closed with the service
        await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2))


async def test_the_whale_banner_lines_of_seed_001(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = whale_store(db)
    store.upsert("0x1f2dd6d473f3e824cd2f8a89d9c69fb96f6ad0cf", pseudonym="One")
    store.upsert("0x56687bf447db6ffa42ffe2204a05edaa20f55839")
    said: list[str] = []
    service = Service(quiet_settings(db), echo=said.append)
    await service.start()
    try:
        await wait_for(lambda: len(said) >= 2)
    finally:
        await service.stop()
    assert said[:2] == ["Loaded 2 whales from the database", "Monitoring 2 whales in real time"]
