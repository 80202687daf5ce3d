"""The storage schema, once, rendered for each SQL dialect.

Tables are described as data (:class:`Table`) and turned into DDL and
idempotent ``INSERT ... ON CONFLICT`` statements for SQLite and PostgreSQL, so
the two stores cannot drift apart. Migrations are forward-only and numbered;
each is a list of tables to create (or raw statements per dialect).

Exact numbers: ``DECIMAL`` columns are ``TEXT`` in SQLite (a ``NUMERIC``
affinity would turn ``"0.535"`` into a float) and ``NUMERIC`` in PostgreSQL.
Timestamps are integer nanoseconds (``BIGINT``).

Natural keys (ARCHITECTURE rule 4): every table that receives events has a
primary key or unique constraint on what identifies the fact -- venue,
instrument and trade id, sequence or timestamp -- so writing the same event
twice leaves one row. Unique keys never include NULLable columns (NULLs are
distinct in SQL), hence sentinel defaults such as ``sequence = -1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "MIGRATIONS",
    "TABLES",
    "Column",
    "Dialect",
    "Migration",
    "Table",
    "add_column_sql",
    "create_sql",
    "insert_sql",
]

Dialect = Literal["sqlite", "postgres"]
ColumnType = Literal["text", "bigint", "int", "decimal", "bool", "json", "blob", "float", "serial"]

_TYPES: dict[ColumnType, dict[Dialect, str]] = {
    "text": {"sqlite": "TEXT", "postgres": "TEXT"},
    "bigint": {"sqlite": "INTEGER", "postgres": "BIGINT"},
    "int": {"sqlite": "INTEGER", "postgres": "INTEGER"},
    "decimal": {"sqlite": "TEXT", "postgres": "NUMERIC"},
    "bool": {"sqlite": "INTEGER", "postgres": "BOOLEAN"},
    "json": {"sqlite": "TEXT", "postgres": "JSONB"},
    "blob": {"sqlite": "BLOB", "postgres": "BYTEA"},
    "float": {"sqlite": "REAL", "postgres": "DOUBLE PRECISION"},
    "serial": {"sqlite": "INTEGER", "postgres": "BIGSERIAL"},
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True
    default: str | None = None
    """SQL literal, identical in both dialects (``'-1'``, ``0``, ``''``)."""
    since: int = 1
    """The migration that added this column: a table created by migration N gets the
    columns with ``since <= N``; a later column comes in with ``ALTER TABLE`` from its
    own migration, so a released migration never changes."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    """Primary key, or the natural unique key when ``serial`` is set."""
    serial: str | None = None
    """Name of a surrogate integer id column (primary key) when the natural key is separate."""
    indexes: tuple[tuple[str, ...], ...] = ()
    unknown_in_key: tuple[str, ...] = ()
    """Key columns that may be NULL (unknown). The key compares them as
    ``COALESCE(column, -1)`` so an unknown value still collapses a repeated row,
    while the stored column keeps the NULL; such a key is a unique index, not a
    constraint, and the insert's ``ON CONFLICT`` names the same expressions."""

    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def insert_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.name != self.serial)

    def key_sql(self) -> str:
        """The natural key as ``CREATE UNIQUE INDEX`` and ``ON CONFLICT`` spell it."""
        return ", ".join(
            f'(COALESCE("{k}", -1))' if k in self.unknown_in_key else f'"{k}"' for k in self.key
        )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    tables: tuple[Table, ...] = ()
    columns: tuple[tuple[Table, str], ...] = ()
    """Columns added to existing tables, as ``(table, column name)``."""
    statements: dict[Dialect, tuple[str, ...]] = field(default_factory=dict)

    def sql(self, dialect: Dialect, schema: str | None = None) -> list[str]:
        """Every statement of this migration, in order, for one dialect."""
        out: list[str] = []
        for table in self.tables:
            out.extend(create_sql(table, dialect, schema, version=self.version))
        for table, column in self.columns:
            out.append(add_column_sql(table, column, dialect, schema))
        out.extend(self.statements.get(dialect, ()))
        return out


def C(
    name: str,
    type_: ColumnType,
    nullable: bool = True,
    default: str | None = None,
    *,
    since: int = 1,
) -> Column:
    return Column(name, type_, nullable, default, since)


def _event_columns() -> tuple[Column, ...]:
    return (C("venue", "text", False), C("instrument", "text", False))


