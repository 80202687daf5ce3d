"""Settings: a YAML file, then ``VENUEFEED_*`` environment variables, then CLI flags.

The environment names the source documents use (``KALSHI_API_KEY_ID``,
``DATABASE_URL``, ``PROMETHEUS_PORT`` ...; see :data:`SEED_ALIASES`) are read
too, as aliases: they beat the file, and a ``VENUEFEED_*`` variable for the
same key beats them.

Later sources win: a flag beats the environment, which beats the file, which
beats the defaults here. Nested keys use ``__`` in the environment, e.g.
``VENUEFEED_QUALITY__MAX_TRADE_AGE_SECONDS=120`` or
``VENUEFEED_VENUES__KALSHI__CREDENTIALS__API_KEY_ID=...``.

A wrong value stops the program at start with :class:`ConfigError`, which names
the key and where the value came from (the file, or the variable). Unknown keys
in the file are errors too: a typo must not silently fall back to a default.

Venue sections are deliberately generic (``urls``, ``credentials``, ``options``)
so that adding a venue needs no change here (ARCHITECTURE rule 8); each venue
adapter knows its own default hosts and validates its own options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from venuefeed.log import mask_url_passwords

__all__ = [
    "ApiSettings",
    "ClusterSettings",
    "ConfigError",
    "DiscoverySettings",
    "IngestionSettings",
    "QualitySettings",
    "RateLimitSettings",
    "RecordingSettings",
    "Settings",
    "StorageSettings",
    "VenueSettings",
    "WebSocketSettings",
    "load_config",
    "load_yaml_file",
]

ENV_PREFIX = "VENUEFEED_"
_NOT_SETTINGS = frozenset({"VENUEFEED_CONFIG"})

SEED_ALIASES: dict[str, str] = {
    "KALSHI_API_KEY_ID": "venues.kalshi.credentials.api_key_id",
    "KALSHI_API_PRIVATE_KEY": "venues.kalshi.credentials.private_key",
    "POLYMARKET_API_KEY": "venues.polymarket.credentials.api_key",
    "POLYMARKET_API_SECRET": "venues.polymarket.credentials.api_secret",
    "POLYMARKET_API_PASSPHRASE": "venues.polymarket.credentials.api_passphrase",
    "POLYGON_API_KEY": "venues.polygon.credentials.api_key",
    "BINANCE_API_KEY": "venues.binance.credentials.api_key",
    "BINANCE_API_SECRET": "venues.binance.credentials.api_secret",
    "DATABASE_URL": "storage.database_url",
    "KAFKA_BOOTSTRAP_SERVERS": "bus.kafka_bootstrap_servers",
    "PROMETHEUS_PORT": "metrics.port",
}
"""Environment names from the documents venuefeed grew from (seeds 000-002) -> settings."""
"""Environment variables with the prefix that are not settings (the CLI reads them)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RateLimitSettings(_Section):
    """Token bucket for one venue's REST calls."""

    requests_per_second: float = Field(default=10.0, gt=0)
    burst: int = Field(default=10, ge=1)
    max_in_flight: int = Field(default=8, ge=1)
    """Requests on the wire at once: after a 429 only these can still reach the venue."""


class RetrySettings(_Section):
    """Retries of one HTTP request, and the extended recovery for long jobs."""

    attempts: int = Field(default=5, ge=0)
    backoff_base_seconds: float = Field(default=0.5, gt=0)
    backoff_max_seconds: float = Field(default=30.0, gt=0)
    timeout_seconds: float = Field(default=15.0, gt=0)
    recovery_attempts: int = Field(default=10, ge=0)
    recovery_step_seconds: float = Field(default=60.0, ge=0)
    breaker_failures: int = Field(default=10, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)


class WebSocketSettings(_Section):
    """Reconnect and heartbeat of one venue's streams (the transport applies them)."""

    idle_timeout_seconds: float = Field(default=30, gt=0)
    backoff_base_seconds: float = Field(default=1, gt=0)
    backoff_cap_seconds: float = Field(default=60, gt=0)
    stable_after_seconds: float = Field(default=30, gt=0)
    ping_interval_seconds: float | None = Field(
        default=20, gt=0, description="WebSocket protocol pings; venues with text pings ignore it."
    )


