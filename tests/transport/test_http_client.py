"""HttpClient against a real local HTTP venue: retries, Retry-After, timeouts, recovery, breaker."""

from __future__ import annotations

import asyncio
import itertools
import time
from email.utils import formatdate
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from venuefeed.config import VenueSettings
from venuefeed.transport import (
    CircuitOpenError,
    HttpClient,
    HttpPolicy,
    HttpRetryExhausted,
    HttpStatusError,
    paginate_cursor,
)
from venuefeed.transport.http import CircuitBreaker

FAST = HttpPolicy(
    timeout=2.0,
    attempts=5,
    backoff_base=0.01,
    backoff_max=0.05,
    recovery_attempts=3,
    recovery_step=0.05,
    breaker_failures=100,
    breaker_cooldown=0.2,
    rate=1000.0,
    burst=100,
)


def policy(**overrides: Any) -> HttpPolicy:
    return HttpPolicy(**{**FAST.__dict__, **overrides})


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_429_retry_after_then_503_burst_then_recovery(http_venue, wait_for) -> None:
    Reply = http_venue.Reply

    http_venue.script(
        "/book",
        Reply(429, {"error": "slow down"}, {"Retry-After": "1"}),
        Reply(503, {"error": "busy"}),
        Reply(503, "Service Unavailable"),
        Reply(503, {"error": "busy"}),
        Reply(200, {"ok": True}),
    )
    http_venue.script("/other", Reply(200, {"other": True}))
    async with HttpClient("h-burst", http_venue.url(), FAST) as client:
        main = asyncio.create_task(client.get("/book", endpoint="book"))
        await wait_for(lambda: bool(http_venue.hits("/book")))
        await asyncio.sleep(0.05)  # the 429 has been received: the whole venue waits
        other = await client.get("/other")
        body = await main

    assert body == b'{"ok": true}'
    book = http_venue.hits("/book")
    assert len(book) == 5
    retry_gap = book[1].at - book[0].at
    assert 1.0 <= retry_gap < 1.3, retry_gap  # Retry-After honoured exactly, not backoff
    assert all(b.at - a.at < 0.5 for a, b in itertools.pairwise(book[1:]))
    assert other == b'{"other": true}'
    assert http_venue.hits("/other")[0].at - book[0].at >= 1.0  # a concurrent caller waited too
    labels = {"venue": "h-burst", "endpoint": "book"}
    assert metric("http_errors_total", kind="429", **labels) == 1
    assert metric("http_errors_total", kind="5xx", **labels) == 3
    assert metric("http_requests_total", status="200", **labels) == 1
    assert metric("http_request_duration_seconds_count", **labels) == 5
    assert metric("rate_limit_wait_seconds_total", venue="h-burst") >= 0.9


async def test_retry_after_http_date_is_honoured(http_venue) -> None:
    Reply = http_venue.Reply

    sent = time.time()
    due = int(sent + 1.5)  # HTTP dates have whole seconds
    when = formatdate(due, usegmt=True)
    http_venue.script("/x", Reply(503, {}, {"Retry-After": when}), Reply(200, {}))
    async with HttpClient("h-date", http_venue.url(), FAST) as client:
        await client.get("/x")
    first, second = http_venue.hits("/x")
    assert due - sent - 0.05 <= second.at - first.at < due - sent + 0.3


