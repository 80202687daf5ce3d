"""Books a venue sends without a time carry ``ts_venue`` null everywhere, never 0.

Kalshi's and Binance's REST order books have no time in the body. They are
fetched from the simulators over loopback, then stored in SQLite and PostgreSQL
and published on NATS; each must keep "unknown" as NULL/null while the natural
key still collapses the same book stored twice. A Polymarket WebSocket book,
which the venue does time, keeps that time. A store written before the change
gets its 0s turned into NULL by the migration, with its ids kept.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import msgspec
import pytest

from tests.venues.binance.conftest import make_adapter as binance_adapter
from tests.venues.kalshi.kalshi_support import ANCHOR, kalshi_settings
from tests.venues.polymarket.helpers import make_adapter as polymarket_adapter
from venuefeed import schema
from venuefeed.cluster import codec
from venuefeed.models import BookDelta, BookSnapshot, event_decoder
from venuefeed.sim.base import Faults
from venuefeed.sinks import postgres, sqlite
from venuefeed.sinks.nats import NatsSink
from venuefeed.sinks.postgres import PostgresStore
from venuefeed.sinks.sqlite import SqliteStore, open_reader
from venuefeed.venues import binance, kalshi, polymarket

from .helpers import require_nats, require_postgres

S = 1_000_000_000


@pytest.fixture
async def rest_books() -> list[BookSnapshot]:
    """One REST book from each simulator whose venue sends books untimed."""
    async with kalshi.Simulator(seed=7, markets=20, anchor_ts=ANCHOR, trading_markets=0) as ksim:
        assert isinstance(ksim, kalshi.Simulator)
        ticker = ksim.market_tickers(1)[0]
        cfg = kalshi_settings(ksim.urls()["rest"], ksim.urls()["ws"])
        async with kalshi.Adapter(cfg.venues["kalshi"], cfg) as adapter:
            kalshi_book = await adapter.fetch_book(ticker, depth=0)
        bids, asks = ksim.canonical_book(ticker)
    assert [(lv.price, lv.size) for lv in kalshi_book.bids] == bids
    assert [(lv.price, lv.size) for lv in kalshi_book.asks] == asks
    bsim = binance.Simulator(seed=7, faults=Faults(), events_per_second=100)
    await bsim.start()
    try:
        client = binance_adapter(bsim)
        try:
            binance_book = await client.fetch_book("BTCUSDT", 100)
        finally:
            await client.close()
    finally:
        await bsim.stop()
    assert binance_book.sequence is not None and binance_book.bids and binance_book.asks
    books = [binance_book, kalshi_book]
    assert [b.ts_venue for b in books] == [None, None]
    return books


def _stored(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return sorted(rows, key=lambda r: str(r[0]))


async def test_sqlite_stores_unknown_times_as_null_once(
    rest_books: list[BookSnapshot], tmp_path: Path
) -> None:
    path = tmp_path / "v.db"
    async with SqliteStore(path) as store:
        await store.write(rest_books)
        await store.write(rest_books)  # same books again: the key still matches
    rows = [
        tuple(r) for r in open_reader(path).execute("SELECT venue, ts_venue FROM book_snapshots")
    ]
    assert _stored(rows) == [("binance", None), ("kalshi", None)]


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    name = f"vf_test_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(require_postgres())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def _pg_rows(pg_schema: str, sql: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(require_postgres())
    try:
        return [tuple(r) for r in await conn.fetch(sql.replace("S.", f'"{pg_schema}".'))]
    finally:
        await conn.close()


async def test_postgres_stores_unknown_times_as_null_once(
    rest_books: list[BookSnapshot], pg_schema: str
) -> None:
    store = PostgresStore(require_postgres(), pg_schema=pg_schema)
    await store.start()
    try:
        await store.write(rest_books)
        await store.write(rest_books)
    finally:
        await store.close()
    rows = await _pg_rows(pg_schema, "SELECT venue, ts_venue FROM S.book_snapshots")
    assert _stored(rows) == [("binance", None), ("kalshi", None)]
    levels = await _pg_rows(pg_schema, "SELECT count(*) FROM S.book_levels")
    assert levels[0][0] == sum(len(b.bids) + len(b.asks) for b in rest_books)


async def test_bus_carries_null(rest_books: list[BookSnapshot]) -> None:
    import nats

    token = uuid.uuid4().hex[:10]
    stream, prefix = f"VFTEST_{token}", f"vftest{token}"
    async with NatsSink(require_nats(), subject_prefix=prefix, stream=stream) as sink:
        await sink.write(rest_books)
    nc = await nats.connect(require_nats())
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        seqs = range(info.state.first_seq, info.state.last_seq + 1)
        data = [(await js.get_msg(stream, seq)).data or b"" for seq in seqs]
        await js.delete_stream(stream)
    finally:
        await nc.close()
    assert [msgspec.json.decode(d)["ts_venue"] for d in data] == [None, None]
    assert [event_decoder.decode(d) for d in data] == rest_books
    assert [codec.decode(d) for d in data] == rest_books  # what a cluster writer stores


async def test_websocket_books_keep_the_venue_time() -> None:
    async with polymarket.Simulator(seed=21, markets=3, events_per_second=100) as sim:
        assert isinstance(sim, polymarket.Simulator)
        tokens = sim.tokens(open_only=True)[:2]
        async with polymarket_adapter(sim) as adapter:
            stream = adapter.open_stream()
            await stream.subscribe(tokens)
            books: list[BookSnapshot] = []
            async with asyncio.timeout(5):
                async for event in stream:
                    if isinstance(event, BookSnapshot):
                        books.append(event)
                    if {b.instrument for b in books} == set(tokens):
                        break
            await stream.close()
    for book in books:
        assert book.ts_venue is not None
        assert abs(book.ts_recv - book.ts_venue) < 60 * S


async def test_a_binance_book_takes_the_time_of_its_websocket_updates() -> None:
    """The REST snapshot that starts the book is untimed; once updates flow, the book's
    state (what the book persistence stores) carries the venue time of the last one."""
    bsim = binance.Simulator(seed=7, faults=Faults(), events_per_second=100)
    await bsim.start()
    adapter = binance_adapter(bsim)
    stream = adapter.open_stream(frozenset({"books"}))
    events: list[BookSnapshot | BookDelta] = []
    try:
        await stream.subscribe(["BTCUSDT"])
        async with asyncio.timeout(10):
            async for event in stream:
                if isinstance(event, BookSnapshot | BookDelta) and event.instrument == "BTCUSDT":
                    events.append(event)
                if any(isinstance(e, BookDelta) for e in events):
                    break
        book = stream.book("BTCUSDT")
        assert book is not None
        persisted = book.snapshot()
    finally:
        await stream.close()
        await adapter.close()
        await bsim.stop()
    assert isinstance(events[0], BookSnapshot) and events[0].ts_venue is None
    assert persisted.ts_venue is not None and persisted.ts_venue == events[-1].ts_venue


def _before_unknown_times() -> tuple[schema.Migration, ...]:
    """Migrations 1-4 as a store written before migration 5 has them (snapshot tables only)."""
    timed = tuple(
        replace(c, nullable=False) if c.name == "ts_venue" else c
        for c in schema.BOOK_SNAPSHOTS.columns
    )
    old = replace(schema.BOOK_SNAPSHOTS, columns=timed, unknown_in_key=())
    first = schema.Migration(1, "initial schema", tables=(old, schema.BOOK_LEVELS))
    return (first, *(schema.Migration(v, f"step {v}") for v in (2, 3, 4)))


_OLD_ROW = ("kalshi", "KX-1", 0, 1_700_000_000 * S, -1, None, "d1")


async def test_sqlite_migration_turns_stored_zeros_into_null(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", _before_unknown_times())
        sqlite.migrate(path)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO book_snapshots (id, venue, instrument, ts_venue, ts_recv, sequence, "
        "checksum, digest) VALUES (7, ?, ?, ?, ?, ?, ?, ?)",
        _OLD_ROW,
    )
    conn.commit()
    conn.close()
    assert sqlite.migrate(path) == [5]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id, ts_venue FROM book_snapshots").fetchall() == [(7, None)]
        again = schema.insert_sql(schema.BOOK_SNAPSHOTS, "sqlite", returning="id")
        assert conn.execute(again, (*_OLD_ROW[:2], None, *_OLD_ROW[3:])).fetchall() == []
        new = conn.execute(again, (*_OLD_ROW[:2], None, *_OLD_ROW[3:6], "d2")).fetchall()
        assert new[0][0] > 7  # AUTOINCREMENT carried over: ids never restart below old ones
    finally:
        conn.close()


async def test_postgres_migration_turns_stored_zeros_into_null(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await asyncpg.connect(require_postgres())
    try:
        with monkeypatch.context() as patch:
            patch.setattr(schema, "MIGRATIONS", _before_unknown_times())
            await postgres.migrate(conn, pg_schema)
        q = f'"{pg_schema}".book_snapshots'
        await conn.execute(
            f"INSERT INTO {q} (venue, instrument, ts_venue, ts_recv, sequence, checksum, digest) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *_OLD_ROW,
        )
        assert await postgres.migrate(conn, pg_schema) == [5]
        assert await conn.fetch(f"SELECT ts_venue FROM {q}") == [(None,)]
        constraints = f"SELECT count(*) FROM pg_constraint WHERE conrelid = '{q}'::regclass"
        assert await conn.fetchval(constraints + " AND contype = 'u'") == 0  # the index keys it
        again = schema.insert_sql(
            schema.BOOK_SNAPSHOTS, "postgres", schema=pg_schema, returning="id"
        )
        assert await conn.fetch(again, *_OLD_ROW[:2], None, *_OLD_ROW[3:]) == []
    finally:
        await conn.close()
