"""The pipeline stages against a real SQLite store: dedup, G1, G3, G5, whales, books."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from msgspec.structs import replace

from venuefeed.book import OrderBook
from venuefeed.config import Settings, load_config
from venuefeed.models import BookDelta, BookLevel, BookSnapshot, PriceUpdate, Trade
from venuefeed.pipeline.router import Pipeline
from venuefeed.pipeline.whales import WhaleWatch
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.sqlite import SqliteStore, open_reader

NOW = time.time_ns()


def trade(tid: str, price: str = "0.5", size: str = "10", age_s: float = 1, **kw: object) -> Trade:
    return Trade(venue="pm", instrument="tok", ts_venue=NOW - int(age_s * 1e9), ts_recv=NOW,
                 trade_id=tid, price=price, size=size, side="buy", **kw)  # type: ignore[arg-type]  # fmt: skip


class Rig:
    def __init__(
        self, settings: Settings, store: SqliteStore, pipeline: Pipeline, writer: SinkWriter
    ) -> None:
        self.settings, self.store, self.pipeline, self.writer = settings, store, pipeline, writer
        self.books: dict[str, OrderBook] = {}
        self.echoed: list[str] = []

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        return [tuple(r) for r in open_reader(self.store.path).execute(sql).fetchall()]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = load_config(overrides={"ingestion.book_persist_interval_seconds": 1.0}, environ={})
    store = SqliteStore(tmp_path / "p.db")
    await store.start()
    writer = SinkWriter(store)
    writer.start()
    echoed: list[str] = []
    pipeline = Pipeline(settings, writer, echo=echoed.append)
    rig = Rig(settings, store, pipeline, writer)
    rig.echoed = echoed
    pipeline.set_book_lookup(lambda _v, i: rig.books.get(i))
    yield rig
    await writer.close()
    await store.close()


async def test_replayed_trade_is_stored_and_published_once(rig: Rig) -> None:
    first = await rig.pipeline.process(trade("t1"))
    again = await rig.pipeline.process(trade("t1"))
    await rig.writer.drain()
    assert first.stored and first.live
    assert again.reason == "duplicate" and not again.stored
    assert rig.rows("SELECT trade_id FROM trades") == [("t1",)]
    assert [e["trade_id"] for e in rig.pipeline.hub.recent() if e["type"] == "trade"] == ["t1"]


async def test_g1_stale_trade_stored_but_not_live(rig: Rig) -> None:
    result = await rig.pipeline.process(trade("old", age_s=301))
    fresh = await rig.pipeline.process(trade("new", age_s=299))
    await rig.writer.drain()
    assert result.checks == ("g1_stale",) and not result.live and result.stored
    assert fresh.live
    assert rig.pipeline.g1.blocked == 1
    assert {r[0] for r in rig.rows("SELECT trade_id FROM trades")} == {"old", "new"}
    assert [e["trade_id"] for e in rig.pipeline.hub.recent() if e["type"] == "trade"] == ["new"]


async def test_g1_does_not_apply_to_backfilled_history(rig: Rig) -> None:
    result = await rig.pipeline.process(trade("hist", age_s=86400), live=False)
    assert result.checks == () and rig.pipeline.g1.blocked == 0


async def test_g3_size_backfilled_from_recent_trades(rig: Rig) -> None:
    await rig.pipeline.process(trade("rest1", price="0.54", size="250", age_s=30), live=False)
    near = PriceUpdate(venue="pm", instrument="tok", ts_venue=NOW, ts_recv=NOW, price="0.545")
    far = PriceUpdate(venue="pm", instrument="tok", ts_venue=NOW + 1, ts_recv=NOW, price="0.6")
    r1 = await rig.pipeline.process(near)
    r2 = await rig.pipeline.process(far)
    await rig.writer.drain()
    assert r1.checks == ("g3_backfilled",) and r2.checks == ("g3_missing",)
    assert rig.rows("SELECT price, size FROM price_updates ORDER BY price") == [
        ("0.545", "250"), ("0.6", None),
    ]  # fmt: skip


async def test_g3_ignores_trades_older_than_the_limit(rig: Rig) -> None:
    await rig.pipeline.process(trade("rest1", price="0.54", size="250", age_s=61), live=False)
    update = PriceUpdate(venue="pm", instrument="tok", ts_venue=NOW, ts_recv=NOW, price="0.54")
    assert (await rig.pipeline.process(update)).checks == ("g3_missing",)


async def test_g5_divergent_trade_flagged_and_kept(rig: Rig) -> None:
    book = OrderBook("pm", "tok")
    bids, asks = [BookLevel("0.49", "1")], [BookLevel("0.51", "1")]
    book.load_snapshot(
        BookSnapshot(venue="pm", instrument="tok", ts_venue=1, ts_recv=1, bids=bids, asks=asks)
    )
    rig.books["tok"] = book
    inside = await rig.pipeline.process(trade("a", price="0.60"))  # 0.10 from mid: allowed
    outside = await rig.pipeline.process(trade("b", price="0.61"))
    await rig.writer.drain()
    assert inside.checks == () and outside.checks == ("g5_divergence",)
    assert rig.rows("SELECT trade_id, flags FROM trades ORDER BY trade_id") == [
        ("a", ""), ("b", "price_divergence"),
    ]  # fmt: skip
    ok, ref, reason = rig.pipeline.g5.check(trade("c", price="0.9"))
    assert not ok and ref == "0.5" and reason == "deviation 0.4 > 0.1"


async def test_whales_watched_wallet_and_large_unknown_trade(rig: Rig) -> None:
    rig.pipeline.whales.update(["0x1F2DD6AAAABBBBCCCC"])
    await rig.pipeline.process(trade("w1", price="0.54", size="1000", taker="0x1f2dd6aaaabbbbcccc"))
    await rig.pipeline.process(trade("small", price="0.5", size="10", taker="0xabc"))
    await rig.pipeline.process(trade("big", price="0.5", size="30000", taker="0xdef"))
    await rig.writer.drain()
    rows = rig.rows(
        "SELECT trade_id, trader_address, amount, known_whale FROM whale_activity ORDER BY trade_id"
    )
    assert rows == [("big", "0xdef", "15000", 0), ("w1", "0x1f2dd6aaaabbbbcccc", "540", 1)]
    # The console line names the venue and the market (its id until a title is known).
    assert rig.echoed[0] == "whale trade pm tok 0x1f2dd6… BUY 1000 @ 0.54 ($540.00)"
    rig.pipeline.set_title_lookup(lambda venue, _m, i: "Will it rain?" if i == "tok" else None)
    await rig.pipeline.process(trade("w2", price="0.5", size="100", taker="0x1f2dd6aaaabbbbcccc"))
    assert rig.echoed[-1] == 'whale trade pm "Will it rain?" 0x1f2dd6… BUY 100 @ 0.5 ($50.00)'


def test_whale_thresholds_per_venue_and_asset_class() -> None:
    """Ten thousand is a whale on a prediction market and noise on Binance."""
    watch = WhaleWatch(
        Decimal("10000"),
        {"binance": Decimal("1000000"), "binance:BTC": Decimal("10"), "polygon": Decimal("500000")},
    )
    assert watch.threshold_for("polymarket", "123") == Decimal("10000")
    assert watch.threshold_for("binance", "ETHUSDT") == Decimal("1000000")
    assert watch.threshold_for("binance", "ETHBTC") == Decimal("10")  # BTC-quoted: in BTC
    big_usdt = replace(trade("u", price="60000", size="10"), venue="binance", instrument="BTCUSDT")
    assert watch.inspect(big_usdt) is None  # 600k USDT: below Binance's million
    eth_btc = replace(trade("e", price="0.05", size="300"), venue="binance", instrument="ETHBTC")
    assert watch.inspect(eth_btc) is not None  # 15 BTC


async def test_book_persistence_throttled_with_trailing_flush(rig: Rig) -> None:
    book = OrderBook("pm", "tok")
    rig.books["tok"] = book
    snap = BookSnapshot(venue="pm", instrument="tok", ts_venue=1, ts_recv=NOW,
                        bids=[BookLevel("0.4", "1")], asks=[BookLevel("0.6", "1")])  # fmt: skip
    book.load_snapshot(snap)
    await rig.pipeline.process(snap)
    for n in range(1, 50):  # 49 changes within the same second
        delta = BookDelta(venue="pm", instrument="tok", ts_venue=1 + n, ts_recv=NOW + n * 1000,
                          bids=[BookLevel("0.4", str(n + 1))], asks=[])  # fmt: skip
        assert book.apply_delta(delta) is None
        await rig.pipeline.process(delta)
    await rig.writer.drain()
    assert len(rig.rows("SELECT id FROM book_snapshots")) == 1  # throttled
    assert await rig.pipeline.flush_books(force=True) == 1  # trailing edge
    await rig.writer.drain()
    final = rig.rows(
        "SELECT l.side, l.price, l.size FROM book_levels l "
        "JOIN book_snapshots s ON s.id = l.snapshot_id "
        "WHERE s.id = (SELECT max(id) FROM book_snapshots) ORDER BY l.side"
    )
    assert final == [("ask", "0.6", "1"), ("bid", "0.4", "50")]