async def test_retries_exhausted_chains_the_last_cause(http_venue) -> None:
    Reply = http_venue.Reply

    http_venue.script("/x", Reply(503, {"error": {"code": 503, "message": "maintenance"}}))
    async with HttpClient("h-exhaust", http_venue.url(), policy(attempts=2)) as client:
        with pytest.raises(HttpRetryExhausted) as info:
            await client.get("/x")
    assert len(http_venue.hits("/x")) == 3
    assert info.value.status == 503
    cause = info.value.__cause__
    assert isinstance(cause, HttpStatusError) and cause.message == "503: maintenance"
    assert "failed after 3 tries" in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": "market not found"}, "market not found"),
        (
            {"error": {"code": "not_found", "message": "no such ticker"}},
            "not_found: no such ticker",
        ),
        ({"msg": "Invalid symbol.", "code": -1121}, "-1121: Invalid symbol."),
        ({"message": "Unknown API Key"}, "Unknown API Key"),
        ("<html><body>  Bad\n request </body></html>", "<html><body> Bad request </body></html>"),
        ("x" * 500, "x" * 200 + "..."),
    ],
)
async def test_4xx_is_not_retried_and_names_url_status_and_message(
    http_venue, body: Any, expected: str
) -> None:
    Reply = http_venue.Reply

    http_venue.script("/markets/abc", Reply(404, body))
    async with HttpClient("h-4xx", http_venue.url(), FAST) as client:
        with pytest.raises(HttpStatusError) as info:
            await client.get("/markets/abc", {"apiKey": "s3cret", "limit": 5})
    assert len(http_venue.hits("/markets/abc")) == 1
    error = info.value
    assert error.status == 404 and error.message == expected and error.venue == "h-4xx"
    assert error.url == http_venue.url("/markets/abc?apiKey=********&limit=5")
    assert str(error) == f"h-4xx: HTTP 404 from {error.url}: {expected}"
    assert "s3cret" not in str(error)
    assert metric("http_errors_total", venue="h-4xx", endpoint="markets", kind="4xx") >= 1


async def test_slow_responses_time_out_and_are_retried(http_venue) -> None:
    Reply = http_venue.Reply

    http_venue.script("/slow", Reply(200, {}, delay=0.3), Reply(200, {"late": False}))
    http_venue.script("/stuck", Reply(200, {}, delay=0.3))
    async with HttpClient("h-slow", http_venue.url(), policy(timeout=0.1, attempts=1)) as c:
        assert await c.get("/slow") == b'{"late": false}'
        with pytest.raises(HttpRetryExhausted) as info:
            await c.get("/stuck")
    assert isinstance(info.value.__cause__, TimeoutError)
    assert len(http_venue.hits("/stuck")) == 2
    assert metric("http_errors_total", venue="h-slow", endpoint="stuck", kind="timeout") == 2


async def test_extended_recovery_waits_growing_steps_and_recovers(http_venue) -> None:
    Reply = http_venue.Reply

    slow = Reply(200, {}, delay=0.3)
    http_venue.script("/archive", slow, slow, slow, slow, Reply(200, {"rows": 1}))
    patient = policy(attempts=1, timeout=0.05)
    with capture_logs() as logs:
        async with HttpClient("h-recover", http_venue.url(), patient) as client:
            response = await client.request(
                "GET", "/archive", extended_recovery=True, progress=lambda: 42
            )
    assert response.status == 200 and response.body == b'{"rows": 1}'
    hits = [s.at for s in http_venue.hits("/archive")]
    assert len(hits) == 5  # 2 normal tries, then recovery tries 1..3
    # Recovery waits step*2 before its 2nd try and step*3 before its 3rd (plus a timeout).
    assert hits[3] - hits[2] >= 0.05 * 2 and hits[4] - hits[3] >= 0.05 * 3
    events = [(e["event"], e.get("records")) for e in logs if "recover" in e["event"]]
    assert events == [("timeout recovery mode", 42), ("network recovered", 42)]


async def test_extended_recovery_rides_out_5xx_too(http_venue) -> None:
    Reply = http_venue.Reply

    down = Reply(503, {"error": "internal error"})
    http_venue.script("/archive", down, down, down, Reply(200, {"rows": 2}))
    async with HttpClient("h-5xx", http_venue.url(), policy(attempts=1)) as client:
        response = await client.request("GET", "/archive", extended_recovery=True)
    assert response.body == b'{"rows": 2}'
    assert len(http_venue.hits("/archive")) == 4  # 2 normal tries, then recovery tries 1..2


async def test_extended_recovery_gives_up_with_records_logged(http_venue) -> None:
    Reply = http_venue.Reply

    http_venue.script("/archive", Reply(drop=True))  # connection reset on every try
    with capture_logs() as logs:
        async with HttpClient("h-giveup", http_venue.url(), policy(attempts=0)) as client:
            with pytest.raises(HttpRetryExhausted) as info:
                await client.get("/archive", extended_recovery=True, progress=lambda: 7)
    # aiohttp itself resends an idempotent request once when a pooled connection
    # turns out dead, so the server may see up to two hits per try.
    assert 4 <= len(http_venue.hits("/archive")) <= 8
    assert "failed after 4 tries" in str(info.value)
    failed = [e for e in logs if e["event"] == "timeout recovery failed"]
    assert len(failed) == 1 and failed[0]["records"] == 7 and failed[0]["log_level"] == "error"
    assert failed[0]["cause"] == "connection"


