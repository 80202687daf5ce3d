"""Leases and fences on a real JetStream server: take, renew, lose on TTL, fence the old epoch."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.sinks.helpers import require_nats, trade
from venuefeed.cluster.jetstream import Bus, connect
from venuefeed.cluster.leases import LeaseTable, decode_fences
from venuefeed.cluster.publisher import EPOCH_HEADER, LEASE_HEADER, Ownership, shard_key
from venuefeed.cluster.writer import KeyState, Verdict, judge
from venuefeed.config import load_config
from venuefeed.sinks.keys import message_id

TTL = 1.0


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    name = f"t{uuid.uuid4().hex[:10]}"
    settings = load_config(
        overrides={
            "cluster.nats_urls": [require_nats()],
            "cluster.name": name,
            "cluster.lease_ttl_seconds": TTL,
            "bus.nats_stream": name.upper(),
            "bus.nats_subject_prefix": name,
        },
        environ={},
    )
    bus = await connect(settings, client_name="test-leases")
    try:
        yield bus
    finally:
        with contextlib.suppress(Exception):
            await bus.js.delete_stream(bus.stream)
            await bus.js.delete_key_value(f"{name}-leases")
            await bus.js.delete_key_value(f"{name}-state")
        await bus.close()


async def test_a_lapsed_lease_passes_to_another_holder_and_fences_the_old_epoch(bus: Bus) -> None:
    a, b = LeaseTable(bus, "a", TTL), LeaseTable(bus, "b", TTL)
    key = shard_key("kalshi", 3)
    first = await a.take(key)
    assert first is not None and await b.take(key) is None  # create-if-absent
    assert await a.renew(first)  # update on the last revision
    await bus.js.publish(f"{bus.prefix}.x", b"{}")  # the stream moves on

    # a stops renewing: it knows before the server does, and the key ages out.
    deadline = time.monotonic() + 10
    second = None
    while second is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        second = await b.take(key)
    assert second is not None and second.epoch > first.epoch
    assert not a.valid(first) and not await a.renew(first)  # lost for good

    fences = decode_fences((await bus.state.get(f"fence.{key}")).value)
    placed = dict(fences)[second.epoch]
    state = KeyState(fences, second.epoch)
    assert judge(state, first.epoch, placed) == Verdict.STORE  # published before the take
    assert judge(state, first.epoch, placed + 1) == Verdict.REFUSE  # a stale owner's
    assert judge(state, second.epoch, placed + 1) == Verdict.STORE
    taken_unfenced = KeyState(fences[:-1], second.epoch)
    assert judge(taken_unfenced, first.epoch, placed + 1) == Verdict.LATER


async def test_the_stamp_names_the_lease_and_is_withheld_once_it_lapses(bus: Bus) -> None:
    table = LeaseTable(bus, "a", TTL)
    record = trade(1, instrument="KX-1", venue="kalshi")
    ownership = Ownership(8, "member.a", table.valid)
    key = ownership.lease_key(record)
    assert ownership.stamp(record) is None  # not ours
    lease = await table.take(key)
    assert lease is not None
    ownership.held[key] = lease
    stamp = ownership.stamp(record)
    assert stamp is not None
    assert stamp[LEASE_HEADER] == key and stamp[EPOCH_HEADER] == str(lease.epoch)
    assert stamp["Nats-Msg-Id"] == f"{message_id(record)}.{lease.epoch}"  # per owner
    await asyncio.sleep(TTL)  # no renewal
    assert ownership.stamp(record) is None


async def test_a_released_lease_can_be_taken_at_once(bus: Bus) -> None:
    a, b = LeaseTable(bus, "a", TTL * 30), LeaseTable(bus, "b", TTL * 30)
    lease = await a.take("planner")
    assert lease is not None
    await a.release(lease)
    again = await b.take("planner")
    assert again is not None and again.epoch > lease.epoch
