"""Control endpoints against a real service: venues, jobs, continuous mode, bad input, auth."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from venuefeed.api.jobs import JobRegistry, TooManyJobs
from venuefeed.api.server import ApiConfigError, ApiServer, PortInUse, open_listener
from venuefeed.service import Service
from venuefeed.venues.base import known_venues

from .apihelp import TOKEN, StackFactory, make_settings

MUTATING = [
    "/api/v1/ingestion/discover-markets",
    "/api/v1/ingestion/ingest-data",
    "/api/v1/ingestion/start-continuous",
    "/api/v1/ingestion/stop-continuous",
    "/api/v1/ingestion/test-connection/binance",
]


async def test_unknown_venue_is_404_with_the_known_list(make_stack: StackFactory) -> None:
    stack = await make_stack()
    expected = {"detail": "unknown venue 'nasdaq'", "known_venues": known_venues()}
    for path in (
        "/api/v1/ingestion/discover-markets?venues=nasdaq",
        "/api/v1/ingestion/ingest-data?venues=nasdaq&background=true",
        "/api/v1/ingestion/test-connection/nasdaq",
    ):
        response = await stack.client.post(path)
        assert response.status_code == 404, path
        assert response.json() == expected
    assert stack.api.app.state.api.jobs.jobs() == []  # rejected before any job started


async def test_registered_but_disabled_venue_is_409(make_stack: StackFactory) -> None:
    stack = await make_stack()
    response = await stack.client.post("/api/v1/ingestion/discover-markets?venues=kalshi")
    assert response.status_code == 409
    assert response.json()["enabled_venues"] == []


async def test_invalid_parameters_are_422_naming_the_field(make_stack: StackFactory) -> None:
    stack = await make_stack()
    cases = {
        ("post", "/api/v1/ingestion/start-continuous?interval=-1"): "interval",
        ("post", "/api/v1/ingestion/discover-markets?background=maybe"): "background",
        ("get", "/api/events?limit=0"): "limit",
        ("get", "/api/events?offset=-5"): "offset",
        ("get", "/api/events?type=tradez"): "type",
    }
    for (method, path), field in cases.items():
        response = await stack.client.request(method, path)
        assert response.status_code == 422, path
        locations = [e["loc"] for e in response.json()["detail"]]
        assert ["query", field] in locations, (path, locations)


async def test_start_continuous_twice_is_409_and_one_loop(make_stack: StackFactory) -> None:
    stack = await make_stack()
    client, service = stack.client, stack.service
    assert (await client.post("/api/v1/ingestion/start-continuous")).json() == {"continuous": True}
    components = set(service.supervisor.components)
    second = await client.post("/api/v1/ingestion/start-continuous")
    assert second.status_code == 409
    assert "already running" in second.json()["detail"]
    assert set(service.supervisor.components) == components
    assert (await client.get("/api/v1/ingestion/status")).json()["continuous"] is True
    assert (await client.post("/api/v1/ingestion/stop-continuous")).json() == {"continuous": False}
    assert (await client.post("/api/v1/ingestion/stop-continuous")).status_code == 200
    assert (await client.get("/api/v1/ingestion/status")).json()["continuous"] is False
    assert (await client.post("/api/v1/ingestion/start-continuous")).status_code == 200


async def test_background_job_reports_state_and_result(make_stack: StackFactory) -> None:
    stack = await make_stack()
    response = await stack.client.post("/api/v1/ingestion/ingest-data?background=true")
    assert response.status_code == 202
    body = response.json()
    job_url = body["status_url"]
    assert job_url == f"/api/v1/jobs/{body['job_id']}"
    for _ in range(100):
        job = (await stack.client.get(job_url)).json()
        if job["state"] not in ("pending", "running"):
            break
        await asyncio.sleep(0.02)
    assert job["state"] == "succeeded" and job["kind"] == "ingest-data"
    assert job["result"] == {} and job["progress"]["done"] == job["progress"]["total"] == 0
    assert job["finished_at"] >= job["started_at"] >= job["created_at"]
    listed = (await stack.client.get("/api/v1/jobs")).json()
    assert [j["id"] for j in listed] == [body["job_id"]]
    assert (await stack.client.get("/api/v1/jobs/nope")).status_code == 404


async def test_job_registry_bounds_running_and_kept_jobs() -> None:
    jobs = JobRegistry(capacity=3, max_running=2)
    gate = asyncio.Event()

    async def wait(job: object) -> str:
        await gate.wait()
        return "done"

    async def fail(job: object) -> None:
        raise ValueError("venue said no")

    failing = jobs.submit("x", fail)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert failing.state == "failed" and failing.error == "ValueError: venue said no"
    first = jobs.submit("x", wait)
    second = jobs.submit("x", wait)
    with pytest.raises(TooManyJobs) as refused:  # two run: the limit, whatever the capacity
        jobs.submit("x", wait)
    assert refused.value.retry_after > 0
    assert jobs.running == 2 and jobs.get(failing.id) is failing
    gate.set()
    await asyncio.sleep(0.01)
    assert first.result == second.result == "done" and first.state == "succeeded"
    third = jobs.submit("x", wait)  # room again; the registry is full, so the oldest goes
    assert jobs.get(failing.id) is None and jobs.get(third.id) is third
    await jobs.close()


async def test_background_jobs_beyond_the_limit_get_429_with_retry_after(
    make_stack: StackFactory,
) -> None:
    """Forty jobs in a row: the configured number run, the rest are told when to come back."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # a venue that accepts the connection and never answers

    blackhole = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = blackhole.sockets[0].getsockname()[1]
    try:
        stack = await make_stack(**{
            "api.max_running_jobs": 3,
            "venues.binance.enabled": True, "venues.binance.instruments": ["BTCUSDT"],
            "venues.binance.urls": {"rest": f"http://127.0.0.1:{port}"},
        })  # fmt: skip
        path = "/api/v1/ingestion/ingest-data?background=true"
        answers = [await stack.client.post(path) for _ in range(40)]
        assert [r.status_code for r in answers[:3]] == [202, 202, 202]
        refused = answers[3:]
        assert {r.status_code for r in refused} == {429}
        assert all(r.headers["retry-after"] == "5" for r in refused)
        assert "3 jobs are still running" in refused[0].json()["detail"]
        running = (await stack.client.get("/api/v1/ingestion/status")).json()["jobs"]
        assert len(running) == 3
    finally:
        for writer in held:
            writer.close()
        blackhole.close()


