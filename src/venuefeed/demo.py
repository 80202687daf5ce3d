"""``venuefeed demo``: the whole system on one machine, no external service.

Starts the Polymarket and Kalshi simulators in-process on free loopback
ports, points the service at them, stores into ``./venuefeed.db``, serves the
API and dashboard, and keeps a one-screen summary on the terminal.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from venuefeed.api.server import ApiServer, PortInUse, open_listener
from venuefeed.config import ConfigError, Settings, load_config
from venuefeed.log import register_secret
from venuefeed.pipeline.whales import whale_store
from venuefeed.preflight import check_storage
from venuefeed.service import Service
from venuefeed.sim.base import SimulatorBase
from venuefeed.venues.base import simulator_class

__all__ = ["DEMO_VENUES", "run_demo"]

DEMO_VENUES = ("polymarket", "kalshi")


async def start_simulators(seed: int, events_per_second: float) -> dict[str, SimulatorBase]:
    sims: dict[str, SimulatorBase] = {}
    for n, name in enumerate(DEMO_VENUES):
        sim = simulator_class(name).for_demo(seed=seed + n, events_per_second=events_per_second)
        await sim.start()
        sims[name] = sim
    return sims


def demo_settings(
    config: Path | None,
    sims: dict[str, SimulatorBase],
    db: Path,
    api_port: int | None,
    record: Path | None = None,
) -> Settings:
    """The user's config with only the simulated venues on, pointed at the simulators.

    ``api_port`` (the ``--port`` flag) wins when given; otherwise ``api.port``
    from the file or ``VENUEFEED_API__PORT`` applies, as for every setting.
    """
    overrides: dict[str, Any] = {
        "storage.sqlite_path": db,
        "api.port": api_port,
        "whales.poll_interval_seconds": 5,
    }
    if record is not None:
        overrides.update({"recording.enabled": True, "recording.path": record})
    for name in load_config(config).venues:
        overrides[f"venues.{name}.enabled"] = name in sims
    for name, sim in sims.items():
        overrides[f"venues.{name}.urls"] = sim.urls()
        for key, value in sim.client_credentials().items():
            register_secret(value)
            overrides[f"venues.{name}.credentials.{key}"] = value
    return load_config(config, overrides)


def _listen(settings: Settings) -> socket.socket | None:
    """The API's port, taken before anything starts (a port in use stops the demo first)."""
    if not settings.api.enabled:
        return None
    try:
        return open_listener(settings.api)
    except PortInUse as exc:
        raise ConfigError(f"port {exc.port} is in use: pass --port (0 = any free port)") from None


def _summary(service: Service, sims: dict[str, SimulatorBase], api_url: str | None) -> Group:
    status = service.status()
    metrics = service.metrics_window()
    latency = service.latency_ms()
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[b]venuefeed demo[/b]  uptime {status['uptime_s']:.0f}s",
        f"dashboard {api_url}" if api_url else "dashboard: not available",
    )
    venues = Table("venue", "state", "markets", "subscribed", "events", "last event", "books live")
    for v in status["venues"]:
        if not v["enabled"]:
            continue
        age = v.get("last_event_age_s")
        venues.add_row(
            v["venue"], str(v.get("state")), str(v.get("markets", "-")),
            str(v.get("subscribed", "-")), str(v.get("events", 0)),
            f"{age:.1f}s ago" if age is not None else "-",
            str(v.get("book_states", {}).get("live", 0)),
        )  # fmt: skip
    flow = Table("events/s", "trades stored", "book updates", "whale trades", "p50 ms", "p99 ms",
                 "G1", "G3", "G5", "errors")  # fmt: skip
    flow.add_row(
        f"{metrics['events_per_s']:.0f}", str(metrics["trades_stored"]),
        str(metrics["book_updates"]), str(metrics["whale_trades"]),
        str(latency["p50"]), str(latency["p99"]), str(metrics["g1_stale_blocked"]),
        str(metrics["g3_size_backfilled"]), str(metrics["g5_divergence_flagged"]),
        str(status["errors_last_hour"]),
    )  # fmt: skip
    return Group(head, venues, flow)


def _summary_line(service: Service) -> str:
    """The summary as one line, for output that is not a terminal."""
    status, metrics = service.status(), service.metrics_window()
    venues = ", ".join(
        f"{v['venue']} {v.get('state')} {v.get('events', 0)} events"
        for v in status["venues"]
        if v["enabled"]
    )
    p99 = service.latency_ms()["p99"]
    return (
        f"uptime {status['uptime_s']:.0f}s | {venues} | {metrics['events_per_s']:.0f} events/s, "
        f"{metrics['trades_stored']} trades stored, p99 {p99} ms, "
        f"{'healthy' if status['healthy'] else 'UNHEALTHY: ' + '; '.join(status['problems'])}"
    )


async def run_demo(
    config: Path | None = None,
    *,
    duration: float | None = None,
    db: Path = Path("venuefeed.db"),
    api_port: int | None = None,
    seed: int = 7,
    events_per_second: float = 25.0,
    console: Console | None = None,
    record: Path | None = None,
) -> dict[str, Any]:
    """Run the demo until ``duration`` elapses or the task is cancelled; returns final status.

    Raises :class:`~venuefeed.config.ConfigError` before starting anything when
    the storage or the API port cannot be used.
    """
    console = console or Console()
    checked = demo_settings(config, {}, db, api_port, record)
    check_storage(checked)
    listener = _listen(checked)
    sims: dict[str, SimulatorBase] = {}
    try:
        sims = await start_simulators(seed, events_per_second)
        settings = demo_settings(config, sims, db, api_port, record)
        store = await asyncio.to_thread(whale_store, db)
        for sim in sims.values():
            for wallet in sim.whale_wallets:
                await asyncio.to_thread(store.upsert, wallet, tier="demo", notes="simulator whale")
        return await _serve(settings, sims, listener, duration, console)
    finally:
        for sim in sims.values():
            await sim.stop()
        if listener is not None:
            listener.close()


async def _serve(
    settings: Settings,
    sims: dict[str, SimulatorBase],
    listener: socket.socket | None,
    duration: float | None,
    console: Console,
) -> dict[str, Any]:
    service = Service(settings, echo=lambda line: console.print(f"[yellow]{line}[/yellow]"))
    api = ApiServer(service, settings.api, sock=listener) if listener is not None else None
    await service.start()
    try:
        api_url = None
        if api is not None:
            await api.start()
            api_url = f"http://{settings.api.host}:{api.port}/"
        deadline = time.monotonic() + duration if duration else None
        if not console.is_terminal:
            # Piped or logged: a live table renders only at exit, so print plain lines.
            console.print(f"venuefeed demo: dashboard {api_url or 'not available'}")
            while deadline is None or time.monotonic() < deadline:
                await asyncio.sleep(min(5.0, deadline - time.monotonic()) if deadline else 5.0)
                console.print(_summary_line(service))
            return service.status()
        with Live(_summary(service, sims, api_url), console=console, refresh_per_second=2,
                  transient=False) as live:  # fmt: skip
            while deadline is None or time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                live.update(_summary(service, sims, api_url))
        return service.status()
    finally:
        if api is not None:
            await api.stop()
        await service.stop()
