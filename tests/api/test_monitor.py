"""Monitoring endpoints: events, the 5-minute window, probes and the Prometheus exposition."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from venuefeed.models import PriceUpdate

from .apihelp import Stack, StackFactory, trade

REQUIRED_METRICS = {
    # names users already alert on (issue 7) -> their labels
    "whale_trades_detected_total": {"address", "side"},
    "websocket_messages_received_total": {"venue", "type"},
    "trade_processing_latency_seconds": set(),
    "active_whale_subscriptions": set(),
    "websocket_reconnections_total": {"venue"},
    "market_data_trades_ingested_total": {"venue"},
    "market_data_ingestion_errors_total": {"venue", "kind"},
    "market_data_active_streams": {"venue"},
}
BOUNDED_LABELS = {"venue", "type", "kind", "address", "side", "state", "endpoint", "status",
                  "reason", "host", "check", "outcome", "component", "cause", "le",
                  "sink", "table"}  # fmt: skip


async def test_events_newest_first_paginated_and_filtered(stack: Stack) -> None:
    process = stack.service.pipeline.process
    for n in range(5):
        await process(trade(f"t{n}", price=f"0.5{n}"))
    now = stack.service.started_at
    await process(PriceUpdate(venue="kalshi", instrument="KX-1", ts_venue=int(now * 1e9),
                              ts_recv=int(now * 1e9), price="0.61", size="4"))  # fmt: skip
    body = (await stack.client.get("/api/events?limit=3")).json()
    assert body["count"] == 3 and body["limit"] == 3 and body["offset"] == 0
    assert [e.get("trade_id", e["type"]) for e in body["events"]] == ["price_update", "t4", "t3"]
    page2 = (await stack.client.get("/api/events?limit=3&offset=3")).json()["events"]
    assert [e["trade_id"] for e in page2] == ["t2", "t1", "t0"]
    trades = (await stack.client.get("/api/events?type=trade&limit=50")).json()["events"]
    assert {e["type"] for e in trades} == {"trade"} and len(trades) == 5
    assert trades[0]["price"] == "0.54" and trades[0]["venue"] == "polymarket"


async def test_metrics_window_counts_and_quality(stack: Stack) -> None:
    process = stack.service.pipeline.process
    await process(trade("fresh-1", age_s=2))
    await process(trade("fresh-2", age_s=4))
    await process(trade("stale", age_s=600))  # G1: older than the 300 s limit
    await process(trade("fresh-1", age_s=2))  # a replay: not counted again
    await stack.service.writer.drain()
    m = (await stack.client.get("/api/metrics")).json()
    assert m["window_s"] == 300
    assert m["trades"] == 3 and m["trades_stored"] == 3
    assert m["g1_stale_blocked"] == 1
    assert m["events_received"] == 4
    assert 2 <= m["avg_trade_age_s"] <= 4  # the two fresh ones: (2 + 4) / 2, give or take
    assert m["freshness_pct"] == round(100 * 2 / 3, 1)
    assert m["coverage_pct"] is None and m["instruments_subscribed"] == 0
    assert m["latency_ms"]["p50"] is not None


async def test_status_and_health(stack: Stack) -> None:
    status = (await stack.client.get("/api/status")).json()
    assert status["healthy"] is True and status["database_connected"] is True
    assert status["uptime_s"] >= 0 and status["errors_last_hour"] == 0
    assert {v["venue"] for v in status["venues"]} == {"binance", "kalshi", "polygon", "polymarket"}
    assert (await stack.client.get("/healthz")).json()["status"] == "ok"
    health = (await stack.client.get("/api/v1/ingestion/health")).json()
    assert health["database_connected"] is True and health["venues"] == {}


async def test_readyz_needs_storage_and_a_connected_venue(stack: Stack) -> None:
    response = await stack.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "reasons": ["no venue is connected"]}


async def test_prometheus_exposition_has_the_alerted_names_with_bounded_labels(
    stack: Stack,
) -> None:
    stack.service.pipeline.whales.update(["0xwhale"])
    await stack.service.pipeline.process(trade("w", size="100", taker="0xwhale"))
    await stack.service.writer.drain()
    response = await stack.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name, labels in REQUIRED_METRICS.items():
        family = families.get(name.removesuffix("_total"))
        assert family is not None, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= labels, (name, sample)
    whale = families["whale_trades_detected"]
    assert any(s.labels == {"address": "0xwhale", "side": "buy"} and s.value >= 1
               for s in whale.samples)  # fmt: skip
    ours = [f for f in families.values() if not f.name.startswith(("python_", "process_"))]
    for family in ours:
        for sample in family.samples:
            assert set(sample.labels) <= BOUNDED_LABELS, (family.name, sample.labels)
    latency = families["trade_processing_latency_seconds"]
    assert latency.type == "histogram"


async def test_dashboard_is_served_by_the_app_with_nothing_from_elsewhere(stack: Stack) -> None:
    page = await stack.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(assets) == ["/static/app.js", "/static/style.css"]
    for text in [page.text] + [(await stack.client.get(a)).text for a in assets]:
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), "external asset"
    assert "new WebSocket(" in (await stack.client.get("/static/app.js")).text
    assert (await stack.client.get("/docs")).status_code == 404  # Swagger UI would need a CDN


async def test_unhealthy_service_answers_503_with_its_problems(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """A real failure: Kalshi enabled with a key file that does not exist."""
    absent = tmp_path / "absent.pem"
    stack = await make_stack(**{
        "venues.kalshi.enabled": True,
        "venues.kalshi.credentials": {"api_key_id": "key-1", "private_key_path": str(absent)},
    })  # fmt: skip
    client = stack.client
    response = await client.get("/api/status")
    assert response.status_code == 503
    status = response.json()
    assert status["healthy"] is False
    assert status["problems"] == [
        f"kalshi: misconfigured: CredentialsError: cannot read kalshi private key file {absent}: "
        "No such file or directory"
    ]
    assert {v["venue"] for v in status["venues"]} == {"binance", "kalshi", "polygon", "polymarket"}
    health = await client.get("/api/v1/ingestion/health")
    assert health.status_code == 503 and health.json()["problems"] == status["problems"]
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == [*status["problems"], "no venue is connected"]
    live = await client.get("/healthz")  # the process answers: a restart would not fix this
    assert live.status_code == 200 and live.json()["healthy"] is False

    curl = shutil.which("curl")
    if curl is not None:  # what a Docker HEALTHCHECK runs
        probe = await asyncio.create_subprocess_exec(
            curl, "-fsS", "-o", "/dev/null", stack.api.url + "/api/status",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await probe.communicate()
        assert probe.returncode == 22 and b"503" in err
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "venuefeed.cli", "--db", str(tmp_path / "cli.db"), "status",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "VENUEFEED_API__PORT": str(stack.api.port)},
    )  # fmt: skip
    out, _ = await cli.communicate()
    assert cli.returncode == 1 and "kalshi: misconfigured" in out.decode()


async def test_healthy_status_is_200(stack: Stack) -> None:
    response = await stack.client.get("/api/status")
    assert response.status_code == 200 and response.json()["problems"] == []
    assert (await stack.client.get("/api/v1/ingestion/health")).status_code == 200