async def test_test_connection_for_a_venue_that_cannot_answer(make_stack: StackFactory) -> None:
    stack = await make_stack(**{"venues.binance.urls": {"rest": "http://127.0.0.1:9"}})
    response = await stack.client.post("/api/v1/ingestion/test-connection/binance")
    assert response.status_code == 200
    body = response.json()
    assert body["venue"] == "binance" and body["ok"] is False and body["reachable"] is False


async def test_mutating_endpoints_need_the_token(make_stack: StackFactory) -> None:
    stack = await make_stack(**{"api.token": TOKEN})
    client = stack.client
    for path in MUTATING:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = await client.post(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.post(MUTATING[2], headers=good)).status_code == 200
    assert (await client.post(MUTATING[3], headers=good)).status_code == 200
    assert (await client.get("/api/v1/ingestion/status")).status_code == 200  # reads stay open


async def test_no_secret_in_any_response(make_stack: StackFactory) -> None:
    venue_secret = "kalshi-private-key-material-123"
    stack = await make_stack(**{
        "api.token": TOKEN,
        "venues.kalshi.credentials": {"api_key_id": venue_secret},
    })  # fmt: skip
    # a secret that slipped into an error message must not come back out either
    stack.service.errors.add("kalshi", "http", f"GET https://x/?key={venue_secret} failed")
    paths = ["/api/status", "/api/metrics", "/api/events", "/healthz", "/readyz", "/metrics",
             "/api/v1/ingestion/status", "/api/v1/ingestion/venues", "/api/v1/ingestion/health",
             "/api/v1/jobs", "/api/v1/config", "/openapi.json", "/"]  # fmt: skip
    for path in paths:
        text = (await stack.client.get(path)).text
        assert TOKEN not in text and venue_secret not in text, path
    status = (await stack.client.get("/api/status")).json()
    assert "key=********" in status["recent_errors"][0]["message"]
    config = (await stack.client.get("/api/v1/config")).json()
    assert config["api"]["token"] == "********"
    assert config["venues"]["kalshi"]["credentials"] == {"api_key_id": "********"}