class VenueSettings(_Section):
    """One venue. Hosts default to the venue's real production endpoints."""

    enabled: bool = False
    urls: dict[str, str] = Field(
        default_factory=dict,
        description="Overrides of the venue's endpoints by name (rest, ws, gamma, clob ...).",
    )
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    websocket: WebSocketSettings = Field(default_factory=WebSocketSettings)
    instruments: list[str] = Field(
        default_factory=list, description="Instruments to track where discovery does not apply."
    )
    options: dict[str, Any] = Field(default_factory=dict)


def _default_venues() -> dict[str, VenueSettings]:
    return {
        "polymarket": VenueSettings(enabled=True),
        "kalshi": VenueSettings(enabled=True),
        "binance": VenueSettings(),
        "polygon": VenueSettings(),
    }


class DiscoverySettings(_Section):
    max_resolution_days: float = Field(default=7, ge=0, description="0 disables the filter.")
    categories: list[str] = Field(default_factory=list)
    interval_seconds: float = Field(default=300, gt=0)
    max_markets: int = Field(default=500, ge=1)


class IngestionSettings(_Section):
    snapshot_interval_seconds: float = Field(default=30, gt=0)
    book_depth: int = Field(default=10, ge=1, le=1000)
    max_concurrency: int = Field(default=8, ge=1)
    book_persist_interval_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A changing book is stored about once per instrument per this interval "
        "(spread by book_persist_jitter), besides every snapshot the venue sends; "
        "store_book_deltas keeps every change in between.",
    )
    book_persist_jitter: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Each instrument's next stored book is due after the interval times a "
        "random factor in [1 - jitter/2, 1 + jitter/2): snapshots spread over time.",
    )
    store_book_deltas: bool = False
    queue_size: int = Field(default=10_000, ge=1)
    queue_full_policy: Literal["block", "drop_oldest"] = "block"
    backfill_lookback_seconds: float = Field(
        default=300,
        ge=0,
        description="First start (no completeness watermark yet): back-fill trades this far back.",
    )
    gap_margin_seconds: float = Field(
        default=5,
        ge=0,
        description="Widen every healed window by this on both sides (frames held back before "
        "a cut, venue clock skew); duplicates are absorbed by the stores' keys.",
    )
    heal_delay_seconds: float = Field(
        default=2,
        ge=0,
        description="Wait this long after a gap closes before fetching its trades: venues "
        "index trade history with a delay.",
    )
    heal_retry_max_seconds: float = Field(default=60, gt=0)
    completeness_interval_seconds: float = Field(
        default=1, gt=0, description="How often the durable completeness watermark advances."
    )
    venue_time_past_seconds: float = Field(
        default=7 * 86_400,
        gt=0,
        description="How old a live frame's venue time may be; older is refused as a bad "
        "value. Book snapshots are exempt: their time is the book's last change.",
    )
    venue_time_future_seconds: float = Field(
        default=300,
        gt=0,
        description="How far a venue time may lie past our receive time (clock skew).",
    )


class QualitySettings(_Section):
    max_trade_age_seconds: float = Field(default=300, gt=0, description="G1 stale filter.")
    size_backfill_tolerance: Decimal = Field(default=Decimal("0.01"), ge=0, description="G3.")
    size_backfill_max_age_seconds: float = Field(default=60, gt=0, description="G3.")
    price_deviation_max: Decimal = Field(default=Decimal("0.10"), gt=0, description="G5.")
    stale_feed_seconds: float = Field(default=120, gt=0)


class WhaleSettings(_Section):
    notional_threshold: Decimal = Field(
        default=Decimal("10000"), gt=0, description="Notional (price x size) of a whale trade."
    )
    thresholds: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Per venue ('binance') or per venue and asset class ('binance:BTC': the "
        "instrument's quote currency, matched as its suffix) -- the most specific wins; "
        "notional_threshold otherwise. Notionals are in the instrument's quote currency.",
    )
    poll_interval_seconds: float = Field(default=30, gt=0)

    @field_validator("thresholds")
    @classmethod
    def _positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = sorted(k for k, v in value.items() if not v > 0)
        if bad:
            raise ValueError(f"thresholds must be > 0 ({', '.join(bad)})")
        return value