async def test_circuit_breaker_opens_probes_and_closes(http_venue) -> None:
    Reply = http_venue.Reply

    http_venue.script("/x", Reply(503, {}), Reply(503, {}), Reply(503, {}), Reply(503, {}))
    strict = policy(attempts=0, breaker_failures=3, breaker_cooldown=0.2)

    def gauge() -> float:
        return metric("http_circuit_state", venue="h-breaker", host=f"127.0.0.1:{http_venue.port}")

    async with HttpClient("h-breaker", http_venue.url(), strict) as client:
        for _ in range(3):
            with pytest.raises(HttpRetryExhausted):
                await client.get("/x")
        assert gauge() == 2
        with pytest.raises(CircuitOpenError):
            await client.get("/x")  # fails fast, nothing sent
        assert len(http_venue.hits("/x")) == 3

        await asyncio.sleep(0.25)
        with pytest.raises(HttpRetryExhausted):
            await client.get("/x")  # the half-open probe fails: open again
        assert len(http_venue.hits("/x")) == 4 and gauge() == 2
        with pytest.raises(CircuitOpenError):
            await client.get("/x")

        http_venue.script("/x", Reply(200, {}, delay=0.1))
        await asyncio.sleep(0.25)
        probe = asyncio.create_task(client.get("/x"))
        await asyncio.sleep(0.02)
        assert gauge() == 1  # half-open: one probe in flight
        follower = asyncio.create_task(client.get("/x"))  # waits for the probe's verdict
        await asyncio.sleep(0.02)
        assert len(http_venue.hits("/x")) == 5  # the probe only
        assert await probe == b"{}"
        assert gauge() == 0
        assert await follower == b"{}"
        assert await client.get("/x") == b"{}"


async def test_a_429_to_the_half_open_probe_does_not_wedge_the_breaker(http_venue) -> None:
    """A probe answered with 429 has no verdict; the next request must be allowed to probe.

    Found by the chaos suite: a 5xx storm opened Polygon's breaker, its probe met a
    429, and every request failed fast from then on -- 48 gaps never healed.
    """
    Reply = http_venue.Reply
    http_venue.script("/y", Reply(503, {}), Reply(503, {}), Reply(429, {}), Reply(200, {}))
    strict = policy(attempts=0, breaker_failures=2, breaker_cooldown=0.1)
    async with HttpClient("h-probe", http_venue.url(), strict) as client:
        for _ in range(2):
            with pytest.raises(HttpRetryExhausted):
                await client.get("/y")
        await asyncio.sleep(0.15)
        with pytest.raises(HttpRetryExhausted):
            await client.get("/y")  # the probe meets a 429
        assert await client.get("/y") == b"{}"  # a new probe goes, and closes the breaker
        assert client.breaker(f"127.0.0.1:{http_venue.port}").state == "closed"