async def test_url_passwords_never_leave_in_a_response(make_stack: StackFactory) -> None:
    stack = await make_stack(**{"bus.nats_url": "nats://app:pw-nats-configured@bus:4222"})
    stack.service.errors.add(
        "storage", "connect", "postgresql://app:pw-never-configured@db/x: connection refused"
    )
    for path in ("/api/status", "/api/v1/config", "/api/metrics"):
        text = (await stack.client.get(path)).text
        assert "pw-nats-configured" not in text and "pw-never-configured" not in text, path
    status = (await stack.client.get("/api/status")).json()
    assert status["recent_errors"][0]["message"].startswith("postgresql://app:********@db/x")
    assert (await stack.client.get("/api/v1/config")).json()["bus"]["nats_url"] == (
        "nats://app:********@bus:4222"
    )


async def test_cors_is_closed_unless_configured(make_stack: StackFactory) -> None:
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    closed = await make_stack()
    response = await closed.client.options("/api/v1/ingestion/stop-continuous", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    response = await closed.client.get("/api/status", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in response.headers

    opened = await make_stack(**{"api.cors_origins": ["http://grafana.local"]})
    allowed = {**preflight, "Origin": "http://grafana.local"}
    response = await opened.client.options("/api/v1/ingestion/stop-continuous", headers=allowed)
    assert response.headers["access-control-allow-origin"] == "http://grafana.local"
    response = await opened.client.options("/api/v1/ingestion/stop-continuous", headers=preflight)
    assert "access-control-allow-origin" not in response.headers


async def test_refuses_non_loopback_bind_without_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **{"api.host": "0.0.0.0"})
    with pytest.raises(ApiConfigError, match="without a token"):
        open_listener(settings.api)  # checked before anything starts: no service needed
    service = Service(settings)
    with pytest.raises(ApiConfigError, match="without a token"):
        await ApiServer(service, settings.api).start()
    guarded = settings.api.model_copy(update={"token": SecretStr(TOKEN)})
    server = ApiServer(service, guarded)
    await server.start()
    try:
        assert server.port
    finally:
        await server.stop()


async def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(tmp_path, **{"api.port": port})
        with pytest.raises(PortInUse, match=f"port {port} is in use") as err:
            open_listener(settings.api)
        assert err.value.port == port
        with pytest.raises(PortInUse):
            await ApiServer(Service(settings), settings.api).start()


async def test_a_listener_taken_first_is_the_one_served(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    listener = open_listener(settings.api)
    port = listener.getsockname()[1]
    service = Service(settings)
    await service.start(continuous=False)
    server = ApiServer(service, settings.api, sock=listener)
    await server.start()
    try:
        assert server.port == port
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        await server.stop()
        await service.stop()


async def test_server_stops_with_a_client_still_connected(make_stack: StackFactory) -> None:
    stack = await make_stack()
    async with httpx.AsyncClient() as other:
        assert (await other.get(stack.api.url + "/healthz")).status_code == 200
        await asyncio.wait_for(stack.api.stop(), 10)
        with pytest.raises(httpx.ConnectError):
            await other.get(stack.api.url + "/healthz")