_TS = (C("ts_venue", "bigint", False), C("ts_recv", "bigint", False))
_TS_MAYBE_UNKNOWN = (C("ts_venue", "bigint"), C("ts_recv", "bigint", False))
"""Times of an event the venue may send untimed: ``ts_venue`` NULL, never a made-up 0."""

VENUES = Table(
    "venues",
    (
        C("name", "text", False),
        C("enabled", "bool", False, "0"),
        C("configured", "bool", False, "0"),
        C("updated_at", "bigint", False, "0"),
    ),
    key=("name",),
)

_MARKET_META = (
    C("event_id", "text"),
    C("slug", "text"),
    C("title", "text", False, "''"),
    C("rules", "text", False, "''"),
    C("outcomes", "json", False, "'[]'"),
    C("status", "text", False, "'unknown'"),
    C("open_time", "bigint"),
    C("close_time", "bigint"),
    C("resolution_time", "bigint"),
    C("tick_size", "decimal"),
    C("min_size", "decimal"),
    C("category", "text"),
    C("raw_hash", "text", False, "''"),
    C("version_hash", "text", False, "''"),
)

MARKETS = Table(
    "markets",
    (
        C("venue", "text", False),
        C("market_id", "text", False),
        *_MARKET_META,
        C("version", "int", False, "1"),
        C("first_seen", "bigint", False, "0"),
        C("updated_at", "bigint", False, "0"),
    ),
    key=("venue", "market_id"),
    indexes=(("venue", "status", "close_time"),),
)

MARKET_VERSIONS = Table(
    "market_versions",
    (
        C("venue", "text", False),
        C("market_id", "text", False),
        C("version", "int", False),
        *_MARKET_META,
        C("recorded_at", "bigint", False, "0"),
    ),
    key=("venue", "market_id", "version"),
)

MARKET_STATUS_CHANGES = Table(
    "market_status_changes",
    (
        *_event_columns(),
        *_TS,
        C("status", "text", False),
        C("previous", "text"),
        C("detail", "text"),
    ),
    key=("venue", "instrument", "ts_venue", "status"),
)

BOOK_SNAPSHOTS = Table(
    "book_snapshots",
    (
        C("id", "serial", False),
        *_event_columns(),
        *_TS_MAYBE_UNKNOWN,
        C("sequence", "bigint", False, "-1"),
        C("checksum", "text"),
        C("digest", "text", False),
    ),
    # Venues without sequence numbers can show two book states in one
    # millisecond; the digest of the levels tells them apart, and the same
    # state stored twice still collapses to one row.
    key=("venue", "instrument", "ts_venue", "sequence", "digest"),
    unknown_in_key=("ts_venue",),
    serial="id",
    indexes=(("venue", "instrument", "ts_recv"),),
)

BOOK_LEVELS = Table(
    "book_levels",
    (
        C("snapshot_id", "bigint", False),
        C("side", "text", False),
        C("level", "int", False),
        C("price", "decimal", False),
        C("size", "decimal", False),
    ),
    key=("snapshot_id", "side", "level"),
)

BOOK_DELTAS = Table(
    "book_deltas",
    (
        *_event_columns(),
        *_TS,
        C("sequence", "bigint", False, "-1"),
        C("side", "text", False),
        C("price", "decimal", False),
        C("size", "decimal", False),
    ),
    key=("venue", "instrument", "ts_venue", "sequence", "side", "price", "size"),
)

TRADES = Table(
    "trades",
    (
        *_event_columns(),
        C("trade_id", "text", False),
        C("market_id", "text"),
        C("price", "decimal", False),
        C("size", "decimal", False),
        C("side", "text", False, "'unknown'"),
        C("maker", "text"),
        C("taker", "text"),
        *_TS,
        C("flags", "text", False, "''"),
    ),
    key=("venue", "instrument", "trade_id"),
    indexes=(("venue", "ts_venue"), ("instrument", "ts_venue")),
)

QUOTES = Table(
    "quotes",
    (
        *_event_columns(),
        *_TS,
        C("sequence", "bigint", False, "-1"),
        C("bid_price", "decimal"),
        C("bid_size", "decimal"),
        C("ask_price", "decimal"),
        C("ask_size", "decimal"),
    ),
    key=("venue", "instrument", "ts_venue", "sequence"),
)

