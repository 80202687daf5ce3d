"""Simulator -> adapter stream (+ gap backfill) against the simulator's ground truth, faults on.

After a run with disconnects, duplicated, reordered, malformed frames and
skipped book changes: every trade the simulator emitted is present exactly
once after deduplication by trade id (live prints plus a Data-API backfill of
each disconnect window), and each token's book equals the simulator's final
book. The integrator extends this through the SQLite store.
"""

from __future__ import annotations

import asyncio

from venuefeed.config import IngestionSettings
from venuefeed.models import DataGap, Trade
from venuefeed.sim.base import Faults
from venuefeed.venues.polymarket import Simulator, parse

from .helpers import make_adapter


async def test_every_trade_once_and_books_equal_after_faults() -> None:
    faults = Faults(
        disconnect_every_seconds=0.8,
        duplicate_rate=0.05,
        out_of_order_rate=0.03,
        malformed_rate=0.02,
        skip_update_rate=0.03,
    )
    async with Simulator(seed=42, markets=8, events_per_second=400, faults=faults) as sim:
        assert isinstance(sim, Simulator)
        tokens = sim.tokens()
        async with make_adapter(sim, audit_interval_seconds=0.1, audit_batch=50) as adapter:
            stream = adapter.open_stream()
            await stream.subscribe(tokens)
            live: list[Trade] = []
            gaps: list[DataGap] = []

            async def consume() -> None:
                async for event in stream:
                    if isinstance(event, Trade):
                        live.append(event)
                    elif isinstance(event, DataGap) and event.cause == "disconnect":
                        gaps.append(event)

            consumer = asyncio.create_task(consume())
            await asyncio.sleep(2.5)
            sim.pause()
            await asyncio.sleep(1.2)  # resyncs and audits settle on the final state
            stored: dict[str, Trade] = {t.trade_id: t for t in live}
            # What the service's gap healer does: the window of each replaced connection,
            # widened by the margin (a frame held back before the cut is older than its
            # connection's last frame), from the venue's trade history.
            margin = int(IngestionSettings().gap_margin_seconds * 1e9)
            for gap in gaps:
                window = adapter.fetch_trade_window(
                    gap.instruments, gap.start - margin, gap.end + margin
                )
                async for trade in window:
                    stored.setdefault(trade.trade_id, trade)
            books = {t: stream.feed.books.get(t) for t in tokens}
            await stream.close()
            await consumer
        kinds = [e["kind"] for e in sim.truth.events]
        for fault in (
            "ws_cut",
            "duplicate_frame",
            "out_of_order",
            "malformed_frame",
            "sequence_skip",
        ):
            assert fault in kinds, fault
        assert gaps, "the run must have included disconnects"
        expected = {
            parse.trade_id(
                t["token_id"], t["side"].lower(), t["size"], t["price"], t["transaction_hash"]
            ): t
            for t in sim.truth.trades
        }
        assert len(expected) == len(sim.truth.trades) > 50
        assert set(stored) == set(expected)
        assert len(live) > len({t.trade_id for t in live})  # duplicates arrived and were deduped
        final = sim.final_books()
        for token, book in books.items():
            got = (
                [(x.price, x.size) for x in book.bids()],
                [(x.price, x.size) for x in book.asks()],
            )
            assert got == final[token], token
