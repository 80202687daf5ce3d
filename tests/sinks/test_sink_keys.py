"""One identity per fact for every sink: natural keys, message ids, topics."""

from __future__ import annotations

import msgspec

from venuefeed.models import BookLevel, Candle
from venuefeed.sinks import bus
from venuefeed.sinks.base import Watermark
from venuefeed.sinks.keys import message_id, natural_key, partition_key

from .helpers import delta, market, mixed_batch, trade


def test_receive_time_is_not_part_of_the_identity() -> None:
    again = msgspec.structs.replace(trade(1), ts_recv=trade(1).ts_recv + 5_000_000_000)
    assert message_id(again) == message_id(trade(1))
    assert natural_key(trade(1)) == ("trade", "pm", "tok", "t1")
    assert message_id(trade(1)) != message_id(trade(2))
    assert len(message_id(trade(1))) == 32


def test_updates_are_new_facts_repeats_are_not() -> None:
    base = Candle(venue="b", instrument="X", ts_venue=1, ts_recv=1, interval="1m", open_time=60,
                  close_time=119, open="1", high="2", low="1", close="1.5", volume="3",
                  closed=False)  # fmt: skip
    assert message_id(base) != message_id(msgspec.structs.replace(base, close="1.6"))
    other_levels = msgspec.structs.replace(delta(1), bids=[BookLevel("1", "2")])
    assert message_id(delta(1)) != message_id(other_levels)
    assert message_id(market()) != message_id(msgspec.structs.replace(market(), title="x"))


def test_every_record_has_a_key_and_a_topic_but_watermarks() -> None:
    records = [*mixed_batch(1), market()]
    assert len({message_id(r) for r in records}) == len(records)
    assert {bus.topic_for(r) for r in records} == {
        "market_trades", "order_books", "market_updates", "whale_activity"
    }  # fmt: skip
    assert bus.topic_for(Watermark("k", "v")) is None
    assert partition_key(market()) == "m1" and partition_key(trade(1)) == "tok"
    assert msgspec.json.decode(bus.encode(market()))["type"] == "market"
    assert bus.type_tag(trade(1)) == "trade"


def test_snapshot_identity_includes_its_levels() -> None:
    from venuefeed.models import BookLevel, BookSnapshot
    from venuefeed.sinks.keys import message_id

    def snap(size: str) -> BookSnapshot:
        return BookSnapshot(venue="polymarket", instrument="t", ts_venue=5, ts_recv=6,
                            bids=[BookLevel("0.5", size)], asks=[])  # fmt: skip

    # No venue sequence: two states in one millisecond must not collapse into one...
    assert message_id(snap("10")) != message_id(snap("11"))
    # ...while the same state seen twice is one record.
    assert message_id(snap("10")) == message_id(snap("10"))


def test_raw_frames_survive_the_spool_journal() -> None:
    from venuefeed.sinks.base import RawMessage
    from venuefeed.sinks.journal import decode_batch, encode_batch

    raw = RawMessage("kalshi", "ws", 7, b'{"type":"trade"}')
    assert decode_batch(encode_batch([raw])) == [raw]
