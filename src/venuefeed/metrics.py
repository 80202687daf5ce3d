"""Prometheus metrics, defined once for the whole process.

Names are part of the public interface: users alert on them. Labels stay
bounded -- venue, endpoint, kind, type -- never a market or token id.

Most metrics are ``prometheus_client`` objects. The few counted once per event
on the hot path are :class:`PlainCounter`: plain ints in a dict, read when
``/metrics`` is scraped, so counting an event costs one dict update instead of
a labelled child's lock and three calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

__all__ = [
    "ACTIVE_STREAMS",
    "ARB_BEST_EDGE",
    "ARB_CONFIRMED_PAIRS",
    "ARB_CROSSED_PAIRS",
    "BOOK_INCONSISTENCIES",
    "BOOK_RESYNCS",
    "CIRCUIT_STATE",
    "HTTP_ERRORS",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "INGESTION_ERRORS",
    "KAFKA_DELIVERIES",
    "KAFKA_PUBLISH_LATENCY",
    "NATS_DUPLICATES",
    "PIPELINE_EVENTS",
    "QUALITY_CHECKS",
    "QUEUE_DROPPED",
    "RATE_LIMIT_WAIT",
    "REJECTED_FRAMES",
    "SINK_BUFFERED_BATCHES",
    "SINK_DEAD_LETTERS",
    "SINK_FAILING",
    "SINK_RECORDS",
    "SINK_TEXT_DECIMALS",
    "SINK_UNAVAILABLE",
    "SPOOL_BATCHES",
    "SPOOL_BLOCKED",
    "SPOOL_BYTES",
    "TRADES_INGESTED",
    "WHALE_POSITIONS",
    "WS_MESSAGES",
    "WS_RECONNECTIONS",
    "WS_STATE",
    "PlainCounter",
]


class PlainCounter:
    """A Prometheus counter whose samples are plain ints, added to by their owner directly.

    ``counts`` maps a tuple of label values (in ``labelnames`` order) to its
    total; the owner adds with ``counts[key] = counts.get(key, 0) + n``, and
    :meth:`collect` reads a copy when the registry is scraped, so every scrape
    sees exact, current totals. Meant for counts made on the event loop's
    thread, once per event: an update is then a plain dict update, and the
    copy a scrape takes from another thread is atomic under the interpreter
    lock (keys are tuples of strings). Every sample carries this counter's
    creation time as ``_created``.
    """

    __slots__ = ("_created", "counts", "documentation", "labelnames", "name")

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.counts: dict[tuple[str, ...], int] = {}
        self._created = time.time()
        registry.register(self)

    def inc(self, *labels: str, amount: int = 1) -> None:
        """Add ``amount`` to one label set (off the hot path; there, update :attr:`counts`)."""
        self.counts[labels] = self.counts.get(labels, 0) + amount

    def value(self, *labels: str) -> int:
        """The total of one label set (0 before its first count)."""
        return self.counts.get(labels, 0)

    def describe(self) -> list[Metric]:
        """The family without samples: lets the registry refuse a duplicate name up front."""
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, total in sorted(self.counts.copy().items()):
            family.add_metric(labels, total, created=self._created)
        yield family


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
TRADES_INGESTED = PlainCounter(
    "market_data_trades_ingested_total", "Trades accepted by the pipeline.", ["venue"]
)
INGESTION_ERRORS = Counter(
    "market_data_ingestion_errors_total",
    "Ingestion errors by venue and kind.",
    ["venue", "kind"],
)

# -- Pipeline and service ------------------------------------------------------------
PIPELINE_EVENTS = PlainCounter(
    "pipeline_events_total",
    "Events through the pipeline by venue, event type and outcome (stored, duplicate, ...).",
    ["venue", "type", "outcome"],
)
QUALITY_CHECKS = PlainCounter(
    "quality_checks_total",
    "Quality stage outcomes: g1_stale, g3_backfilled, g3_missing, g5_flagged.",
    ["venue", "check"],
)
TRADE_LATENCY = Histogram(
    "trade_processing_latency_seconds",
    "From frame receipt to durable storage of a trade.",
    buckets=_LATENCY_BUCKETS,
)
WHALE_TRADES = Counter(
    "whale_trades_detected_total",
    "Whale trades; address is a watched wallet or 'other' for large trades by anyone.",
    ["address", "side"],
)
ACTIVE_WHALES = Gauge("active_whale_subscriptions", "Watched whale wallets currently enabled.")
SINK_QUEUE = Gauge("pipeline_sink_queue_records", "Records waiting for the sink writer.")
BACKPRESSURE_WAITS = Counter(
    "pipeline_backpressure_waits_total", "Times intake waited because the sink queue was full."
)
COMPONENT_RESTARTS = Counter(
    "service_component_restarts_total",
    "Supervised component restarts after a failure.",
    ["component"],
)
DATA_GAPS = Counter("data_gaps_total", "Detected data gaps by venue and cause.", ["venue", "cause"])
# -- Sinks -------------------------------------------------------------------------
SINK_RECORDS = Counter(
    "sink_records_written_total", "Records acknowledged as durable by each sink.", ["sink"]
)
SINK_UNAVAILABLE = Counter(
    "sink_unavailable_total", "Writes that found a sink's backend unreachable.", ["sink"]
)
SINK_FAILING = Gauge(
    "sink_failing",
    "1 while a sink cannot store: its batches are spooled or held (see /api/status problems).",
    ["sink"],
)
SINK_DEAD_LETTERS = Counter(
    "sink_dead_letters_total",
    "Records a sink proved invalid, set aside in the dead-letter store with the reason.",
    ["sink"],
)
SINK_TEXT_DECIMALS = Counter(
    "sink_text_decimals_total",
    "Parquet decimals too wide for their decimal column, kept exactly as text in _exact.",
    ["sink", "table"],
)
SINK_BUFFERED_BATCHES = Gauge(
    "sink_buffered_batches", "Batches waiting in a sink's fan-out buffer.", ["sink"]
)
SPOOL_BYTES = Gauge("sink_spool_bytes", "Bytes waiting in a sink's on-disk spool.", ["sink"])
SPOOL_BATCHES = Gauge("sink_spool_batches", "Batches waiting in a sink's on-disk spool.", ["sink"])
SPOOL_BLOCKED = Counter(
    "sink_spool_blocked_total",
    "Writes that had to wait because a sink's spool was full (backpressure).",
    ["sink"],
)
KAFKA_PUBLISH_LATENCY = Histogram(
    "kafka_publish_latency_seconds",
    "Time from produce() to the broker's delivery report (acks=all).",
    ["topic"],
    buckets=_LATENCY_BUCKETS,
)
KAFKA_DELIVERIES = Counter(
    "kafka_deliveries_total", "Kafka delivery reports by topic and result.", ["topic", "result"]
)
NATS_DUPLICATES = Counter(
    "nats_publish_duplicates_total",
    "JetStream publishes the server recognised as duplicates (Nats-Msg-Id) and dropped.",
    ["stream"],
)
ARB_BEST_EDGE = Gauge(
    "arb_best_edge",
    "The largest fee-adjusted edge per contract among the confirmed Kalshi/Polymarket pairs "
    "(> 0: buying on one venue and selling on the other pays after both taker fees; NaN while "
    "none is quoted). Which pair: /api/v1/pairs/quotes, the pair_quotes table, arb_spreads.",
)
ARB_CROSSED_PAIRS = Gauge(
    "arb_crossed_pairs", "Confirmed cross-venue pairs whose fee-adjusted edge is above 0."
)
ARB_CONFIRMED_PAIRS = Gauge("arb_confirmed_pairs", "Cross-venue pairs confirmed and quoted.")
WHALE_POSITIONS = Counter(
    "whale_position_changes_total",
    "Watched wallets' position changes; kind: opened, increased, reduced, closed.",
    ["venue", "kind"],
)
