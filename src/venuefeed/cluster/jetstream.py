"""The cluster's JetStream resources: one connection, the event stream, two KV buckets.

* **Event stream** (``bus.nats_stream`` over ``<bus.nats_subject_prefix>.>``):
  what workers publish and writers consume. Its duplicate window
  (``cluster.duplicate_window_seconds``) must cover a handover, so the trades
  a new owner back-fills that the old one had already published are dropped
  by the server on their ``Nats-Msg-Id``.
* **Lease bucket** ``<cluster.name>-leases``: bucket TTL =
  ``cluster.lease_ttl_seconds``. A key that is not renewed ages out -- that is
  how a lease is lost, with no clock of ours involved.
* **State bucket** ``<cluster.name>-state``: no TTL. What must outlive a lease:
  each shard's completeness mark (where the next owner back-fills from), the
  fences (which epochs were superseded at which stream sequence), the
  instrument universe the planner keeps, the venue budgets.

Everything is created if missing with ``cluster.replicas`` replicas; existing
resources are used as they are (an operator may have tuned them).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import nats
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType, StreamConfig

from venuefeed.config import Settings
from venuefeed.log import get_logger

__all__ = ["Bus", "connect"]

log = get_logger("venuefeed.cluster")


@dataclass
class Bus:
    """An open connection and the cluster's resources on it."""

    nc: Any
    js: Any
    leases: Any
    """KV bucket with the lease TTL."""
    state: Any
    """KV bucket without TTL."""
    stream: str
    prefix: str
    lease_bucket: str

    async def lease_keys(self) -> list[str]:
        """Every key with a message in the lease bucket -- held, or deleted (a tombstone).

        Read from the bucket's stream info in one request: a consistent answer,
        unlike a key watcher, which may end before it has seen every key.
        Callers ``get`` the keys they care about to tell held from deleted.
        """
        prefix = f"$KV.{self.lease_bucket}."
        info = await self.js.stream_info(f"KV_{self.lease_bucket}", subjects_filter=prefix + ">")
        subjects = info.state.subjects or {}
        return sorted(s[len(prefix) :] for s in subjects)

    async def last_sequence(self) -> int:
        """The event stream's last sequence (fences are placed after it)."""
        info = await self.js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.nc.close(), 5.0)
        except Exception as exc:  # a dead server must not hold the process on its way out
            log.warning(
                "nats connection did not close cleanly", error=f"{type(exc).__name__}: {exc}"
            )


class NoCluster(Exception):
    """The stream or buckets do not exist (and were not to be created): no cluster ran here."""


async def _ensure_kv(js: Any, config: KeyValueConfig, create: bool) -> Any:
    try:
        return await js.key_value(config.bucket)
    except nats.js.errors.BucketNotFoundError:
        if not create:
            raise NoCluster(f"no key-value bucket {config.bucket!r}: no cluster ran here") from None
        return await js.create_key_value(config)


async def connect(
    settings: Settings, *, client_name: str, within: float = 10.0, create: bool = True
) -> Bus:
    """Connect to any of ``cluster.nats_urls`` and make sure the resources exist.

    ``create=False`` (status views) only looks: missing resources are :class:`NoCluster`.

    The client reconnects by itself for as long as the process lives (a NATS
    node restarting is routine); only the first connection is bounded.
    """
    cluster, bus = settings.cluster, settings.bus

    async def _error(exc: Exception) -> None:
        log.debug("nats client error", error=f"{type(exc).__name__}: {exc}")

    nc = await asyncio.wait_for(
        nats.connect(
            servers=list(cluster.nats_urls),
            name=client_name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            ping_interval=2,
            max_outstanding_pings=2,
            error_cb=_error,
        ),
        within,
    )
    try:
        # A request answered later than a few seconds is no answer (leases renew per TTL/5).
        js = nc.jetstream(timeout=max(1.0, min(5.0, cluster.lease_ttl_seconds / 3)))
        async with asyncio.timeout(within):
            try:
                await js.stream_info(bus.nats_stream)
            except nats.js.errors.NotFoundError:
                if not create:
                    raise NoCluster(f"no stream {bus.nats_stream!r}: no cluster ran here") from None
                await js.add_stream(
                    StreamConfig(
                        name=bus.nats_stream,
                        subjects=[f"{bus.nats_subject_prefix}.>"],
                        duplicate_window=cluster.duplicate_window_seconds,
                        num_replicas=cluster.replicas,
                        storage=StorageType.FILE,
                    )
                )
            leases = await _ensure_kv(
                js,
                KeyValueConfig(
                    bucket=f"{cluster.name}-leases",
                    ttl=cluster.lease_ttl_seconds,
                    history=1,
                    replicas=cluster.replicas,
                ),
                create,
            )
            state = await _ensure_kv(
                js,
                KeyValueConfig(
                    bucket=f"{cluster.name}-state", history=1, replicas=cluster.replicas
                ),
                create,
            )
    except BaseException:
        await asyncio.wait_for(nc.close(), 5)
        raise
    return Bus(
        nc, js, leases, state, bus.nats_stream, bus.nats_subject_prefix, f"{cluster.name}-leases"
    )
