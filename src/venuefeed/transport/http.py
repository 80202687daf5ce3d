"""The one HTTP client every venue uses: rate limit, retries, Retry-After, circuit breaker.

Venue code says which path to call and how to read the answer; surviving the
network is done here, once (ARCHITECTURE rule 2). A request goes through, in
order: the host's circuit breaker (fail fast while a host is down; after
the cooldown one probe goes and the others wait for its verdict), a slot
among the client's ``max_in_flight`` (a flood cannot outrun a 429), the
venue's token bucket (never exceed its rate), the signer (a fresh signature on
every attempt, since Kalshi's embeds a timestamp), then the send with a
per-request timeout. Failures worth retrying (timeouts, connection errors,
429, 5xx) are retried with full-jitter backoff, or exactly after the venue's
``Retry-After``; other 4xx are the caller's mistake and raise at once with the
venue's own error text.

Long jobs (a bulk archive download) may ask for *extended recovery*: when the
normal retries are spent on timeouts, connection errors or 5xx answers (a
host that is up but failing is an outage too), keep trying at growing
intervals (60 s, 120 s, ...) rather than lose hours of progress to a short
outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiohttp
import msgspec
from yarl import URL

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.transport.backoff import Backoff, parse_retry_after
from venuefeed.transport.ratelimit import TokenBucket

if TYPE_CHECKING:
    from venuefeed.config import VenueSettings

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "HttpClient",
    "HttpError",
    "HttpPolicy",
    "HttpRetryExhausted",
    "HttpStatusError",
    "HttpTap",
    "Response",
    "tapping_http",
]

Signer = Callable[[str, str], Mapping[str, str]]
FailureKind = Literal["timeout", "connection", "429", "5xx", "circuit_open"]

_RECOVERABLE: frozenset[FailureKind] = frozenset({"timeout", "connection", "5xx", "circuit_open"})
_SECRET_QUERY_KEYS = frozenset({"apikey", "api_key", "key", "token", "secret", "signature"})
_EXCERPT_CHARS = 200


class HttpTap(Protocol):
    """Sees every HTTP exchange of a client as it completes (the recorder).

    ``url`` has credential-like query values masked; request headers (auth,
    signatures) are never passed. ``status`` is 0 and ``error`` says why when no
    response came (timeout, connection). Must not block: it runs on the loop.
    """

    def on_http(
        self,
        method: str,
        url: str,
        request_body: bytes | None,
        ts_sent: int,
        ts_recv: int,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        error: str,
    ) -> None: ...


_TAPS: ContextVar[Callable[[str], HttpTap] | None] = ContextVar("venuefeed_http_taps", default=None)


@contextlib.contextmanager
def tapping_http(taps: Callable[[str], HttpTap]) -> Iterator[None]:
    """Every :class:`HttpClient` created inside gets ``taps(venue)`` as its tap.

    Venue adapters build their HTTP clients themselves; this lets whoever
    builds the adapter (the service, when recording) reach them without every
    venue passing a tap through. Scoped to the ``with`` block and the current
    context: clients created elsewhere are untouched.
    """
    token = _TAPS.set(taps)
    try:
        yield
    finally:
        _TAPS.reset(token)


@dataclass(frozen=True)
class HttpPolicy:
    """How hard to try. ``attempts`` is the number of retries after the first try."""

    timeout: float = 15.0
    attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    recovery_attempts: int = 10
    recovery_step: float = 60.0
    """Extended recovery waits ``step * 1``, ``step * 2``, ... before each further try."""
    breaker_failures: int = 10
    breaker_cooldown: float = 30.0
    rate: float = 10.0
    burst: int = 10
    max_in_flight: int = 8
    """Requests of one client on the wire at once. A venue's ``Retry-After`` stops only
    the requests not yet sent; the ones already in flight land inside the penalty
    window, and Binance bans an IP (418) that keeps sending after a 429."""

    @classmethod
    def from_settings(cls, venue: VenueSettings) -> HttpPolicy:
        retry, limit = venue.retry, venue.rate_limit
        return cls(
            timeout=retry.timeout_seconds,
            attempts=retry.attempts,
            backoff_base=retry.backoff_base_seconds,
            backoff_max=retry.backoff_max_seconds,
            recovery_attempts=retry.recovery_attempts,
            recovery_step=retry.recovery_step_seconds,
            breaker_failures=retry.breaker_failures,
            breaker_cooldown=retry.breaker_cooldown_seconds,
            rate=limit.requests_per_second,
            burst=limit.burst,
            max_in_flight=limit.max_in_flight,
        )


class HttpError(Exception):
    """A request that did not produce a usable response."""

    def __init__(self, message: str, *, venue: str, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.venue = venue
        self.url = url
        self.status = status


class HttpStatusError(HttpError):
    """The venue answered with an error status; ``message`` is its own explanation."""

    def __init__(self, *, venue: str, url: str, status: int, message: str, body: bytes) -> None:
        super().__init__(
            f"{venue}: HTTP {status} from {url}: {message}", venue=venue, url=url, status=status
        )
        self.message = message
        self.body = body


class HttpRetryExhausted(HttpError):
    """Every retry failed; the last underlying cause is chained (``__cause__``)."""


class CircuitOpenError(HttpError):
    """The host's circuit breaker is open: the request was not sent.

    ``retry_in``: seconds until the breaker lets a probe through (a caller that
    retries sooner is only refused again).
    """

    def __init__(self, message: str, *, venue: str, url: str, retry_in: float = 0.0) -> None:
        super().__init__(message, venue=venue, url=url)
        self.retry_in = retry_in


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class CircuitBreaker:
    """Per-host breaker: stop hammering a host that keeps failing, probe it later.

    Closed: requests flow, consecutive failures are counted. Open (after
    ``failures`` in a row): requests fail fast with :class:`CircuitOpenError`
    for ``cooldown`` seconds. Half-open: one probe goes through; success closes
    the breaker, failure opens it again for another cooldown. Timeouts,
    connection errors and 5xx are failures; a 429 is neither (the host is up,
    the rate limiter deals with it); any other answer is a success.

    The other requests of a half-open breaker wait for the probe's verdict
    (:meth:`admit`) rather than fail fast. Callers fan out -- a gap's window is
    fetched a few groups at a time, and the first failure cancels the rest --
    so a sibling refused while the probe is on its way cancelled the probe
    before it was sent; the next attempt did the same, and the breaker stayed
    half-open with nothing ever reaching the host (the chaos suite: Polygon
    for 3 minutes, Polymarket's gaps for up to 48 s after each cooldown).
    """

    CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
    _GAUGE_VALUE: Mapping[str, int] = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

    def __init__(
        self,
        venue: str,
        host: str,
        failures: int,
        cooldown: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.threshold = failures
        self.cooldown = cooldown
        self.state = self.CLOSED
        self.failures = 0
        self._clock = clock
        self._opened_at = 0.0
        self._probing = False
        self._probe_started = 0.0
        self._verdict: asyncio.Event | None = None
        """Set when the probe in flight succeeds, fails or is abandoned."""
        self._gauge = metrics.CIRCUIT_STATE.labels(venue=venue, host=host)
        self._gauge.set(0)
        self._log = get_logger("venuefeed.transport.http", venue=venue, host=host)

    def retry_in(self) -> float:
        """Seconds until a request may be let through (0 when one may go now)."""
        now = self._clock()
        if self.state == self.OPEN:
            return max(0.0, self._opened_at + self.cooldown - now)
        if self.state == self.HALF_OPEN and self._probing:
            return max(0.0, self._probe_started + self.cooldown - now)
        return 0.0

    def allow(self) -> bool:
        """May a request go now? In half-open, only the single probe may.

        A probe that has not reported for a whole cooldown is given up on and
        the next caller probes instead: whatever held it (a lost task, a wait
        that never ended), the breaker must not stay half-open for good -- the
        chaos suite once saw a host refused for minutes that way, its gaps
        never healed.
        """
        now = self._clock()
        if self.state == self.OPEN and now >= self._opened_at + self.cooldown:
            self._set(self.HALF_OPEN)
        if self.state == self.HALF_OPEN:
            if self._probing and now < self._probe_started + self.cooldown:
                return False
            if self._probing:
                self._log.warning("circuit probe lost: probing again", cooldown=self.cooldown)
                self._settle_probe()
            self._probing = True
            self._probe_started = now
            self._verdict = asyncio.Event()
        return self.state != self.OPEN

    async def admit(self) -> bool:
        """May a request go? Like :meth:`allow`, but waits out a probe in flight.

        Open: False at once (fail fast). Half-open with the probe on its way:
        wait for its verdict -- success lets this request go, failure
        refuses it, an abandoned probe lets a waiter probe instead -- and
        for no longer than the probe has before it counts as lost.
        """
        while not self.allow():
            verdict = self._verdict
            if self.state != self.HALF_OPEN or verdict is None:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(verdict.wait(), timeout=max(self.retry_in(), 0.001))
        return True

    def success(self) -> None:
        self.failures = 0
        self._settle_probe()
        if self.state != self.CLOSED:
            self._log.info("circuit closed")
            self._set(self.CLOSED)

    def failure(self) -> None:
        self.failures += 1
        self._settle_probe()
        if self.state == self.HALF_OPEN or (
            self.state == self.CLOSED and self.failures >= self.threshold
        ):
            self._opened_at = self._clock()
            self._log.warning("circuit open", failures=self.failures, cooldown=self.cooldown)
            self._set(self.OPEN)

    def abandon(self) -> None:
        """The probe was cancelled before it had an outcome: let another one go."""
        self._settle_probe()

    def _settle_probe(self) -> None:
        self._probing = False
        if self._verdict is not None:
            self._verdict.set()  # the waiters look again
            self._verdict = None

    def _set(self, state: str) -> None:
        self.state = state
        self._gauge.set(self._GAUGE_VALUE[state])


@dataclass(slots=True)
class _Failure:
    kind: FailureKind
    error: Exception
    status: int | None = None
    retry_after: float | None = None


class HttpClient:
    """One venue's HTTP client. Create it anywhere; it opens its session on first use."""

    def __init__(
        self,
        venue: str,
        base_url: str,
        policy: HttpPolicy,
        *,
        headers: Mapping[str, str] | None = None,
        signer: Signer | None = None,
        retry_statuses: Collection[int] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``retry_statuses``: 4xx codes the venue uses like a 429 -- back off for its
        ``Retry-After`` and try again -- e.g. Binance's 418 (IP ban after ignoring 429s).
        ``clock``: the circuit breakers' time (monotonic seconds)."""
        self.venue = venue
        self._retry_statuses = frozenset(retry_statuses)
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.limiter = TokenBucket(policy.rate, policy.burst)
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        """Held from before the rate limiter until the answer is read and any
        ``Retry-After`` is in the limiter, so a request waiting for a slot sees the penalty."""
        self._headers = dict(headers or {})
        self._signer = signer
        self._session: aiohttp.ClientSession | None = None
        self._breakers: dict[str, CircuitBreaker] = {}
        self._clock = clock
        self._log = get_logger("venuefeed.transport.http", venue=venue)
        self._wait_counter = metrics.RATE_LIMIT_WAIT.labels(venue=venue)
        taps = _TAPS.get()
        self.tap: HttpTap | None = taps(venue) if taps is not None else None
        """Sees every exchange (see :func:`tapping_http`); off when None."""

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def breaker(self, host: str) -> CircuitBreaker:
        """The circuit breaker of ``host`` (created closed on first use).

        ``host`` is the URL's host with its port when the URL names a non-default
        one (``127.0.0.1:8080``): services on one machine are separate hosts to
        the breaker, a real venue's ``clob.polymarket.com`` is just that.
        """
        found = self._breakers.get(host)
        if found is None:
            found = self._breakers[host] = CircuitBreaker(
                self.venue,
                host,
                self.policy.breaker_failures,
                self.policy.breaker_cooldown,
                clock=self._clock,
            )
        return found

    async def get(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> bytes:
        return (await self.request("GET", path, params=params, **kw)).body

    async def post(self, path: str, json: Any, **kw: Any) -> bytes:
        return (await self.request("POST", path, json=json, **kw)).body

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        endpoint: str | None = None,
        extended_recovery: bool = False,
        progress: Callable[[], int] | None = None,
    ) -> Response:
        """Send with retries; 2xx -> :class:`Response`, else a typed :class:`HttpError`.

        ``path`` is relative to the base URL or an absolute http(s) URL (a
        venue's "next page" link). ``endpoint`` labels metrics and must be
        low-cardinality; by default it is the first segment of ``path``.
        ``progress()`` reports how many records the caller has so far, for the
        extended-recovery log lines.
        """
        url = self._build_url(path, params)
        label = endpoint or _default_endpoint(url if _is_absolute(path) else path)
        body = None if json is None else msgspec.json.encode(json)
        breaker = self.breaker(url.host_port_subcomponent or "")
        backoff = Backoff(self.policy.backoff_base, self.policy.backoff_max)
        failure: _Failure | None = None
        for attempt in range(self.policy.attempts + 1):
            if failure is not None and failure.retry_after is None:
                # With Retry-After the bucket is already blocked for exactly that long.
                await asyncio.sleep(backoff.next_delay())
            try:
                result = await self._attempt(method, url, label, body, breaker)
            except CircuitOpenError as exc:
                if not extended_recovery:
                    raise
                failure = _Failure("circuit_open", exc)
                break
            if isinstance(result, Response):
                return result
            failure = result
            if attempt < self.policy.attempts:
                self._log.debug(
                    "http retry", url=_display(url), kind=failure.kind, attempt=attempt + 1
                )
        assert failure is not None
        if extended_recovery and failure.kind in _RECOVERABLE:
            return await self._recover(method, url, label, body, breaker, failure, progress)
        raise self._exhausted(method, url, failure, self.policy.attempts + 1) from failure.error

    # -- one attempt ---------------------------------------------------------

    async def _attempt(
        self, method: str, url: URL, label: str, body: bytes | None, breaker: CircuitBreaker
    ) -> Response | _Failure:
        """Send once. Returns the response, or a retryable failure; raises the rest."""
        if not await breaker.admit():
            metrics.HTTP_ERRORS.labels(self.venue, label, "circuit_open").inc()
            retry_in = breaker.retry_in()
            raise CircuitOpenError(
                f"{self.venue}: circuit open for {breaker.host}, next probe in "
                f"{retry_in:.1f}s: {_display(url)}",
                venue=self.venue,
                url=_display(url),
                retry_in=retry_in,
            )
        outcome_known = False
        try:  # whatever ends this attempt without an outcome frees the probe
            async with self._slots:
                waited = await self.limiter.acquire()
                if waited > 0:
                    self._wait_counter.inc(waited)
                result = await self._send(method, url, label, body)
                outcome_known = True
                if not isinstance(result, Response) and result.retry_after is not None:
                    self.limiter.penalize(result.retry_after)
        finally:
            if not outcome_known:
                breaker.abandon()
        if isinstance(result, Response):
            breaker.success()
            if 200 <= result.status < 300:
                return result
            metrics.HTTP_ERRORS.labels(self.venue, label, "4xx").inc()
            raise _status_error(self.venue, url, result)
        if result.kind != "429":
            breaker.failure()
        else:  # the host answered but told us to wait: no verdict, let a later probe decide
            breaker.abandon()
        metrics.HTTP_ERRORS.labels(self.venue, label, result.kind).inc()
        return result

    async def _send(
        self, method: str, url: URL, label: str, body: bytes | None
    ) -> Response | _Failure:
        headers = dict(self._headers)
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        if self._signer is not None:
            headers.update(self._signer(method, url.raw_path))
        session = self._get_session()
        start = time.perf_counter()
        sent = time.time_ns()
        try:
            async with session.request(method, url, data=body, headers=headers) as resp:
                data = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except TimeoutError as exc:
            metrics.HTTP_REQUESTS.labels(self.venue, label, "timeout").inc()
            self._tap(method, url, body, sent, 0, {}, b"", "timeout")
            return _Failure("timeout", exc)
        except (aiohttp.ClientError, OSError) as exc:
            metrics.HTTP_REQUESTS.labels(self.venue, label, "connection").inc()
            self._tap(method, url, body, sent, 0, {}, b"", f"connection: {type(exc).__name__}")
            return _Failure("connection", exc)
        finally:
            metrics.HTTP_LATENCY.labels(self.venue, label).observe(time.perf_counter() - start)
        metrics.HTTP_REQUESTS.labels(self.venue, label, str(status)).inc()
        self._tap(method, url, body, sent, status, resp_headers, data, "")
        response = Response(status, resp_headers, data, str(url))
        if status == 429 or status >= 500 or status in self._retry_statuses:
            return _Failure(
                "5xx" if status >= 500 else "429",
                _status_error(self.venue, url, response),
                status,
                parse_retry_after(resp_headers.get("Retry-After")),
            )
        return response

    def _tap(
        self,
        method: str,
        url: URL,
        body: bytes | None,
        sent: int,
        status: int,
        headers: Mapping[str, str],
        data: bytes,
        error: str,
    ) -> None:
        tap = self.tap
        if tap is not None:
            tap.on_http(
                method, _display(url), body, sent, time.time_ns(), status, headers, data, error
            )

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily so the session binds to the loop that actually runs it.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout),
                connector=aiohttp.TCPConnector(ssl=True),
            )
        return self._session

    # -- extended recovery ---------------------------------------------------

    async def _recover(
        self,
        method: str,
        url: URL,
        label: str,
        body: bytes | None,
        breaker: CircuitBreaker,
        failure: _Failure,
        progress: Callable[[], int] | None,
    ) -> Response:
        def records() -> int | None:
            return progress() if progress is not None else None

        shown = _display(url)
        self._log.warning(
            "timeout recovery mode",
            url=shown,
            cause=failure.kind,
            records=records(),
            attempts=self.policy.recovery_attempts,
            step=self.policy.recovery_step,
        )
        for n in range(1, self.policy.recovery_attempts + 1):
            await asyncio.sleep(self.policy.recovery_step * n)
            if breaker.state == breaker.OPEN:  # it would refuse the try (a probe is waited for)
                await asyncio.sleep(breaker.retry_in())
            try:
                result = await self._attempt(method, url, label, body, breaker)
            except CircuitOpenError as exc:  # another caller's probe failed: open again
                failure = _Failure("circuit_open", exc)
                continue
            if isinstance(result, Response):
                self._log.warning("network recovered", url=shown, attempt=n, records=records())
                return result
            failure = result
        self._log.error(
            "timeout recovery failed",
            url=shown,
            cause=failure.kind,
            records=records(),
            attempts=self.policy.recovery_attempts,
        )
        total = self.policy.attempts + 1 + self.policy.recovery_attempts
        raise self._exhausted(method, url, failure, total) from failure.error

    def _exhausted(
        self, method: str, url: URL, failure: _Failure, tries: int
    ) -> HttpRetryExhausted:
        return HttpRetryExhausted(
            f"{self.venue}: {method} {_display(url)} failed after {tries} tries; "
            f"last: {failure.kind}: {str(failure.error) or type(failure.error).__name__}",
            venue=self.venue,
            url=_display(url),
            status=failure.status,
        )

    # -- URLs ----------------------------------------------------------------

    def _build_url(self, path: str, params: Mapping[str, Any] | None) -> URL:
        url = URL(path) if _is_absolute(path) else URL(f"{self.base_url}/{path.lstrip('/')}")
        query = _query_pairs(params) if params else []
        return url.extend_query(query) if query else url


