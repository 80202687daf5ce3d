"""The NATS JetStream sink against the machine's real server, one stream per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest

from venuefeed.models import event_decoder
from venuefeed.sinks.base import SinkUnavailable, Watermark
from venuefeed.sinks.keys import message_id
from venuefeed.sinks.nats import NatsSink

from .helpers import market, mixed_batch, require_nats, trade


@pytest.fixture
async def names() -> AsyncIterator[tuple[str, str]]:
    """A unique (stream, subject prefix); the stream is deleted afterwards."""
    url = require_nats()
    token = uuid.uuid4().hex[:10]
    stream, prefix = f"VFTEST_{token}", f"vftest{token}"
    yield stream, prefix
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


async def stream_messages(stream: str, prefix: str) -> list[nats.aio.msg.Msg]:
    nc = await nats.connect(require_nats())
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream)
        seqs = range(info.state.first_seq, info.state.last_seq + 1)
        return [await js.get_msg(stream, seq) for seq in seqs]
    finally:
        await nc.close()


async def test_stream_created_and_subjects_per_topic_and_venue(names: tuple[str, str]) -> None:
    stream, prefix = names
    batch = [*mixed_batch(1), market(), Watermark("job", "1")]
    async with NatsSink(require_nats(), subject_prefix=prefix, stream=stream) as sink:
        await sink.write(batch)
    msgs = await stream_messages(stream, prefix)
    subjects = sorted({m.subject for m in msgs})
    assert subjects == [
        f"{prefix}.market_trades.pm",
        f"{prefix}.market_updates.binance",
        f"{prefix}.market_updates.pm",
        f"{prefix}.order_books.binance",
        f"{prefix}.order_books.kalshi",
        f"{prefix}.whale_activity.pm",
    ]
    assert len(msgs) == 10  # everything but the watermark
    trade_msg = next(m for m in msgs if m.subject.endswith("market_trades.pm"))
    assert event_decoder.decode(trade_msg.data) == batch[0]
    assert trade_msg.headers is not None
    assert trade_msg.headers["Nats-Msg-Id"] == message_id(batch[0])
    market_msg = next(m for m in msgs if msgspec.json.decode(m.data)["type"] == "market")
    assert msgspec.json.decode(market_msg.data)["market_id"] == "m1"


async def test_same_batch_twice_is_stored_once(names: tuple[str, str]) -> None:
    stream, prefix = names
    batch = [trade(n, instrument=f"i{n % 3}") for n in range(50)]
    async with NatsSink(require_nats(), subject_prefix=prefix, stream=stream) as sink:
        await sink.write(batch)
        await sink.write(batch)
        await sink.write([*batch[10:20], trade(50)])
        assert sink.duplicates == 60
    msgs = await stream_messages(stream, prefix)
    assert [event_decoder.decode(m.data) for m in msgs] == [*batch, trade(50)]


async def test_existing_stream_is_reused(names: tuple[str, str]) -> None:
    stream, prefix = names
    async with NatsSink(require_nats(), subject_prefix=prefix, stream=stream) as sink:
        await sink.write([trade(1)])
    async with NatsSink(require_nats(), subject_prefix=prefix, stream=stream) as sink:
        await sink.write([trade(1), trade(2)])
    assert len(await stream_messages(stream, prefix)) == 2


async def test_no_server_is_sink_unavailable() -> None:
    sink = NatsSink("nats://127.0.0.1:1", ack_timeout=0.5)
    with pytest.raises(SinkUnavailable):
        await sink.start()
    with pytest.raises(SinkUnavailable):
        await sink.write([trade(1)])
