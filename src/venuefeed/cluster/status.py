"""``venuefeed cluster status`` and ``/api/v1/cluster``: the cluster as JetStream knows it.

Read from the buckets and the consumer, never from a worker's own account:
workers and their shard counts and instruments, every lease with its holder
and age, the planner, each writer's counters, and the shared consumer's lag
(messages not yet delivered, and delivered but not acknowledged).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

import msgspec
import nats.js.errors

from venuefeed.cluster.jetstream import Bus, connect
from venuefeed.cluster.leases import lease_holder
from venuefeed.cluster.writer import consumer_name
from venuefeed.config import Settings

__all__ = ["cluster_status", "format_status", "read_cluster_status"]


async def cluster_status(bus: Bus, settings: Settings) -> dict[str, Any]:
    """One snapshot of the cluster (plain data, JSON-ready)."""
    now = time.time_ns()
    keys = await bus.lease_keys()
    leases: list[dict[str, Any]] = []
    writers: list[dict[str, Any]] = []
    for key in keys:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            entry = await bus.leases.get(key)
            if key.startswith("writer."):
                with contextlib.suppress(msgspec.DecodeError):
                    writers.append(msgspec.json.decode(entry.value or b"{}"))
                continue
            body: dict[str, Any] = {}
            with contextlib.suppress(msgspec.DecodeError):
                body = msgspec.json.decode(entry.value or b"{}")
            taken = body.get("ns") or 0
            leases.append({
                "key": key, "holder": lease_holder(entry.value),
                "epoch": body.get("epoch") or entry.revision,
                "renewed_age_s": round((now - taken) / 1e9, 2) if taken else None,
            })  # fmt: skip
    shards = Counter(lease["holder"] for lease in leases if lease["key"].startswith("shard."))
    instruments: Counter[str] = Counter()
    for lease in leases:
        if not lease["key"].startswith("shard."):
            continue
        _, venue, shard = lease["key"].split(".", 2)
        with contextlib.suppress(nats.js.errors.KeyNotFoundError, msgspec.DecodeError):
            entry = await bus.state.get(f"universe.{venue}.{shard}")
            instruments[lease["holder"]] += len(msgspec.json.decode(entry.value or b"[]"))
    workers = [
        {"worker": lease["holder"], "shards": shards.get(lease["holder"], 0),
         "instruments": instruments.get(lease["holder"], 0),
         "lease_age_s": lease["renewed_age_s"]}
        for lease in leases if lease["key"].startswith("member.")
    ]  # fmt: skip
    consumer: dict[str, Any] = {"name": consumer_name(settings)}
    try:
        info = await bus.js.consumer_info(bus.stream, consumer_name(settings))
        consumer.update(pending=info.num_pending, ack_pending=info.num_ack_pending,
                        redelivered=info.num_redelivered)  # fmt: skip
    except nats.js.errors.NotFoundError:
        consumer["missing"] = True
    planner = next((lease["holder"] for lease in leases if lease["key"] == "planner"), None)
    return {
        "cluster": settings.cluster.name,
        "planner": planner,
        "workers": workers,
        "writers": writers,
        "leases": leases,
        "consumer": consumer,
        "shards_per_venue": settings.cluster.shards,
    }


async def read_cluster_status(settings: Settings, *, within: float = 5.0) -> dict[str, Any]:
    """Connect (creating nothing), read one snapshot, disconnect."""
    bus = await connect(settings, client_name="venuefeed-status", within=within, create=False)
    try:
        return await cluster_status(bus, settings)
    finally:
        await bus.close()


def format_status(status: dict[str, Any]) -> str:
    """The status as a few aligned lines for a terminal."""
    lines = [f"cluster {status['cluster']}   planner: {status['planner'] or '-'}"]
    lines.append(f"{'worker':<40} {'shards':>6} {'instruments':>11} {'lease age s':>11}")
    for w in status["workers"]:
        age = "-" if w["lease_age_s"] is None else f"{w['lease_age_s']:.1f}"
        lines.append(f"{w['worker']:<40} {w['shards']:>6} {w['instruments']:>11} {age:>11}")
    consumer = status["consumer"]
    lag = (
        "missing"
        if consumer.get("missing")
        else (f"pending {consumer.get('pending')}, unacknowledged {consumer.get('ack_pending')}")
    )
    lines.append(f"consumer {consumer['name']}: {lag}")
    lines.extend(
        f"writer {w.get('holder')}: stored {w.get('stored')}, refused {w.get('refused')}, "
        f"redelivered {w.get('redelivered')}"
        for w in status["writers"]
    )
    return "\n".join(lines)
