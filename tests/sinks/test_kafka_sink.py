"""The Kafka sink against librdkafka's mock cluster on loopback, read back by a real consumer."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from venuefeed import metrics
from venuefeed.models import event_decoder
from venuefeed.sinks.base import SinkUnavailable, Watermark
from venuefeed.sinks.deadletter import DeadLetterStore, read_dead_letters
from venuefeed.sinks.kafka import MSG_ID_HEADER, KafkaSink
from venuefeed.sinks.keys import message_id
from venuefeed.sinks.spool import SpoolingSink

from .helpers import delta, market, mixed_batch, trade


@pytest.fixture(scope="module")
def mock_cluster() -> Iterator[str]:
    """Three mock brokers living inside a holder client; yields their bootstrap servers."""
    holder = Producer({"test.mock.num.brokers": 3, "log_level": 0})
    brokers = holder.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{b.host}:{b.port}" for b in brokers)
    holder.flush(1)


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 15) -> list[object]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{time.time_ns()}",
                         "enable.auto.commit": False, "log_level": 0})  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out: list[object] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append(msg)
        # Nothing more than expected arrives.
        extra = consumer.poll(0.5)
        assert extra is None or extra.error() is not None, "more messages than published"
        return out
    finally:
        consumer.close()


async def test_every_message_read_back_in_order_per_instrument(mock_cluster: str) -> None:
    before = metrics.KAFKA_DELIVERIES.labels("t1.market_trades", "ok")._value.get()
    async with KafkaSink(mock_cluster, topic_prefix="t1.") as sink:
        for k in range(10):  # interleave 4 instruments over 10 batches
            await sink.write([trade(k * 10 + i, instrument=f"i{i % 4}") for i in range(10)])
    messages = read_all(mock_cluster, "t1.market_trades", 100)
    assert len(messages) == 100
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for msg in messages:
        event = event_decoder.decode(msg.value())  # type: ignore[attr-defined]
        assert msg.key() == event.instrument.encode()  # type: ignore[attr-defined]
        headers = dict(msg.headers())  # type: ignore[attr-defined]
        assert headers[MSG_ID_HEADER].decode() == message_id(event)
        by_key[msg.key()].append(int(event.trade_id[1:]))  # type: ignore[attr-defined, union-attr]
    assert set(by_key) == {b"i0", b"i1", b"i2", b"i3"}
    for ids in by_key.values():
        assert ids == sorted(ids)
    assert sorted(i for ids in by_key.values() for i in ids) == list(range(100))
    after = metrics.KAFKA_DELIVERIES.labels("t1.market_trades", "ok")._value.get()
    assert after - before == 100


async def test_topics_by_kind_and_canonical_payloads(mock_cluster: str) -> None:
    batch = [*mixed_batch(7), market(), Watermark("job", "x")]
    async with KafkaSink(mock_cluster, topic_prefix="t2.") as sink:
        await sink.write(batch)
    books = read_all(mock_cluster, "t2.order_books", 2)
    kinds = sorted(type(event_decoder.decode(m.value())).__name__ for m in books)  # type: ignore[attr-defined]
    assert kinds == ["BookDelta", "BookSnapshot"]
    whales = read_all(mock_cluster, "t2.whale_activity", 1)
    assert msgspec.json.decode(whales[0].value())["trader_address"] == "0xabc"  # type: ignore[attr-defined]
    updates = read_all(mock_cluster, "t2.market_updates", 6)
    types = sorted(msgspec.json.decode(m.value())["type"] for m in updates)  # type: ignore[attr-defined]
    assert types == ["candle", "data_gap", "market", "market_status", "price_update",
                     "top_of_book"]  # fmt: skip
    market_msg = next(m for m in updates if m.key() == b"m1")  # type: ignore[attr-defined]
    assert msgspec.json.decode(market_msg.value())["rules"] == "Resolves YES if it rains."  # type: ignore[attr-defined]


async def test_msgpack_format(mock_cluster: str) -> None:
    async with KafkaSink(mock_cluster, topic_prefix="t3.", fmt="msgpack") as sink:
        await sink.write([delta(1)])
    (msg,) = read_all(mock_cluster, "t3.order_books", 1)
    decoded = msgspec.msgpack.decode(msg.value())  # type: ignore[attr-defined]
    assert decoded["type"] == "book_delta" and decoded["bids"] == [["64000.01", "0.00000001"]]


async def test_concurrent_batches_all_acknowledged(mock_cluster: str) -> None:
    async with KafkaSink(mock_cluster, topic_prefix="t4.") as sink:
        await asyncio.gather(*(sink.write([trade(k * 100 + i) for i in range(50)])
                               for k in range(8)))  # fmt: skip
        assert sink.delivered == 400
    assert len(read_all(mock_cluster, "t4.market_trades", 400)) == 400


async def test_no_broker_is_sink_unavailable() -> None:
    sink = KafkaSink("127.0.0.1:1", delivery_timeout=1, config={"log_level": 0})
    with pytest.raises(SinkUnavailable):
        await sink.start()
    with pytest.raises(SinkUnavailable):
        await sink.write([trade(1)])


async def test_a_message_too_large_is_set_aside_alone(mock_cluster: str, tmp_path: Path) -> None:
    """The producer refuses it for good (MSG_SIZE_TOO_LARGE): only that record is set aside."""
    dead = DeadLetterStore(tmp_path / "dead.jsonl")
    inner = KafkaSink(mock_cluster, topic_prefix="t5.", config={"message.max.bytes": 2000})
    sink = SpoolingSink(inner, tmp_path / "spool", 1_000_000, dead_letters=dead)
    huge = msgspec.structs.replace(trade(3), maker="m" * 5000)
    await sink.start()
    try:
        await sink.write([trade(1), trade(2), huge, trade(4)])
    finally:
        await sink.close()
    (letter,) = read_dead_letters(tmp_path / "dead.jsonl")
    assert letter.sink == "kafka" and "MSG_SIZE_TOO_LARGE" in letter.reason
    assert letter.to_record() == huge
    messages = read_all(mock_cluster, "t5.market_trades", 3)
    assert sorted(msgspec.json.decode(m.value())["trade_id"] for m in messages) == [
        "t1",
        "t2",
        "t4",
    ]  # type: ignore[attr-defined]