def _is_absolute(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _query_pairs(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Sequences become repeated keys, bools ``true``/``false``; None values are left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        many = isinstance(value, Sequence) and not isinstance(value, str | bytes)
        values = value if many else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                pairs.append((key, "true" if item else "false"))
            else:
                pairs.append((key, str(item)))
    return pairs


def _default_endpoint(path: str | URL) -> str:
    """First path segment: bounded label values even when later segments are ids."""
    text = path.path if isinstance(path, URL) else path.split("?", 1)[0]
    for segment in text.split("/"):
        if segment:
            return segment
    return "/"


def _display(url: URL) -> str:
    """The URL for messages and logs, with credential-like query values masked."""
    if not url.query:
        return str(url)
    masked = [
        (k, "********" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in url.query.items()
    ]
    return str(url.with_query(masked))


def _status_error(venue: str, url: URL, response: Response) -> HttpStatusError:
    return HttpStatusError(
        venue=venue,
        url=_display(url),
        status=response.status,
        message=_error_text(response.body),
        body=response.body,
    )


def _error_text(body: bytes) -> str:
    """The venue's own error message from a JSON body, else a short excerpt of the body."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        doc = None
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("msg")
            code = error.get("code")
            if message is not None:
                return f"{code}: {message}" if code is not None else str(message)
        elif isinstance(error, str) and error:
            return error
        for key in ("msg", "message", "detail"):
            message = doc.get(key)
            if isinstance(message, str) and message:
                code = doc.get("code")
                return f"{code}: {message}" if code is not None else message
    text = " ".join(body[: _EXCERPT_CHARS * 4].decode("utf-8", "replace").split())
    if not text:
        return "(empty body)"
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "..."