class PairsSettings(_Section):
    """Cross-venue pairs (``venuefeed pairs``) and their fee-adjusted quotes."""

    quote_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often confirmed pairs are re-quoted."
    )
    refresh_seconds: float = Field(default=5.0, gt=0, description="Re-read confirmed pairs.")
    contracts: int = Field(
        default=100, ge=1, description="Order size the fees are worked out for (Kalshi rounds "
        "an order's fee up to the cent, so the fee per contract depends on it)."
    )  # fmt: skip
    kalshi_taker_rate: Decimal = Field(
        default=Decimal("0.07"), ge=0, description="Kalshi's taker fee: ceil(rate x C x P x (1-P))."
    )
    polymarket_taker_rate: Decimal = Field(
        default=Decimal("0"), ge=0, description="Polymarket's taker fee rate: C x rate x P x (1-P) "
        "(the market's fee schedule; 0 on fee-free markets)."
    )  # fmt: skip
    min_score: float = Field(default=70.0, ge=0, le=100, description="Suggest at or above this.")
    max_close_gap_days: float = Field(default=3.0, gt=0, description="Close times this close.")


SinkName = Literal["sqlite", "postgres", "parquet", "kafka", "nats"]


class StorageSettings(_Section):
    sinks: list[SinkName] = Field(default_factory=lambda: list[SinkName](["sqlite"]))
    sqlite_path: Path = Path("venuefeed.db")
    database_url: SecretStr | None = None
    parquet_root: Path = Path("venuefeed_data/parquet")
    spool_dir: Path = Path("venuefeed_data/spool")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    batch_size: int = Field(default=500, ge=1)
    raw_messages: bool = False
    postgres_schema: str = Field(default="venuefeed", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    postgres_pool_size: int = Field(default=4, ge=1)
    parquet_roll_rows: int = Field(default=100_000, ge=1)
    parquet_roll_seconds: float = Field(default=300, gt=0)
    parquet_row_group_rows: int = Field(default=10_000, ge=1)
    fanout_buffer_batches: int = Field(default=64, ge=1)
    fanout_ack: Literal["all", "primary"] = Field(
        default="all",
        description="all: a batch is acknowledged once every sink (or its spool) holds it.",
    )
    postgres_write_timeout_seconds: float = Field(
        default=5,
        gt=0,
        description="Deadline for one PostgreSQL write (connect, write, commit); past it: spool.",
    )
    close_timeout_seconds: float = Field(
        default=5, gt=0, description="Bound on closing each sink at shutdown (spool replay, pools)."
    )
    parquet_compact_interval_seconds: float = Field(
        default=3600,
        ge=0,
        description="How often the service compacts the Parquet lake's small parts (0: never; "
        "`venuefeed lake compact` does it on demand).",
    )
    parquet_compact_min_age_seconds: float = Field(
        default=600, ge=0, description="Parts younger than this are left for a later run."
    )
    parquet_compact_target_bytes: int = Field(
        default=128 * 2**20, ge=2**16, description="Files this large are not compacted again."
    )
    dead_letter_path: Path = Path("venuefeed_data/dead_letters.jsonl")
    dead_letter_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)


class RecordingSettings(_Section):
    """Every venue frame, WebSocket and REST, kept verbatim (:mod:`venuefeed.lake.recorder`)."""

    enabled: bool = False
    path: Path = Path("venuefeed_data/recording")
    flush_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often buffered frames are written and fsynced."
    )
    max_file_bytes: int = Field(default=128 * 2**20, ge=4096, description="Rotate files at this.")
    max_buffer_bytes: int = Field(
        default=256 * 2**20,
        ge=2**16,
        description="Frames waiting for the disk; beyond it they are not recorded (counted, "
        "reported, and marked in the recording).",
    )
    compression_level: int = Field(default=3, ge=1, le=19, description="zstd level.")


class BusSettings(_Section):
    kafka_bootstrap_servers: str | None = None
    kafka_format: Literal["json", "msgpack"] = "json"
    kafka_topic_prefix: str = ""
    kafka_delivery_timeout_seconds: float = Field(default=30, gt=0)
    nats_url: str | None = None
    nats_subject_prefix: str = "venuefeed"
    nats_stream: str = "VENUEFEED"
    nats_duplicate_window_seconds: float = Field(default=600, gt=0)
    nats_ack_timeout_seconds: float = Field(default=5, gt=0)


class ApiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    token: SecretStr | None = None
    cors_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names clients may use to reach the API, besides the loopback names "
        "(localhost, 127.0.0.1, ::1) and api.host; '*' allows any (DNS-rebinding guard).",
    )
    max_running_jobs: int = Field(
        default=4, ge=1, le=100, description="Background jobs at once; more get 429."
    )


class MetricsSettings(_Section):
    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics on their own port too (seed: PROMETHEUS_PORT); "
        "they are always on the API at /metrics.",
    )
    host: str = "127.0.0.1"