PRICE_UPDATES = Table(
    "price_updates",
    (
        *_event_columns(),
        *_TS,
        C("source", "text", False),
        C("price", "decimal", False),
        C("size", "decimal"),
        C("side", "text", False, "'unknown'"),
    ),
    key=("venue", "instrument", "ts_venue", "source", "price"),
)

CANDLES = Table(
    "candles",
    (
        *_event_columns(),
        C("interval", "text", False),
        C("open_time", "bigint", False),
        C("close_time", "bigint", False),
        C("open", "decimal", False),
        C("high", "decimal", False),
        C("low", "decimal", False),
        C("close", "decimal", False),
        C("volume", "decimal", False),
        C("trades", "bigint"),
        C("closed", "bool", False, "1"),
        *_TS,
    ),
    key=("venue", "instrument", "interval", "open_time"),
)

RAW_MESSAGES = Table(
    "raw_messages",
    (
        C("id", "serial", False),
        C("venue", "text", False),
        C("channel", "text", False),
        C("ts_recv", "bigint", False),
        C("payload", "blob", False),
    ),
    key=("venue", "channel", "ts_recv"),
    serial="id",
)

WHALES = Table(
    "whales",
    (
        C("address", "text", False),
        C("pseudonym", "text"),
        C("tier", "text"),
        C("notes", "text"),
        C("cluster_name", "text"),
        C("famous", "bool", False, "0"),
        C("estimated_pnl", "decimal"),
        C("primary_category", "text"),
        C("win_rate", "decimal"),
        C("total_volume", "decimal"),
        C("confirmed", "bool", False, "0"),
        C("copying_enabled", "bool", False, "0"),
        C("enabled", "bool", False, "1"),
        C("added_at", "bigint", False, "0"),
        C("updated_at", "bigint", False, "0"),
    ),
    key=("address",),
)

WHALE_ACTIVITY = Table(
    "whale_activity",
    (
        C("venue", "text", False),
        C("trade_id", "text", False),
        C("trader_address", "text", False),
        C("market_id", "text"),
        C("token_id", "text"),
        C("side", "text", False),
        C("size", "decimal", False),
        C("price", "decimal", False),
        C("amount", "decimal", False),
        C("ts_venue", "bigint", False),
        C("detected_at", "bigint", False),
        C("known_whale", "bool", False, "0"),
    ),
    key=("venue", "trade_id", "trader_address"),
    indexes=(("trader_address", "ts_venue"),),
)

INGESTION_RUNS = Table(
    "ingestion_runs",
    (
        C("id", "serial", False),
        C("run_key", "text", False),
        C("job", "text", False),
        C("venue", "text"),
        C("started_at", "bigint", False),
        C("finished_at", "bigint"),
        C("status", "text", False, "'running'"),
        C("records", "bigint", False, "0"),
        C("error", "text"),
        C("params", "json", False, "'{}'"),
    ),
    key=("run_key",),
    serial="id",
)

WATERMARKS = Table(
    "watermarks",
    (
        C("key", "text", False),
        C("value", "text", False),
        C("updated_at", "bigint", False, "0"),
    ),
    key=("key",),
)

DATA_GAPS = Table(
    "data_gaps",
    (
        *_event_columns(),
        C("cause", "text", False),
        C("start_ns", "bigint", False),
        C("end_ns", "bigint", False, "0"),
        C("detail", "text", False, "''"),
        C("healed", "bool", False, "0"),
        C("healed_at", "bigint"),
        C("instruments", "json", False, "'[]'", since=2),
    ),
    key=("venue", "instrument", "cause", "start_ns"),
    indexes=(("venue", "healed"),),
)

ACCOUNT_FILLS = Table(
    "account_fills",
    (
        *_event_columns(),
        C("fill_id", "text", False),
        C("order_id", "text", False),
        C("trade_id", "text"),
        C("side", "text", False),
        C("price", "decimal", False),
        C("size", "decimal", False),
        C("is_taker", "bool"),
        C("fee", "decimal"),
        *_TS,
    ),
    key=("venue", "fill_id"),
    indexes=(("venue", "order_id"),),
)

ACCOUNT_ORDERS = Table(
    "account_orders",
    (
        *_event_columns(),
        C("order_id", "text", False),
        C("status", "text", False),
        C("side", "text", False),
        C("price", "decimal"),
        C("remaining_size", "decimal", False),
        C("filled_size", "decimal", False),
        C("client_order_id", "text"),
        *_TS,
    ),
    key=("venue", "order_id", "status", "filled_size"),
    indexes=(("venue", "ts_recv"),),
)

