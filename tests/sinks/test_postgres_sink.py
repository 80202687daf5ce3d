"""The PostgreSQL store against the machine's real server, each test in its own schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import msgspec
import pytest

from venuefeed import schema
from venuefeed.models import Candle, DataGap, MarketStatus, Outcome
from venuefeed.sinks.base import InvalidRecords, SinkUnavailable, Watermark
from venuefeed.sinks.postgres import PostgresStore, applied_migrations, migrate, resolve_url

from .helpers import delta, market, mixed_batch, require_postgres, snapshot, trade


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    url = require_postgres()
    name = f"vf_test_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def store(pg_schema: str) -> AsyncIterator[PostgresStore]:
    sink = PostgresStore(require_postgres(), pg_schema=pg_schema, copy_threshold=4)
    await sink.start()
    yield sink
    await sink.close()


async def fetch(store: PostgresStore, sql: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(require_postgres())
    try:
        records = await conn.fetch(sql.replace("S.", f'"{store.pg_schema}".'))
        return [tuple(r) for r in records]
    finally:
        await conn.close()


async def test_migrations_are_tracked_per_schema_and_idempotent(pg_schema: str) -> None:
    conn = await asyncpg.connect(require_postgres())
    try:
        versions = [m.version for m in schema.MIGRATIONS]
        assert await migrate(conn, pg_schema) == versions
        assert await migrate(conn, pg_schema) == []
        assert await applied_migrations(conn, pg_schema) == versions
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", pg_schema
        )
        assert {r["table_name"] for r in tables} == {t.name for t in schema.TABLES} | {
            "schema_migrations"
        }
        price = await conn.fetchval(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'trades' AND column_name = 'price'",
            pg_schema,
        )
        assert price == "numeric"
    finally:
        await conn.close()


async def test_concurrent_starts_migrate_once(pg_schema: str) -> None:
    stores = [PostgresStore(require_postgres(), pg_schema=pg_schema) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    rows = await fetch(stores[0], "SELECT version FROM S.schema_migrations ORDER BY version")
    assert rows == [(m.version,) for m in schema.MIGRATIONS]


@pytest.mark.parametrize("copy_threshold", [1, 10_000], ids=["copy", "executemany"])
async def test_same_trades_twice_is_one_row_exact_decimals(
    pg_schema: str, copy_threshold: int
) -> None:
    async with PostgresStore(
        require_postgres(), pg_schema=pg_schema, copy_threshold=copy_threshold
    ) as store:
        batch = [trade(n, price="0.535") for n in range(20)]
        await store.write(batch + batch[:5])  # duplicates inside one batch
        await store.write(batch)  # and a replay of the whole batch
        assert isinstance(store, PostgresStore)
        rows = await fetch(store, "SELECT trade_id, price, size FROM S.trades ORDER BY trade_id")
    assert len(rows) == 20
    assert rows[0] == ("t0", Decimal("0.535"), Decimal("10.25"))
    assert all(isinstance(r[1], Decimal) and str(r[1]) == "0.535" for r in rows)


async def test_every_record_type_round_trips(store: PostgresStore) -> None:
    batch = mixed_batch(1)
    await store.write(batch)
    await store.write(batch)  # replayed: nothing new
    counts = {}
    for table in ("trades", "book_deltas", "book_snapshots", "book_levels", "quotes",
                  "price_updates", "candles", "market_status_changes", "data_gaps",
                  "whale_activity"):  # fmt: skip
        counts[table] = (await fetch(store, f"SELECT count(*) FROM S.{table}"))[0][0]
    assert counts == {
        "trades": 1, "book_deltas": 3, "book_snapshots": 1, "book_levels": 3, "quotes": 1,
        "price_updates": 1, "candles": 1, "market_status_changes": 1, "data_gaps": 1,
        "whale_activity": 1,
    }  # fmt: skip
    deltas = await fetch(store, "SELECT side, price, size FROM S.book_deltas ORDER BY side, price")
    assert deltas == [
        ("ask", Decimal("64000.5"), Decimal("0")),
        ("ask", Decimal("64001"), Decimal("1.5")),
        ("bid", Decimal("64000.01"), Decimal("1E-8")),
    ]


async def test_snapshot_levels_best_first_and_idempotent(store: PostgresStore) -> None:
    await store.write([snapshot(5)])
    await store.write([snapshot(5)])
    levels = await fetch(
        store,
        "SELECT side, level, price::text, size::text FROM S.book_levels ORDER BY side, level",
    )
    assert levels == [("ask", 0, "0.55", "1"), ("bid", 0, "0.52", "5"), ("bid", 1, "0.5", "7")]
    assert (await fetch(store, "SELECT count(*) FROM S.book_snapshots"))[0][0] == 1


async def test_market_versions_kept_on_rules_change(store: PostgresStore) -> None:
    first = market()
    await store.write([first])
    moved = msgspec.structs.replace(
        first, outcomes=(Outcome("Yes", "tok", "0.5"), Outcome("No", "tok2", "0.5")),
        status=MarketStatus.PAUSED,
    )  # fmt: skip
    await store.write([moved])
    await store.write([msgspec.structs.replace(moved, rules="Resolves YES only if it pours.")])
    versions = await fetch(store, "SELECT version, rules FROM S.market_versions ORDER BY version")
    assert versions == [(1, "Resolves YES if it rains."), (2, "Resolves YES only if it pours.")]
    row = await fetch(store, "SELECT version, status, tick_size FROM S.markets")
    assert row == [(2, "paused", Decimal("0.001"))]


async def test_concurrent_writers_of_one_market_agree_on_versions(store: PostgresStore) -> None:
    changed = msgspec.structs.replace(market(), rules="new rules")
    await asyncio.gather(*(store.write([market()]) for _ in range(4)))
    await asyncio.gather(*(store.write([changed]) for _ in range(4)))
    versions = await fetch(store, "SELECT version FROM S.market_versions ORDER BY version")
    assert versions == [(1,), (2,)]


async def test_upserts_and_watermark_in_same_transaction(store: PostgresStore) -> None:
    base = dict(venue="b", instrument="BTCUSDT", ts_venue=1, ts_recv=1, interval="1m",
                open_time=60, close_time=119, open="1", high="2", low="1", volume="3")  # fmt: skip
    await store.write([Candle(close="1.5", closed=False, **base)])  # type: ignore[arg-type]
    gap = DataGap(venue="b", instrument="X", ts_venue=0, ts_recv=5, cause="disconnect", start=1)
    await store.write([Candle(close="1.7", **base), gap, Watermark("job:1", "a")])  # type: ignore[arg-type]
    await store.write([msgspec.structs.replace(gap, end=9, healed=True), Watermark("job:1", "b")])
    assert await fetch(store, "SELECT close::text, closed FROM S.candles") == [("1.7", True)]
    assert await fetch(store, "SELECT end_ns, healed FROM S.data_gaps") == [(9, True)]
    assert await fetch(store, "SELECT value FROM S.watermarks") == [("b",)]


async def test_a_bad_batch_rolls_back_entirely(store: PostgresStore) -> None:
    class Junk:
        pass

    with pytest.raises(InvalidRecords, match="TypeError"):
        await store.write([trade(1), *[delta(n) for n in range(10)], Junk()])  # type: ignore[list-item]
    assert await fetch(store, "SELECT count(*) FROM S.trades") == [(0,)]
    assert await fetch(store, "SELECT count(*) FROM S.book_deltas") == [(0,)]


async def test_concurrent_batches_through_the_pool(store: PostgresStore) -> None:
    batches = [[trade(n, instrument=f"i{k}") for n in range(50)] for k in range(8)]
    await asyncio.gather(*(store.write(b) for b in batches), *(store.write(b) for b in batches))
    assert await fetch(store, "SELECT count(*) FROM S.trades") == [(400,)]


async def test_unreachable_server_is_sink_unavailable(pg_schema: str) -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=1)
    with pytest.raises(SinkUnavailable):
        await store.start()
    with pytest.raises(SinkUnavailable):
        await store.write([trade(1)])


def test_database_url_environment_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/db")
    assert resolve_url(None) == "postgresql://from-env/db"
    assert resolve_url("postgresql://configured/db") == "postgresql://configured/db"
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(ValueError, match="DATABASE_URL"):
        resolve_url(None)
