"""``venuefeed worker``: owns shards by lease and streams them onto JetStream.

The worker is the single-process service (:class:`venuefeed.service.Service`)
with two differences: its sink is the fenced NATS publisher
(:mod:`venuefeed.cluster.publisher`), and the instruments each venue streams
are the union of the shards it holds -- not what discovery found. Venue
streams, the pipeline's checks, the gap healer and the book policy are the
ones every other mode runs.

Every lease held is renewed five times per TTL by a loop of its own
(:meth:`Worker._renew_loop`, all renewals at once, each bounded), so a slow
coordination pass never costs a lease. The coordination pass, every quarter
TTL (:meth:`Worker.tick`):

1. join (take ``member.<worker_id>``) if not a member,
2. hold one of the venue's connection slots ``slot.<venue>.<i>`` -- the
   cluster-wide budget: at most ``budgets.<venue>.connections`` workers
   stream a venue, each with that share of its REST rate,
3. for every shard, rendezvous-hash over the members holding a slot of its
   venue: take what should be ours, hand over what should not,
4. the ``planner`` lease: whoever holds it keeps the universe current.

**Failover.** A shard taken over opens a ``restart`` gap from the previous
owner's completeness mark (``mark.shard.<venue>.<n>`` in the state bucket,
written every second while the shard is held: every trade received before it
is acknowledged by JetStream) to the moment the new stream is live; the
venue's gap healer back-fills it from REST trade history and records it --
healed, or why not -- in the gap ledger. Trades both owners published are
at most one message per owner on the stream (``Nats-Msg-Id`` carries the
epoch: :mod:`venuefeed.cluster.publisher` says why) and one row at rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats.errors
import nats.js.errors

from venuefeed.cluster.hashing import owner_of
from venuefeed.cluster.jetstream import Bus, connect
from venuefeed.cluster.leases import Lease, LeaseTable, lease_holder
from venuefeed.cluster.planner import PLANNER_KEY, Planner, universe_key
from venuefeed.cluster.publisher import Ownership, shard_key
from venuefeed.config import Settings, VenueSettings
from venuefeed.log import get_logger
from venuefeed.models import DataGap
from venuefeed.service import Service, VenueRunner
from venuefeed.sinks.nats import NatsSink

__all__ = ["Mark", "Worker", "mark_key", "worker_settings"]

log = get_logger("venuefeed.cluster.worker")
NS = 1_000_000_000
_BUS_ERRORS = (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError)


class Mark(msgspec.Struct):
    """A shard's completeness mark: trades received before ``until`` are on the stream."""

    until: int
    holder: str
    epoch: int


def mark_key(venue: str, shard: int) -> str:
    return f"mark.{shard_key(venue, shard)}"