MARKET_PAIRS = Table(
    "market_pairs",
    (
        C("pair_id", "text", False),
        C("kalshi_market", "text", False),
        C("polymarket_market", "text", False),
        C("polymarket_token", "text", False),
        C("kalshi_title", "text", False, "''"),
        C("polymarket_title", "text", False, "''"),
        C("mapping", "text", False),
        C("score", "float", False, "0"),
        C("title_score", "float", False, "0"),
        C("rules_score", "float", False, "0"),
        C("close_gap_seconds", "bigint"),
        C("status", "text", False, "'suggested'"),
        C("suggested_at", "bigint", False, "0"),
        C("decided_at", "bigint"),
    ),
    key=("pair_id",),
    indexes=(("status",),),
)

PAIR_QUOTES = Table(
    "pair_quotes",
    (
        *_event_columns(),
        *_TS,
        C("kalshi_market", "text", False),
        C("polymarket_token", "text", False),
        C("mapping", "text", False),
        C("kalshi_bid", "decimal"),
        C("kalshi_ask", "decimal"),
        C("polymarket_bid", "decimal"),
        C("polymarket_ask", "decimal"),
        C("edge_buy_kalshi", "decimal"),
        C("edge_buy_polymarket", "decimal"),
        C("best_edge", "decimal"),
    ),
    key=("venue", "instrument", "ts_venue"),
)

WHALE_POSITIONS = Table(
    "whale_positions",
    (
        *_event_columns(),
        *_TS,
        C("trader_address", "text", False),
        C("action", "text", False),
        C("size", "decimal", False),
        C("previous", "decimal", False),
        C("change", "decimal", False),
        C("avg_price", "decimal"),
        C("market_id", "text"),
        C("title", "text"),
        C("outcome", "text"),
    ),
    key=("venue", "trader_address", "instrument", "ts_venue"),
    indexes=(("trader_address", "ts_venue"),),
)

TABLES: tuple[Table, ...] = (
    VENUES,
    MARKETS,
    MARKET_VERSIONS,
    MARKET_STATUS_CHANGES,
    BOOK_SNAPSHOTS,
    BOOK_LEVELS,
    BOOK_DELTAS,
    TRADES,
    QUOTES,
    PRICE_UPDATES,
    CANDLES,
    RAW_MESSAGES,
    WHALES,
    WHALE_ACTIVITY,
    INGESTION_RUNS,
    WATERMARKS,
    DATA_GAPS,
    MARKET_PAIRS,
    PAIR_QUOTES,
    WHALE_POSITIONS,
    ACCOUNT_FILLS,
    ACCOUNT_ORDERS,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}


def _column_sql(column: Column, table: Table, dialect: Dialect) -> str:
    if column.name == table.serial:
        if dialect == "sqlite":
            return f'"{column.name}" INTEGER PRIMARY KEY AUTOINCREMENT'
        return f'"{column.name}" BIGSERIAL PRIMARY KEY'
    sql = f'"{column.name}" {_TYPES[column.type][dialect]}'
    if not column.nullable:
        sql += " NOT NULL"
    if column.default is not None:
        default = column.default
        if dialect == "postgres" and column.type == "bool":
            default = "TRUE" if default == "1" else "FALSE"
        sql += f" DEFAULT {default}"
    return sql


def create_sql(
    table: Table, dialect: Dialect, schema: str | None = None, *, version: int | None = None
) -> list[str]:
    """``CREATE TABLE`` (and index) statements for one table.

    With ``version``, only the columns that existed at that migration: what a
    store migrated step by step has, so both paths give the same table.
    """
    name = f'"{schema}"."{table.name}"' if schema else f'"{table.name}"'
    columns = [c for c in table.columns if version is None or c.since <= version]
    parts = [_column_sql(c, table, dialect) for c in columns]
    keys = table.key_sql()
    if not table.unknown_in_key:
        parts.append(f"UNIQUE ({keys})" if table.serial else f"PRIMARY KEY ({keys})")
    statements = [f"CREATE TABLE IF NOT EXISTS {name} (\n  " + ",\n  ".join(parts) + "\n)"]
    if table.unknown_in_key:
        statements.append(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "ux_{table.name}_key" ON {name} ({keys})'
        )
    for cols in table.indexes:
        index = f"ix_{table.name}_{'_'.join(cols)}"
        cols_sql = ", ".join(f'"{c}"' for c in cols)
        statements.append(f'CREATE INDEX IF NOT EXISTS "{index}" ON {name} ({cols_sql})')
    return statements