class Clock:
    """The breakers' time, moved by the test: a cooldown passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_fan_out_after_the_cooldown_closes_the_breaker(http_venue) -> None:
    """A gap's window is fetched a few requests at a time, and one failure cancels the rest.

    Found by the chaos suite: the half-open breaker let the first request probe
    and refused its siblings, whose CircuitOpenError cancelled the probe before
    it was sent; every later fetch did the same, so the breaker stayed half-open
    ("next probe in 30.0s") with nothing reaching the venue. The siblings now
    wait for the probe's verdict.
    """
    Reply = http_venue.Reply
    clock = Clock()
    http_venue.script("/down", Reply(503, {}))
    paths = ["/a", "/b", "/c", "/d"]
    for path in paths:
        http_venue.script(path, Reply(200, {"path": path}))
    strict = policy(attempts=0, breaker_failures=2, breaker_cooldown=30.0)
    async with HttpClient("h-fan", http_venue.url(), strict, clock=clock) as client:
        for _ in range(2):
            with pytest.raises(HttpRetryExhausted):
                await client.get("/down")
        with pytest.raises(CircuitOpenError) as refused:
            await client.get("/a")
        assert refused.value.retry_in == 30.0
        assert not http_venue.hits("/a")

        clock.now += 30.0  # the cooldown is over
        async with asyncio.TaskGroup() as group:  # as VenueAdapter.fetch_trade_window does
            fetches = [group.create_task(client.get(path)) for path in paths]
        assert [f.result() for f in fetches] == [f'{{"path": "{path}"}}'.encode() for path in paths]
        assert all(len(http_venue.hits(path)) == 1 for path in paths)
        assert client.breaker(f"127.0.0.1:{http_venue.port}").state == "closed"


async def test_when_the_probe_fails_its_waiters_are_refused_unsent(http_venue) -> None:
    Reply = http_venue.Reply
    clock = Clock()
    http_venue.script("/down", Reply(503, {}))
    strict = policy(attempts=0, breaker_failures=1, breaker_cooldown=30.0)
    async with HttpClient("h-wait", http_venue.url(), strict, clock=clock) as client:
        with pytest.raises(HttpRetryExhausted):
            await client.get("/down")
        clock.now += 30.0
        outcomes = await asyncio.gather(
            *(client.get("/down") for _ in range(4)), return_exceptions=True
        )
        assert isinstance(outcomes[0], HttpRetryExhausted)  # the probe: 503, open again
        assert all(isinstance(o, CircuitOpenError) for o in outcomes[1:])
        assert all(o.retry_in == 30.0 for o in outcomes[1:])  # type: ignore[union-attr]
        assert len(http_venue.hits("/down")) == 2  # the opening failure and the probe
        assert client.breaker(f"127.0.0.1:{http_venue.port}").state == "open"


async def test_a_cancelled_probe_hands_over_to_a_waiter(http_venue, wait_for) -> None:
    Reply = http_venue.Reply
    clock = Clock()
    http_venue.script("/down", Reply(503, {}))
    http_venue.script("/slow", Reply(200, {"n": 1}, delay=2.0), Reply(200, {"n": 2}))
    strict = policy(attempts=0, breaker_failures=1, breaker_cooldown=30.0)
    async with HttpClient("h-cancel", http_venue.url(), strict, clock=clock) as client:
        with pytest.raises(HttpRetryExhausted):
            await client.get("/down")
        clock.now += 30.0
        probe = asyncio.create_task(client.get("/slow"))
        await wait_for(lambda: len(http_venue.hits("/slow")) == 1)  # on the wire
        waiter = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0)  # it asks the breaker, and waits
        assert len(http_venue.hits("/slow")) == 1
        probe.cancel()
        assert await waiter == b'{"n": 2}'  # it probed in the cancelled one's place
        assert client.breaker(f"127.0.0.1:{http_venue.port}").state == "closed"


async def test_one_failing_service_does_not_open_another_ports_circuit(
    http_venue, second_http_venue
) -> None:
    """Services on one machine (the simulators on loopback) each have their own breaker."""
    Reply = http_venue.Reply
    http_venue.script("/down", Reply(503, {}))
    second_http_venue.script("/up", Reply(200, {"up": True}))
    strict = policy(attempts=0, breaker_failures=2, breaker_cooldown=30.0)
    async with HttpClient("h-ports", http_venue.url(), strict) as client:
        for _ in range(2):
            with pytest.raises(HttpRetryExhausted):
                await client.get("/down")
        with pytest.raises(CircuitOpenError):
            await client.get("/down")
        assert await client.get(second_http_venue.url("/up")) == b'{"up": true}'
        assert client.breaker(f"127.0.0.1:{http_venue.port}").state == "open"
        assert client.breaker(f"127.0.0.1:{second_http_venue.port}").state == "closed"
    assert metric("http_circuit_state", venue="h-ports", host=f"127.0.0.1:{http_venue.port}") == 2


def test_breaker_counts_only_consecutive_failures() -> None:
    now = [0.0]
    breaker = CircuitBreaker("h-unit", "example", failures=2, cooldown=5.0, clock=lambda: now[0])
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow() and breaker.retry_in() == 5.0
    now[0] = 5.0
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow()  # only one probe
    breaker.abandon()  # the probe was cancelled: another may go
    assert breaker.allow()


def test_a_probe_that_never_reports_is_given_up_after_a_cooldown() -> None:
    now = [0.0]
    breaker = CircuitBreaker("h-unit", "example", failures=1, cooldown=5.0, clock=lambda: now[0])
    breaker.failure()
    now[0] = 5.0
    assert breaker.allow()  # the probe goes ... and is never heard of again
    now[0] = 9.0
    assert not breaker.allow() and breaker.retry_in() == 1.0
    now[0] = 10.0
    assert breaker.allow() and breaker.state == "half_open"  # a new probe instead
    breaker.success()
    assert breaker.state == "closed"


async def test_params_signer_and_absolute_urls(http_venue) -> None:
    Reply = http_venue.Reply

    http_venue.script("/trade-api/v2/markets", Reply(500, {}), Reply(200, {"cursor": "c2"}))
    http_venue.script("/v3/next", Reply(200, {}))
    calls: list[tuple[str, str]] = []

    def signer(method: str, path: str) -> dict[str, str]:
        calls.append((method, path))
        return {"X-Sig": str(len(calls))}

    base = http_venue.url("/trade-api/v2")
    async with HttpClient("h-params", base, FAST, headers={"X-Key": "k"}, signer=signer) as c:
        params = {"tickers": ["A", "B"], "open": True, "closed": False, "cursor": None, "n": 3}
        await c.get("markets", params)
        await c.post(http_venue.url("/v3/next?cursor=abc"), {"q": 1}, params={"limit": 2})
    first, second = http_venue.hits("/trade-api/v2/markets")
    assert second.query == [
        ("tickers", "A"),
        ("tickers", "B"),
        ("open", "true"),
        ("closed", "false"),
        ("n", "3"),
    ]
    assert (first.headers["X-Sig"], second.headers["X-Sig"]) == ("1", "2")  # signed per attempt
    assert second.headers["X-Key"] == "k"
    assert calls == [("GET", "/trade-api/v2/markets")] * 2 + [("POST", "/v3/next")]
    nxt = http_venue.hits("/v3/next")[0]
    assert nxt.query == [("cursor", "abc"), ("limit", "2")] and nxt.body == b'{"q":1}'
    assert nxt.headers["Content-Type"] == "application/json"


async def test_rate_limit_spaces_requests(http_venue) -> None:
    Reply = http_venue.Reply

    http_venue.script("/r", Reply(200, {}))
    async with HttpClient("h-rate", http_venue.url(), policy(rate=20.0, burst=2)) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.get("/r") for _ in range(6)))
    hits = [s.at for s in http_venue.hits("/r")]
    # Two at once (burst), then one per 50 ms: the last leaves >= 4 intervals after the
    # start. Measured from the client's start, not the first arrival, which a loaded
    # machine can delay (a new connection) more than the last.
    assert hits[-1] - started >= 4 * 0.05 * 0.95
    assert metric("rate_limit_wait_seconds_total", venue="h-rate") > 0


async def test_cursor_pagination_over_http_resumes_from_recorded_cursor(http_venue) -> None:
    Reply = http_venue.Reply

    pages = {None: (["a", "b"], "c1"), "c1": (["c"], "c2"), "c2": (["d"], "LTE=")}
    for cursor, (items, nxt) in pages.items():
        http_venue.script(f"/list/{cursor or 'start'}", Reply(200, {"data": items, "next": nxt}))

    async with HttpClient("h-pages", http_venue.url(), FAST) as client:

        async def fetch(cursor: str | None) -> tuple[list[str], str | None]:
            import json

            doc = json.loads(await client.get(f"/list/{cursor or 'start'}", endpoint="list"))
            return doc["data"], doc["next"]

        seen, saved = [], None
        async for page in paginate_cursor(fetch, end_markers=("LTE=",)):
            seen.extend(page.items)
            saved = page.next_cursor
            if page.cursor is None:
                break  # the job stops after the first page and stored its cursor
        async for page in paginate_cursor(fetch, start=saved, end_markers=("LTE=",)):
            seen.extend(page.items)
    assert seen == ["a", "b", "c", "d"]
    assert saved == "c1"


def test_policy_from_settings() -> None:
    settings = VenueSettings.model_validate(
        {
            "rate_limit": {"requests_per_second": 3, "burst": 4},
            "retry": {"attempts": 2, "timeout_seconds": 9, "recovery_step_seconds": 1},
        }
    )
    p = HttpPolicy.from_settings(settings)
    assert (p.rate, p.burst, p.attempts, p.timeout, p.recovery_step) == (3, 4, 2, 9, 1)
    assert p.breaker_failures == 10 and p.backoff_base == 0.5