def worker_settings(settings: Settings) -> Settings:
    """The settings a worker's service runs with: its share of each venue's REST budget."""
    venues: dict[str, VenueSettings] = {}
    for name, venue in settings.venues.items():
        budget = settings.cluster.budgets.get(name)
        connections = budget.connections if budget is not None else 4
        total = (budget.requests_per_second if budget is not None else None) or (
            venue.rate_limit.requests_per_second
        )
        limit = venue.rate_limit.model_copy(
            update={
                "requests_per_second": total / connections,
                "burst": max(1, venue.rate_limit.burst // connections),
            }
        )
        venues[name] = venue.model_copy(update={"rate_limit": limit})
    storage = settings.storage.model_copy(update={"sinks": ["nats"]})
    return settings.model_copy(update={"venues": venues, "storage": storage})


@dataclass
class _Held:
    """One shard this worker holds."""

    venue: str
    shard: int
    lease: Lease
    since: int
    """Where this shard's back-fill starts: the previous owner's mark (or the lookback)."""
    instruments: list[str] = field(default_factory=list)
    universe_revision: int = 0
    gap_starts: set[int] = field(default_factory=set)
    opened: int = 0
    """:attr:`Worker.gap_counter` when this shard last gained a gap (or was taken): a mark
    computed before that does not know the gap and must not be written for it."""


class Worker:
    """One ingestion worker (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = worker_settings(settings)
        cluster = self.settings.cluster
        self.id = cluster.worker_id
        self.ttl = cluster.lease_ttl_seconds
        self.shards = cluster.shards
        self.bus: Bus | None = None
        self.table: LeaseTable | None = None
        self.ownership = Ownership(self.shards, f"member.{self.id}", self._valid)
        self.member: Lease | None = None
        self.slots: dict[str, Lease] = {}
        self.held: dict[tuple[str, int], _Held] = {}
        self.planner_lease: Lease | None = None
        self.planner: Planner | None = None
        self.service: Service | None = None
        self.sink: NatsSink | None = None
        self.gap_counter = 0
        self._gap_starts: dict[tuple[str, int], set[int]] = {}
        self.takeovers = 0
        self.handovers = 0
        self.losses = 0

    def _valid(self, lease: Lease) -> bool:
        return self.table is not None and self.table.valid(lease)

    # -- lifecycle ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Join, work until ``stop`` is set, then hand everything back."""
        self.bus = bus = await connect(self.settings, client_name=f"venuefeed-worker-{self.id}")
        self.table = LeaseTable(bus, self.id, self.ttl)
        bus_settings = self.settings.bus
        sink = NatsSink(
            list(self.settings.cluster.nats_urls),
            subject_prefix=bus_settings.nats_subject_prefix,
            stream=bus_settings.nats_stream,
            duplicate_window=self.settings.cluster.duplicate_window_seconds,
            ack_timeout=bus_settings.nats_ack_timeout_seconds,
            stamp=self.ownership.stamp,
        )
        self.sink = sink
        self.service = service = Service(self.settings, sink=sink)
        try:
            await service.start(continuous=False)
            adapters = {name: runner.adapter for name, runner in service.runners.items()}
            self.planner = Planner(bus, self.settings, adapters, service.pipeline)
            for name, runner in service.runners.items():
                self._start_jobs(name, runner)
            service.supervisor.start("cluster:marks", self._marks_loop)
            service.supervisor.start("cluster:renew", self._renew_loop)
            service.supervisor.start("cluster:planner", self._planner_loop)
            log.info("worker joined", worker=self.id, venues=sorted(service.runners))
            while not stop.is_set():
                try:
                    await self.tick()
                except _BUS_ERRORS as exc:  # NATS unreachable: leases lapse on their own
                    log.warning("coordination pass failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.ttl / 4)
        finally:
            await self._leave()

    def _start_jobs(self, name: str, runner: VenueRunner) -> None:
        assert self.service is not None
        sup, caps = self.service.supervisor, runner.capabilities
        if "stream" in caps:
            sup.start(f"{name}:stream", runner.stream_loop)
            sup.start(f"{name}:liveness", runner.liveness_loop)
        if runner.keeps_trades_complete:
            sup.start(f"{name}:healer", runner.healer.run)

    async def _leave(self) -> None:
        """SIGTERM: stop intake, publish what is held, write the marks, release every lease."""
        service, table = self.service, self.table
        if service is not None:
            for name in service.runners:
                await service.supervisor.stop_all(prefix=f"{name}:")
            await service.supervisor.stop_all(prefix="cluster:")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ttl):
                    await service.pipeline.flush_books(force=True)
                    await service.writer.drain()
                    for held in list(self.held.values()):
                        until = service.runners[held.venue].resume_from
                        if until is not None:
                            await self._write_mark(held, until)
        if table is not None:
            with contextlib.suppress(*_BUS_ERRORS):
                for held in list(self.held.values()):
                    await table.release(held.lease)
                for lease in [*self.slots.values(), self.planner_lease, self.member]:
                    if lease is not None:
                        await table.release(lease)
        self.held.clear()
        self.ownership.held.clear()
        if service is not None:
            await service.stop()
        if self.bus is not None:
            await self.bus.close()
        log.info("worker left", worker=self.id, takeovers=self.takeovers,
                 handovers=self.handovers, losses=self.losses,
                 withheld=self.sink.withheld if self.sink is not None else 0)  # fmt: skip

    # -- coordination ---------------------------------------------------------------

    async def _renew_loop(self) -> None:
        """Renew every lease held, all at once, five times per TTL -- apart from the
        coordination pass, whose listing, takes and handovers may be slow (a NATS node
        restarting): keeping a lease must never wait for them."""
        table = self.table
        assert table is not None
        while True:
            await asyncio.sleep(self.ttl / 5)
            member = self.member
            if member is not None and not await self._renew(member):
                withheld = self.sink.withheld if self.sink is not None else 0
                log.warning("membership lost; dropping every lease", worker=self.id,
                            shards=len(self.held), withheld=withheld)  # fmt: skip
                await self._drop_all()
                continue
            slots = list(self.slots.items())
            kept = await asyncio.gather(*(self._renew(lease) for _, lease in slots))
            for (venue, lease), ok in zip(slots, kept, strict=True):
                if not ok and self.slots.get(venue) is lease:
                    log.warning("connection slot lost", venue=venue)
                    del self.slots[venue]
                    await self._drop([h for h in self.held.values() if h.venue == venue])
            held = list(self.held.values())
            kept = await asyncio.gather(*(self._renew(h.lease) for h in held))
            lost = [h for h, ok in zip(held, kept, strict=True) if not ok]
            lost = [h for h in lost if self.held.get((h.venue, h.shard)) is h]
            if lost:
                self.losses += len(lost)
                withheld = self.sink.withheld if self.sink is not None else 0
                log.warning("shard leases lost", shards=[f"{h.venue}.{h.shard}" for h in lost],
                            withheld=withheld)  # fmt: skip
                await self._drop(lost)
            planner = self.planner_lease
            if planner is not None and not await self._renew(planner):
                self.ownership.held.pop(PLANNER_KEY, None)
                self.planner_lease = None

    async def _renew(self, lease: Lease) -> bool:
        """Renew within a quarter TTL; an answer that comes later is no renewal."""
        table = self.table
        assert table is not None
        try:
            async with asyncio.timeout(self.ttl / 4):
                return await table.renew(lease)
        except (*_BUS_ERRORS, TimeoutError):
            return table.valid(lease)  # not renewed this time; lost only when it lapses

    async def tick(self) -> None:
        """One coordination pass (see the module docstring)."""
        table, bus, service = self.table, self.bus, self.service
        assert table is not None and bus is not None and service is not None
        if self.member is None:
            self.member = await table.take(self.ownership.member_key)
            if self.member is None:
                return  # our old key has not aged out yet
            self.ownership.held[self.member.key] = self.member
        for venue in service.runners:
            await self._keep_slot(venue)
        keys = await bus.lease_keys()
        members = {self.id} | await self._holders([k for k in keys if k.startswith("member.")])
        for venue in service.runners:
            eligible = await self._eligible(venue, keys, members)
            await self._balance(venue, eligible)
        await self._keep_planner()

    async def _keep_slot(self, venue: str) -> None:
        table = self.table
        assert table is not None
        if venue in self.slots:
            return
        budget = self.settings.cluster.budgets.get(venue)
        for index in range(budget.connections if budget is not None else 4):
            lease = await table.take(f"slot.{venue}.{index}")
            if lease is not None:
                self.slots[venue] = lease
                return

    async def _holders(self, keys: Iterable[str]) -> set[str]:
        """Who holds these lease keys (deleted and aged-out keys have no holder)."""
        bus = self.bus
        assert bus is not None
        out: set[str] = set()
        for key in keys:
            with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                holder = lease_holder((await bus.leases.get(key)).value)
                if holder is not None:
                    out.add(holder)
        return out

    async def _eligible(self, venue: str, keys: Iterable[str], members: set[str]) -> set[str]:
        """Members holding a connection slot of ``venue`` (they may own its shards)."""
        slots = [k for k in keys if k.startswith(f"slot.{venue}.")]
        out = await self._holders(slots) & members
        if venue in self.slots:
            out.add(self.id)
        return out

    async def _balance(self, venue: str, eligible: set[str]) -> None:
        """Follow the universe of what we keep, hand over what another member should
        own, take what is ours and free (renewals are :meth:`_renew_loop`'s)."""
        table = self.table
        assert table is not None
        mine = venue in self.slots and self.id in eligible
        wanted = {n for n in range(self.shards) if mine and owner_of(venue, n, eligible) == self.id}
        kept = [h for (v, n), h in self.held.items() if v == venue and n in wanted]
        await asyncio.gather(*(self._refresh(h) for h in kept))
        for (v, n), held in list(self.held.items()):
            if v == venue and n not in wanted:
                await self._hand_over(held)
        for shard in sorted(wanted):
            if (venue, shard) not in self.held:
                lease = await table.take(shard_key(venue, shard))
                if lease is not None:
                    await self._take_over(venue, shard, lease)

    async def _keep_planner(self) -> None:
        table = self.table
        assert table is not None
        if self.planner_lease is not None:
            return
        self.planner_lease = lease = await table.take(PLANNER_KEY)
        if lease is not None:
            self.ownership.held[PLANNER_KEY] = lease
            log.info("elected planner", worker=self.id, epoch=lease.epoch)

    async def _planner_loop(self) -> None:
        while True:
            lease, planner = self.planner_lease, self.planner
            held = lease is not None and self._valid(lease)
            if held and planner is not None and planner.due(time.monotonic()):
                await planner.run_once()
            await asyncio.sleep(min(1.0, self.ttl / 4))

    # -- shards -----------------------------------------------------------------------

    async def _universe(self, venue: str, shard: int) -> tuple[list[str], int]:
        bus = self.bus
        assert bus is not None
        try:
            entry = await bus.state.get(universe_key(venue, shard))
        except nats.js.errors.KeyNotFoundError:
            return [], 0
        try:
            members = msgspec.json.decode(entry.value or b"[]", type=list[str])
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.error("unreadable universe entry", key=universe_key(venue, shard))
            return [], 0
        return members, int(entry.revision or 0)

    async def _take_over(self, venue: str, shard: int, lease: Lease) -> None:
        """A shard is ours: back-fill from the previous owner's mark, then stream it."""
        bus, service = self.bus, self.service
        assert bus is not None and service is not None
        runner = service.runners[venue]
        instruments, revision = await self._universe(venue, shard)
        now = time.time_ns()
        previous: Mark | None = None
        with contextlib.suppress(nats.js.errors.KeyNotFoundError, msgspec.DecodeError):
            entry = await bus.state.get(mark_key(venue, shard))
            previous = msgspec.json.decode(entry.value or b"", type=Mark)
        lookback = self.settings.ingestion.backfill_lookback_seconds
        if previous is not None:
            since = previous.until
            detail = f"shard {shard} taken over from {previous.holder} (epoch {lease.epoch})"
        else:
            since = now - int(lookback * NS)
            detail = f"shard {shard} first taken: back-filling {lookback:g} s"
        self.gap_counter += 1
        held = _Held(venue, shard, lease, since, instruments, revision, opened=self.gap_counter)
        self.held[(venue, shard)] = held
        self.ownership.held[lease.key] = lease
        self.takeovers += 1
        service.pipeline.forget_seen()  # what we withheld earlier must pass this time
        if runner.keeps_trades_complete:
            await self._open_gap(held, instruments, since, detail)
        await self._subscribe(venue)
        log.info("shard taken", venue=venue, shard=shard, epoch=lease.epoch,
                 instruments=len(instruments),
                 previous=previous.holder if previous else None)  # fmt: skip

    async def _open_gap(self, held: _Held, instruments: list[str], start: int, detail: str) -> None:
        """A ``restart`` gap for ``instruments`` of a held shard, back-filled once streaming."""
        service = self.service
        assert service is not None
        if not instruments:
            return
        # One gap per (shard, start) for the life of this worker: the ledger's key, and
        # the healer's -- an older, unhealed gap of an earlier tenure must not absorb it.
        used = self._gap_starts.setdefault((held.venue, held.shard), set())
        while start in used:
            start -= 1
        used.add(start)
        held.gap_starts.add(start)
        self.gap_counter += 1
        held.opened = self.gap_counter
        gap = DataGap(venue=held.venue, instrument=f"shard:{held.shard}", ts_venue=0,
                      ts_recv=time.time_ns(), cause="restart", start=start, detail=detail,
                      instruments=tuple(instruments))  # fmt: skip
        service.runners[held.venue].healer.note(gap)
        await service.pipeline.process(gap)

    async def _refresh(self, held: _Held) -> None:
        """Follow the planner's changes to a held shard's instruments.

        Instruments new to the shard are back-filled from where the shard's
        back-fill starts (at most the lookback): the planner may have written
        them only after we took the shard, and trades of theirs printed since
        are as much ours as the others'.
        """
        instruments, revision = await self._universe(held.venue, held.shard)
        if revision == held.universe_revision:
            return
        added = sorted(set(instruments) - set(held.instruments))
        held.instruments, held.universe_revision = instruments, revision
        service = self.service
        assert service is not None
        if added and service.runners[held.venue].keeps_trades_complete:
            lookback = int(self.settings.ingestion.backfill_lookback_seconds * NS)
            start = max(held.since, time.time_ns() - lookback)
            await self._open_gap(held, added, start, f"shard {held.shard}: instruments added")
        await self._subscribe(held.venue)

    async def _subscribe(self, venue: str) -> None:
        service = self.service
        assert service is not None
        wanted = {i for h in self.held.values() if h.venue == venue for i in h.instruments}
        await service.runners[venue].set_instruments(wanted)

    async def _hand_over(self, held: _Held) -> None:
        """Another member should own this shard: stop it, publish what we have, release."""
        service, table = self.service, self.table
        assert service is not None and table is not None
        self.handovers += 1
        del self.held[(held.venue, held.shard)]
        await self._subscribe(held.venue)
        runner = service.runners[held.venue]
        until = runner.complete_until(time.time_ns())
        try:
            async with asyncio.timeout(self.ttl / 2):
                await service.writer.drain()
            if until is not None:
                await self._write_mark(held, until)
        except TimeoutError:
            log.warning("handover without a fresh mark: output not drained",
                        venue=held.venue, shard=held.shard)  # fmt: skip
        self.ownership.held.pop(held.lease.key, None)
        await table.release(held.lease)
        log.info("shard handed over", venue=held.venue, shard=held.shard)

    async def _drop(self, lost: list[_Held]) -> None:
        """Leases we no longer hold: stop streaming them at once (the next owner back-fills)."""
        venues = set()
        for held in lost:
            self.held.pop((held.venue, held.shard), None)
            self.ownership.held.pop(held.lease.key, None)
            venues.add(held.venue)
        for venue in venues:
            await self._subscribe(venue)

    async def _drop_all(self) -> None:
        self.losses += len(self.held)
        await self._drop(list(self.held.values()))
        self.member = None
        self.slots.clear()
        self.planner_lease = None
        self.ownership.held.clear()

    # -- completeness marks ------------------------------------------------------------

    async def _marks_loop(self) -> None:
        """Every second: what was received before now is published? Then say so per shard."""
        service = self.service
        assert service is not None
        while True:
            await asyncio.sleep(1.0)
            now = time.time_ns()
            known = self.gap_counter
            candidates = {n: r.complete_until(now) for n, r in service.runners.items()}
            try:
                async with asyncio.timeout(self.ttl / 2):
                    await service.writer.drain()
            except TimeoutError:
                continue  # output is stuck: the marks stay where they are
            for held in list(self.held.values()):
                until = candidates.get(held.venue)
                if until is not None and held.opened <= known and self._valid(held.lease):
                    await self._write_mark(held, until)

    async def _write_mark(self, held: _Held, until: int) -> None:
        """Say where the shard's trades are complete -- never past what we back-filled.

        A shard held without instruments yet (the planner had not written them)
        has not been back-filled: its mark stays where its back-fill would start.
        """
        bus = self.bus
        assert bus is not None
        if not held.gap_starts:
            until = min(until, held.since)
        mark = Mark(until, self.id, held.lease.epoch)
        await bus.state.put(mark_key(held.venue, held.shard), msgspec.json.encode(mark))

    # -- views ------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        return {
            "worker": self.id,
            "shards": sorted(f"{v}.{s}" for v, s in self.held),
            "instruments": sum(len(h.instruments) for h in self.held.values()),
            "planner": self.planner_lease is not None,
            "takeovers": self.takeovers,
            "handovers": self.handovers,
            "losses": self.losses,
            "withheld": self.sink.withheld if self.sink is not None else 0,
        }