def add_column_sql(table: Table, column: str, dialect: Dialect, schema: str | None = None) -> str:
    """``ALTER TABLE ... ADD COLUMN`` for a column added by a later migration."""
    name = f'"{schema}"."{table.name}"' if schema else f'"{table.name}"'
    found = next(c for c in table.columns if c.name == column)
    return f"ALTER TABLE {name} ADD COLUMN {_column_sql(found, table, dialect)}"


def insert_sql(
    table: Table,
    dialect: Dialect,
    *,
    update: Sequence[str] = (),
    schema: str | None = None,
    returning: str | None = None,
) -> str:
    """An idempotent insert: ``ON CONFLICT (natural key) DO NOTHING`` or ``DO UPDATE``.

    Placeholders are ``?`` for SQLite and ``$n`` for PostgreSQL, in
    :meth:`Table.insert_columns` order.
    """
    name = f'"{schema}"."{table.name}"' if schema else f'"{table.name}"'
    cols = table.insert_columns()
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in cols)
    else:
        marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    col_sql = ", ".join(f'"{c}"' for c in cols)
    key = table.key_sql()
    if update:
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in update)
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    sql = f"INSERT INTO {name} ({col_sql}) VALUES ({marks}) ON CONFLICT ({key}) {action}"
    if returning:
        sql += f' RETURNING "{returning}"'
    return sql


def _unknown_snapshot_times() -> dict[Dialect, tuple[str, ...]]:
    """Let ``book_snapshots.ts_venue`` hold NULL, and turn the stored 0s (which only
    ever meant "the venue sent no time") into NULL.

    PostgreSQL relaxes the column in place and swaps the key constraint for the
    COALESCE unique index. SQLite can neither relax NOT NULL nor drop an inline
    constraint, so it rebuilds the table, keeping every id (book_levels point at them).
    """
    table = BOOK_SNAPSHOTS
    cols = ", ".join(f'"{c}"' for c in table.column_names())
    rebuilt = replace(table, name=f"{table.name}_rebuilt")
    forget_zero = 'UPDATE {schema}"book_snapshots" SET "ts_venue" = NULL WHERE "ts_venue" = 0'
    return {
        "sqlite": (
            create_sql(rebuilt, "sqlite")[0],
            f'INSERT INTO "{rebuilt.name}" ({cols}) SELECT {cols} FROM "{table.name}"',
            f'DROP TABLE "{table.name}"',
            f'ALTER TABLE "{rebuilt.name}" RENAME TO "{table.name}"',
            *create_sql(table, "sqlite")[1:],
            forget_zero.replace("{schema}", ""),
        ),
        "postgres": (
            'ALTER TABLE {schema}."book_snapshots" ALTER COLUMN "ts_venue" DROP NOT NULL',
            'ALTER TABLE {schema}."book_snapshots" DROP CONSTRAINT IF EXISTS '
            '"book_snapshots_venue_instrument_ts_venue_sequence_digest_key"',
            'CREATE UNIQUE INDEX IF NOT EXISTS "ux_book_snapshots_key" '
            f'ON {{schema}}."book_snapshots" ({table.key_sql()})',
            forget_zero.replace("{schema}", "{schema}."),
        ),
    }


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", tables=TABLES[: TABLES.index(DATA_GAPS) + 1]),
    Migration(2, "gaps list the instruments they affected", columns=((DATA_GAPS, "instruments"),)),
    Migration(
        3,
        "cross-venue pairs, their quotes, whale positions",
        tables=(MARKET_PAIRS, PAIR_QUOTES, WHALE_POSITIONS),
    ),
    Migration(4, "the account's own fills and orders", tables=(ACCOUNT_FILLS, ACCOUNT_ORDERS)),
    Migration(
        5,
        "book snapshots the venue sent without a time store ts_venue NULL",
        statements=_unknown_snapshot_times(),
    ),
)
"""Forward-only. Never edit a released migration; append a new one."""