def _default_worker_id() -> str:
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


class VenueBudget(_Section):
    """One venue's limits across the whole cluster (``venuefeed worker``), not per process."""

    connections: int = Field(default=4, ge=1, description="Workers streaming it at once.")
    requests_per_second: float | None = Field(
        default=None, gt=0, description="REST budget; default: the venue's rate_limit."
    )


class ClusterSettings(_Section):
    """``venuefeed worker`` / ``venuefeed writer``: scale-out on JetStream (docs/cluster.md)."""

    nats_urls: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1)
    name: str = Field(default="venuefeed", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    worker_id: str = Field(default_factory=_default_worker_id, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    lease_ttl_seconds: float = Field(default=6.0, ge=1, le=600)
    shards: int = Field(default=16, ge=1, le=1024, description="Shards per venue.")
    replicas: int = Field(default=1, ge=1, le=5, description="JetStream replicas (3 in a cluster).")
    duplicate_window_seconds: float = Field(default=600, gt=0)
    writer_batch: int = Field(default=500, ge=1, le=10_000)
    writer_ack_wait_seconds: float = Field(
        default=30, ge=1, description="Redelivery of a writer's unacknowledged messages after this."
    )
    budgets: dict[str, VenueBudget] = Field(default_factory=dict)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_config`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    venues: dict[str, VenueSettings] = Field(default_factory=_default_venues)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    ingestion: IngestionSettings = Field(default_factory=IngestionSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    whales: WhaleSettings = Field(default_factory=WhaleSettings)
    pairs: PairsSettings = Field(default_factory=PairsSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Init kwargs carry the YAML file merged with CLI flags (see load_config);
        # the environment sits between them, so it is merged there too.
        return (init_settings,)

    def masked(self) -> dict[str, Any]:
        """The effective configuration as plain data with every secret masked."""
        masked: dict[str, Any] = _mask(self.model_dump(mode="python"))
        return masked


class ConfigError(Exception):
    """A configuration value is wrong; the message names the key and its source."""


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings from ``path`` (optional), the environment, then ``overrides``.

    ``overrides`` are dotted keys from CLI flags, e.g. ``{"api.port": 9000}``.
    Raises :class:`ConfigError` on a missing file, bad YAML or a bad value.
    """
    env = os.environ if environ is None else environ
    file_data: dict[str, Any] = {}
    source = str(path) if path is not None else None
    if path is not None:
        file_data = _read_yaml(Path(path))
    alias_data = _alias_tree(env)
    env_data = _deep_merge(alias_data, _env_tree(env))
    flag_data: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(flag_data, dotted.split("."), value)
    defaults: dict[str, Any] = {"venues": {name: {} for name in _default_venues()}}
    merged = _deep_merge(_deep_merge(_deep_merge(defaults, file_data), env_data), flag_data)
    for name, venue in _default_venues().items():
        merged["venues"][name].setdefault("enabled", venue.enabled)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, file_data, env_data, flag_data, source, env)) from None


MAX_CONFIG_BYTES = 1024 * 1024
"""A configuration file is a few kilobytes; anything near this size is the wrong file."""
MAX_CONFIG_VALUES = 100_000
"""Values a file may hold once its aliases are expanded (a YAML "billion laughs" has 10^9)."""


def _read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping of sections."""
    data = load_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return dict(data)


def load_yaml_file(path: Path, what: str = "config file") -> Any:
    """A YAML file an operator gave us (``what`` it is), bounded in bytes and alias expansion.

    Raises :class:`ConfigError` with one line (what, and where in the file) for
    a file that cannot be read, is not UTF-8 text, is too large, is not YAML or
    is an alias bomb -- never a traceback, never the offending text.
    """
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{what} {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: is it the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}): is it the right file?"
        ) from None
    return _load_bounded_yaml(text, path)


def _load_bounded_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load`` that refuses a document whose aliases expand to too many values.

    Composing keeps an alias as a reference to its anchored node, so a bomb is
    cheap until something walks the expanded tree (our merge, pydantic). The
    expanded size is counted on the node graph first, each node once.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{path}: its aliases expand to more than {MAX_CONFIG_VALUES:,} values "
                "(a YAML alias bomb?)"
            )
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except _RecursiveAlias:
        raise ConfigError(f"{path}: an alias refers to a node that contains it") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    finally:
        loader.dispose()


class _RecursiveAlias(Exception):
    """An anchor used inside itself: its expansion never ends."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    """Values under ``node`` with every alias expanded; memoized per node, cycles refused."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise _RecursiveAlias
    active.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, sizes, active)
            if total > MAX_CONFIG_VALUES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, sizes, active) + _expanded_size(v, sizes, active)
            if total > MAX_CONFIG_VALUES:
                break
    active.discard(key)
    sizes[key] = total
    return total


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """What and where, without echoing the offending text (it may hold a secret)."""
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{exc.problem or exc.context or 'syntax error'}{where}"


def _env_tree(env: Mapping[str, str]) -> dict[str, Any]:
    """``VENUEFEED_A__B=1`` -> ``{"a": {"b": "1"}}``; values are validated later."""
    tree: dict[str, Any] = {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name not in _NOT_SETTINGS:
            keys = name[len(ENV_PREFIX) :].lower().split("__")
            if all(keys):
                _set_path(tree, keys, _env_value(value))
    return tree


def _alias_tree(env: Mapping[str, str]) -> dict[str, Any]:
    """The seed documents' variable names, as the settings they stand for."""
    tree: dict[str, Any] = {}
    for name, dotted in SEED_ALIASES.items():
        value = env.get(name)
        if value:
            _set_path(tree, dotted.split("."), _env_value(value))
    return tree


def _env_origin(keys: tuple[str, ...], env: Mapping[str, str]) -> str:
    """Which variable set ``keys``: the ``VENUEFEED_*`` one, else its seed alias."""
    name = ENV_PREFIX + "__".join(keys).upper()
    if name in env:
        return name
    dotted = ".".join(keys)
    for alias, target in SEED_ALIASES.items():
        if alias in env and (target == dotted or target.startswith(dotted + ".")):
            return alias
    return name


def _env_value(value: str) -> Any:
    """Lists and mappings may be given as JSON/YAML flow text in a variable."""
    stripped = value.strip()
    if stripped.startswith(("[", "{")):
        try:
            return yaml.safe_load(stripped)
        except yaml.YAMLError:
            return value
    return value


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _has_path(tree: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    node: Any = tree
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


def _explain(
    exc: ValidationError,
    file_data: dict[str, Any],
    env_data: dict[str, Any],
    flag_data: dict[str, Any],
    source: str | None,
    env: Mapping[str, str],
) -> str:
    """One line: every wrong key, what is wrong and where it came from; never a secret."""
    problems = []
    for error in exc.errors():
        keys = tuple(str(k) for k in error["loc"])
        key = ".".join(keys)
        origin = "defaults"
        for depth in range(len(keys), 0, -1):
            prefix = keys[:depth]
            if _has_path(flag_data, prefix):
                origin = "command line"
                break
            if _has_path(env_data, prefix):
                origin = "environment variable " + _env_origin(prefix, env)
                break
            if _has_path(file_data, prefix):
                origin = f"file {source}"
                break
        if error["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key [from {origin}]")
            continue
        shown = "" if _holds_secret_at(error["loc"]) else f" (got {_shown(error.get('input'))})"
        problems.append(f"{key}: {error['msg']}{shown} [from {origin}]")
    return "invalid configuration: " + "; ".join(problems)


def _shown(value: object, limit: int = 80) -> str:
    """A wrong value as echoed in an error: short, and with any URL password masked."""
    text = mask_url_passwords(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _holds_secret_at(loc: tuple[int | str, ...]) -> bool:
    """Whether the setting at ``loc`` is (or contains) a ``SecretStr``, by its declared type.

    Decided by the type, not the key's name, so a secret under any name (a
    database URL, a venue credential) is never echoed; a location the walk
    cannot follow is treated as secret if anything above it could hold one.
    """
    annotation: Any = Settings
    for part in loc:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return _contains_secret(annotation)
            annotation = field.annotation
            continue
        args = get_args(annotation)
        if get_origin(annotation) is dict and len(args) == 2:
            annotation = args[1]
        elif get_origin(annotation) is list and args:
            annotation = args[0]
        else:
            return _contains_secret(annotation)
    return _contains_secret(annotation)


def _contains_secret(annotation: Any, seen: frozenset[Any] = frozenset()) -> bool:
    if annotation is SecretStr:
        return True
    if annotation in seen:
        return False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        inner = seen | {annotation}
        return any(_contains_secret(f.annotation, inner) for f in annotation.model_fields.values())
    return any(_contains_secret(arg, seen) for arg in get_args(annotation))


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, str):
        return mask_url_passwords(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    return value
