"""Prometheus metrics, defined once for the whole process.

Names are part of the public interface: users alert on them. Labels stay
bounded -- venue, endpoint, kind, type -- never a market or token id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ACTIVE_STREAMS",
    "BOOK_INCONSISTENCIES",
    "BOOK_RESYNCS",
    "CIRCUIT_STATE",
    "HTTP_ERRORS",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "INGESTION_ERRORS",
    "QUEUE_DROPPED",
    "RATE_LIMIT_WAIT",
    "REJECTED_FRAMES",
    "TRADES_INGESTED",
    "WS_MESSAGES",
    "WS_RECONNECTIONS",
    "WS_STATE",
]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# -- WebSocket transport -------------------------------------------------------
WS_RECONNECTIONS = Counter(
    "websocket_reconnections_total", "WebSocket reconnects after a drop.", ["venue"]
)
WS_MESSAGES = Counter(
    "websocket_messages_received_total",
    "WebSocket frames received, by venue and message type.",
    ["venue", "type"],
)
WS_STATE = Gauge(
    "websocket_connection_state",
    "1 for the current state of each venue connection state machine, else 0.",
    ["venue", "state"],
)
QUEUE_DROPPED = Counter(
    "websocket_queue_dropped_total",
    "Frames dropped because the consumer queue was full (drop_oldest policy).",
    ["venue"],
)
ACTIVE_STREAMS = Gauge(
    "market_data_active_streams", "Open streaming connections per venue.", ["venue"]
)

# -- HTTP transport ------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests sent, by venue, endpoint and status.",
    ["venue", "endpoint", "status"],
)
HTTP_ERRORS = Counter(
    "http_errors_total",
    "Failed HTTP attempts by venue, endpoint and kind.",
    ["venue", "endpoint", "kind"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency.",
    ["venue", "endpoint"],
    buckets=_LATENCY_BUCKETS,
)
RATE_LIMIT_WAIT = Counter(
    "rate_limit_wait_seconds_total", "Seconds spent waiting for a rate-limit token.", ["venue"]
)
CIRCUIT_STATE = Gauge(
    "http_circuit_state",
    "Circuit breaker per host: 0 closed, 1 half-open, 2 open.",
    ["venue", "host"],
)

# -- Parsing, books, ingestion ---------------------------------------------------
REJECTED_FRAMES = Counter(
    "venue_frames_rejected_total",
    "Frames that could not be parsed or had an unknown type; counted, logged once, skipped.",
    ["venue", "reason"],
)
BOOK_INCONSISTENCIES = Counter(
    "book_inconsistencies_total",
    "Book integrity failures by venue and reason.",
    ["venue", "reason"],
)
BOOK_RESYNCS = Counter("book_resyncs_total", "Book resnapshots requested.", ["venue"])
TRADES_INGESTED = Counter(
    "market_data_trades_ingested_total", "Trades accepted by the pipeline.", ["venue"]
)
INGESTION_ERRORS = Counter(
    "market_data_ingestion_errors_total",
    "Ingestion errors by venue and kind.",
    ["venue", "kind"],
)
