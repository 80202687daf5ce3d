"""``/api/v1/cluster``: the cluster as JetStream knows it, or why there is none."""

from __future__ import annotations

import contextlib
import uuid

from tests.sinks.helpers import require_nats
from venuefeed.cluster.jetstream import connect
from venuefeed.cluster.leases import LeaseTable

from .apihelp import StackFactory


async def test_cluster_view_before_and_after_a_worker_joined(make_stack: StackFactory) -> None:
    name = f"api{uuid.uuid4().hex[:8]}"
    stack = await make_stack(**{"cluster.nats_urls": [require_nats()], "cluster.name": name,
                                "bus.nats_stream": name.upper(),
                                "bus.nats_subject_prefix": name})  # fmt: skip
    resp = await stack.client.get("/api/v1/cluster")
    assert resp.status_code == 200
    assert resp.json()["running"] is False and "no " in resp.json()["detail"]

    bus = await connect(stack.service.settings, client_name="test-api")
    try:
        assert await LeaseTable(bus, "w-api", 30).take("member.w-api") is not None
        body = (await stack.client.get("/api/v1/cluster")).json()
        assert body["running"] is True and body["cluster"] == name
        assert [w["worker"] for w in body["workers"]] == ["w-api"]
        assert body["consumer"]["missing"] is True  # no writer has run
    finally:
        with contextlib.suppress(Exception):
            await bus.js.delete_stream(bus.stream)
            await bus.js.delete_key_value(f"{name}-leases")
            await bus.js.delete_key_value(f"{name}-state")
        await bus.close()


async def test_unreachable_nats_is_a_503_that_says_so(make_stack: StackFactory) -> None:
    stack = await make_stack(**{"cluster.nats_urls": ["nats://127.0.0.1:9"]})
    resp = await stack.client.get("/api/v1/cluster")
    assert resp.status_code == 503 and "NATS at" in resp.json()["detail"]
