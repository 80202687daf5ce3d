"""What a worker publishes, a writer reads back as the same record (every record type)."""

from __future__ import annotations

import pytest

from tests.sinks.helpers import market, mixed_batch
from venuefeed.cluster.codec import Undecodable, decode
from venuefeed.sinks import bus


def test_every_published_record_decodes_to_itself() -> None:
    for record in [*mixed_batch(7), market()]:
        assert decode(bus.encode(record)) == record


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[]", b'{"type": "trade"}', b'{"type": "nope"}',
     b'{"event_type": "whale_trade", "venue": "pm"}', b'{"type": "market"}'],
)  # fmt: skip
def test_anything_else_is_undecodable_with_a_reason(payload: bytes) -> None:
    with pytest.raises(Undecodable) as caught:
        decode(payload)
    assert str(caught.value)
