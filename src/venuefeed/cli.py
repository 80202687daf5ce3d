"""The ``venuefeed`` command line.

Every verb is one function decorated with ``@app.command()`` (or a sub-app's),
taking its options as typed parameters; the shared ``--config``/``--log-*``
options and config loading live in :func:`_root` and :func:`settings`, so a
new verb only says what it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table

from venuefeed import __version__
from venuefeed.config import ConfigError, Settings, load_config
from venuefeed.log import configure as configure_logging
from venuefeed.log import register_secret

app = typer.Typer(
    name="venuefeed",
    help="Market-data ingestion for prediction markets and crypto/equity venues.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema: migrate and inspect.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
whales_app = typer.Typer(help="Watch large traders (the whales table).", no_args_is_help=True)
archive_app = typer.Typer(
    help="Bulk-archive a venue's whole catalogue to disk.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(whales_app, name="whales")
app.add_typer(archive_app, name="archive")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")


class _State:
    config_path: Path | None = None
    overrides: dict[str, Any] = {}  # noqa: RUF012 - process-wide CLI state
    settings: Settings | None = None


def settings() -> Settings:
    """The effective settings (file < environment < flags), loaded once per process."""
    if _State.settings is None:
        try:
            _State.settings = load_config(_State.config_path, _State.overrides)
        except ConfigError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        cfg = _State.settings
        configure_logging(cfg.logging.level, cfg.logging.format, secrets=_secrets(cfg))
    return _State.settings


def _secrets(cfg: Settings) -> list[str]:
    found = [s.get_secret_value() for v in cfg.venues.values() for s in v.credentials.values()]
    found.extend(
        s.get_secret_value() for s in (cfg.api.token, cfg.storage.database_url) if s is not None
    )
    for value in found:
        register_secret(value)
    return found


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; Ctrl+C / SIGTERM cancel it so it can shut down cleanly."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # non-Unix
                loop.add_signal_handler(sig, task.cancel)
        return await coro_fn()

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise typer.Exit(0) from None


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML config file.", envvar="VENUEFEED_CONFIG"),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="auto, json or console.")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="SQLite database path (storage.sqlite_path).")
    ] = None,
) -> None:
    _State.config_path = config
    _State.overrides = {
        "logging.level": log_level,
        "logging.format": log_format,
        "storage.sqlite_path": db,
    }
    _State.settings = None


@app.command()
def version() -> None:
    """Print the venuefeed version."""
    console.print(f"venuefeed {__version__}")


@app.command()
def venues() -> None:
    """List registered venues, whether they are enabled and what is configured."""
    from venuefeed.venues.base import VENUES, adapter_class

    cfg = settings()
    table = Table("venue", "enabled", "endpoints", "credentials", "capabilities")
    for name in sorted(VENUES):
        venue = cfg.venues.get(name)
        try:
            cls = adapter_class(name)
            caps = ", ".join(sorted(cls.capabilities))
        except ImportError as exc:
            caps = f"[red]not available: {exc}[/red]"
        enabled = "yes" if venue is not None and venue.enabled else "no"
        urls = "custom" if venue is not None and venue.urls else "default"
        creds = ", ".join(sorted(venue.credentials)) if venue and venue.credentials else "-"
        table.add_row(name, enabled, urls, creds, caps)
    console.print(table)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the SQLite schema (safe to run repeatedly)."""
    from venuefeed.sinks.sqlite import migrate

    path = settings().storage.sqlite_path
    applied = migrate(path)
    if applied:
        console.print(f"{path}: applied migration(s) {', '.join(map(str, applied))}")
    else:
        console.print(f"{path}: schema is up to date")


@db_app.command("status")
def db_status() -> None:
    """Show the schema version and pending migrations."""
    from venuefeed.sinks.sqlite import schema_status

    path = settings().storage.sqlite_path
    if not Path(path).exists():
        console.print(f"{path}: no database yet (run `venuefeed db migrate`)")
        raise typer.Exit(1)
    status = schema_status(path)
    console.print(f"{path}: schema version {status.current} (latest {status.latest})")
    for version, description, applied_at in status.applied:
        console.print(f"  {version}: {description} (applied {applied_at // 1_000_000_000})")
    if status.pending:
        console.print(f"  pending: {', '.join(map(str, status.pending))}")


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Print the effective configuration with secrets masked."""
    import yaml

    data = settings().masked()
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False)


@app.command()
def sim(
    venue: Annotated[str, typer.Argument(help="Venue to simulate.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed: the same seed replays the same data.")] = 1,
    faults: Annotated[
        str, typer.Option(help="Fault switches, e.g. 'http_429_rate=0.1,malformed_rate=0.01'.")
    ] = "",
    events_per_second: Annotated[
        float, typer.Option(help="Live events per second (0 = as fast as possible).")
    ] = 20.0,
    truth: Annotated[
        Path | None, typer.Option(help="Append the ground-truth log (JSON lines) to this file.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--set", help="Simulator setting, e.g. --set markets=2500 (repeatable)."),
    ] = None,
) -> None:
    """Run a venue's local simulator on 127.0.0.1 until Ctrl+C."""
    import yaml

    from venuefeed.sim.base import Faults, GroundTruth
    from venuefeed.venues.base import known_venues, simulator_class

    settings()
    if venue not in known_venues():
        err_console.print(f"[red]unknown venue {venue!r}[/red]; known: {', '.join(known_venues())}")
        raise typer.Exit(2)
    try:
        fault_switches = Faults.from_spec(faults)
    except ValueError as exc:
        err_console.print(f"[red]--faults:[/red] {exc}")
        raise typer.Exit(2) from None
    cls = simulator_class(venue)
    extra: dict[str, Any] = {}
    for item in option or ():
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set {item!r}: expected key=value")
        extra[key] = yaml.safe_load(raw)

    async def serve() -> None:
        try:
            simulator = cls(  # type: ignore[call-arg]
                seed=seed, faults=fault_switches, events_per_second=events_per_second,
                ground_truth=GroundTruth(path=truth, keep=False), **extra,
            )  # fmt: skip
        except TypeError as exc:
            err_console.print(f"[red]--set:[/red] {exc}")
            raise typer.Exit(2) from None
        await simulator.start(port=port)
        console.print(f"{venue} simulator on {simulator.base_url}")
        for name, url in simulator.urls().items():
            console.print(f"  {name}: {url}")
        try:
            await asyncio.Event().wait()
        finally:
            await simulator.stop()

    run_async(serve)


@archive_app.command("kalshi")
def archive_kalshi(
    out: Annotated[
        Path, typer.Option(help="Folder that holds kalshi_archive_<timestamp>/.")
    ] = Path("."),
    layout: Annotated[str, typer.Option(help="files (one JSON per record), jsonl or parquet.")] = (
        "files"
    ),
    fresh: Annotated[bool, typer.Option(help="Start a new archive instead of resuming.")] = False,
    endpoint: Annotated[
        list[str] | None, typer.Option(help="series, events, markets (default: all three).")
    ] = None,
) -> None:
    """Every Kalshi series, event and market; resumable (rerun continues), deduplicated."""
    from venuefeed.venues.kalshi.archive import run_archive

    if layout not in ("files", "jsonl", "parquet"):
        raise typer.BadParameter("--layout must be files, jsonl or parquet")
    cfg = settings()
    endpoints = tuple(endpoint) if endpoint else ("series", "events", "markets")
    chosen = cast(Literal["files", "jsonl", "parquet"], layout)
    summary = run_async(
        lambda: run_archive(
            cfg, out_dir=out, layout=chosen, fresh=fresh, endpoints=endpoints, show_progress=True
        )
    )
    console.print(f"{summary.records} records archived; complete: {summary.ok}")
    if not summary.ok:
        raise typer.Exit(1)


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _service_command(body: Callable[[Any], Coroutine[Any, Any, T]], *, continuous: bool) -> T:
    """Run ``body(service)`` with a started service that is stopped cleanly afterwards."""
    from venuefeed.service import Service

    cfg = settings()

    async def run() -> T:
        service = Service(cfg, echo=lambda line: console.print(line, markup=False))
        await service.start(continuous=continuous)
        try:
            return await body(service)
        finally:
            await service.stop()

    return run_async(run)


@app.command()
def discover(
    venue: Annotated[list[str] | None, typer.Option(help="Venue(s); default all enabled.")] = None,
) -> None:
    """Discover markets in the resolution window and store them."""

    async def body(service: Any) -> Any:
        return await service.discover_markets(venue)

    _print_json(_service_command(body, continuous=False))


@app.command()
def ingest(
    venue: Annotated[list[str] | None, typer.Option(help="Venue(s); default all enabled.")] = None,
) -> None:
    """One snapshot pass: top-N books and recent trades of every active market."""

    async def body(service: Any) -> Any:
        return await service.ingest_once(venue)

    _print_json(_service_command(body, continuous=False))


@app.command()
def continuous(
    interval: Annotated[float, typer.Option(help="Seconds between snapshot passes.")] = 30.0,
) -> None:
    """Discovery + streaming (+ polling where a venue has no stream) until Ctrl+C."""

    async def body(service: Any) -> None:
        await service.start_continuous(interval)
        await asyncio.Event().wait()

    _service_command(body, continuous=False)


@app.command()
def run() -> None:
    """The full service from config: ingestion, API and dashboard, until Ctrl+C or SIGTERM."""
    cfg = settings()

    async def body(service: Any) -> None:
        api = None
        if cfg.api.enabled:
            from venuefeed.api.server import ApiServer

            api = ApiServer(service, cfg.api)
            await api.start()
            console.print(f"API and dashboard on http://{cfg.api.host}:{api.port}/")
        try:
            await asyncio.Event().wait()
        finally:
            if api is not None:
                await api.stop()

    _service_command(body, continuous=True)


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl+C).")
    ] = None,
    port: Annotated[int, typer.Option(help="API/dashboard port (0 = any free port).")] = 8080,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
    rate: Annotated[float, typer.Option(help="Simulated events per second per venue.")] = 25.0,
) -> None:
    """Simulators + ingestion + SQLite + dashboard on this machine, no external service."""
    from venuefeed.demo import run_demo

    cfg = settings()
    if _State.overrides.get("logging.level") is None:  # keep the live screen readable
        configure_logging("WARNING", cfg.logging.format)
    final = run_async(
        lambda: run_demo(_State.config_path, duration=duration, db=cfg.storage.sqlite_path,
                         api_port=port, seed=seed, events_per_second=rate, console=console)
    )  # fmt: skip
    stored = final["details"]["writer"]["stored"]
    console.print(f"demo stopped cleanly: {stored} records stored in {cfg.storage.sqlite_path}")


@app.command()
def status() -> None:
    """Status of a running service (via its API) or, if none runs, of the database."""
    import urllib.request

    from venuefeed.report import storage_summary

    cfg = settings()
    url = f"http://{cfg.api.host}:{cfg.api.port}/api/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            _print_json(json.loads(response.read()))
            return
    except OSError:
        console.print(f"no service answering at {url}; showing {cfg.storage.sqlite_path}")
    if not Path(cfg.storage.sqlite_path).exists():
        err_console.print(f"{cfg.storage.sqlite_path}: no database yet")
        raise typer.Exit(1)
    _print_json(storage_summary(cfg.storage.sqlite_path))


@app.command("test")
def test_venue(
    venue: Annotated[str, typer.Option("--venue", help="Venue to check.")],
) -> None:
    """Check a venue: reachable? authenticated? Prints a clear verdict; exit 1 if not OK."""
    from venuefeed.venues.base import adapter_class, known_venues

    cfg = settings()
    if venue not in known_venues():
        err_console.print(f"[red]unknown venue {venue!r}[/red]; known: {', '.join(known_venues())}")
        raise typer.Exit(2)

    async def check() -> Any:
        async with adapter_class(venue)(cfg.venues[venue], cfg) as adapter:
            return await adapter.check()

    result = run_async(check)
    verdict = "[green]OK[/green]" if result.ok else "[red]FAILED[/red]"
    auth = {None: "not needed", True: "yes", False: "NO"}[result.authenticated]
    latency = f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else "-"
    console.print(f"{venue}: {verdict}  reachable={result.reachable}  authenticated={auth}  "
                  f"latency={latency}  {result.detail}")  # fmt: skip
    if not result.ok:
        raise typer.Exit(1)


def _parse_time(text: str) -> int:
    """ISO date/time (UTC if no zone) or unix seconds -> ns."""
    from datetime import UTC, datetime

    if text.isdigit():
        return int(text) * 1_000_000_000
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO date/time or unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


@app.command()
def backfill(
    venue: Annotated[str, typer.Option(help="Venue.")],
    symbol: Annotated[str, typer.Option(help="Instrument: symbol, ticker or token id.")],
    kind: Annotated[str, typer.Option(help="trades or candles.")] = "candles",
    interval: Annotated[str, typer.Option(help="Candle interval (1m, 5m, 1h, 1d).")] = "1m",
    start: Annotated[str, typer.Option("--from", help="Start (ISO or unix s).")] = "",
    end: Annotated[str, typer.Option("--to", help="End (ISO or unix s); default now.")] = "",
    concurrency: Annotated[int, typer.Option(help="Chunks fetched at once.")] = 4,
) -> None:
    """Fetch history in chunks, idempotently; a rerun skips chunks already stored."""
    import time as _time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from venuefeed.pipeline.backfill import BackfillPlan, BackfillResult, run_backfill
    from venuefeed.service import build_sink
    from venuefeed.venues.base import adapter_class

    cfg = settings()
    if kind not in ("trades", "candles"):
        raise typer.BadParameter("--kind must be trades or candles")
    if not start:
        raise typer.BadParameter("--from is required")
    plan = BackfillPlan(venue, symbol, kind, _parse_time(start),  # type: ignore[arg-type]
                        _parse_time(end) if end else _time.time_ns(), interval)  # fmt: skip

    async def go() -> BackfillResult:
        sink = build_sink(cfg)
        await sink.start()
        try:
            async with adapter_class(venue)(cfg.venues[venue], cfg) as adapter:
                with Progress(TextColumn("{task.description}"), BarColumn(),
                              TextColumn("{task.completed}/{task.total} chunks"),
                              TextColumn("{task.fields[records]} records"), TimeRemainingColumn(),
                              console=console) as bar:  # fmt: skip
                    task = bar.add_task(f"{venue} {symbol} {kind}", total=1, records=0)

                    def show(r: BackfillResult) -> None:
                        done = r.chunks_skipped + r.chunks_done
                        bar.update(task, total=r.chunks_total, completed=done, records=r.records)

                    return await run_backfill(adapter, sink, plan, concurrency=concurrency,
                                              progress=show)  # fmt: skip
        finally:
            await sink.close()

    result = run_async(go)
    console.print(f"{result.chunks_done} chunk(s) fetched, {result.chunks_skipped} already done, "
                  f"{result.records} records in {result.seconds:.1f}s")  # fmt: skip
    for failure in result.failed:
        err_console.print(f"[red]failed[/red] {failure}")
    if result.failed:
        raise typer.Exit(1)


@app.command()
def quality(
    window: Annotated[float, typer.Option(help="Window in hours.")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per venue.")] = False,
) -> None:
    """Per-venue data-quality report: coverage, gaps open/healed, stale books."""
    from venuefeed.report import quality_report

    cfg = settings()
    if not Path(cfg.storage.sqlite_path).exists():
        err_console.print(f"{cfg.storage.sqlite_path}: no database yet")
        raise typer.Exit(1)
    from venuefeed.venues.base import adapter_class, known_venues

    expected = {
        name: adapter_class(name).why_no_data(venue)
        for name, venue in cfg.venues.items()
        if venue.enabled and name in known_venues()
    }
    rows = quality_report(cfg.storage.sqlite_path, window_s=window * 3600,
                          stale_s=cfg.quality.stale_feed_seconds, expected=expected)  # fmt: skip
    if as_json:
        import dataclasses

        for r in rows:
            print(json.dumps(dataclasses.asdict(r)))
        return
    table = Table("venue", "instruments", "trades", "coverage %", "gaps open", "gaps healed",
                  "gap time (s)", "stale books", "note")  # fmt: skip
    for r in rows:
        coverage = f"{r.coverage_pct:.2f}" if r.coverage_pct is not None else "-"
        table.add_row(r.venue, str(r.instruments), str(r.trades), coverage,
                      str(r.gaps_open), str(r.gaps_healed), f"{r.gap_seconds:.1f}",
                      str(r.stale_books), r.note)  # fmt: skip
    console.print(table)


@whales_app.command("add")
def whales_add(
    address: Annotated[str, typer.Argument(help="Wallet address.")],
    pseudonym: Annotated[str | None, typer.Option(help="Display name.")] = None,
    tier: Annotated[str | None, typer.Option(help="Tier label.")] = None,
    notes: Annotated[str | None, typer.Option(help="Notes.")] = None,
) -> None:
    """Watch a wallet (the running service picks it up within seconds)."""
    from venuefeed.pipeline.whales import whale_store

    fields = {k: v for k, v in {"pseudonym": pseudonym, "tier": tier, "notes": notes}.items() if v}
    whale_store(settings().storage.sqlite_path).upsert(address, **fields)
    console.print(f"watching {address.lower()}")


@whales_app.command("list")
def whales_list() -> None:
    """List watched wallets."""
    from venuefeed.pipeline.whales import whale_store

    table = Table("address", "pseudonym", "tier", "enabled", "confirmed", "notes")
    for w in whale_store(settings().storage.sqlite_path).all():
        table.add_row(w["address"], w["pseudonym"] or "", w["tier"] or "",
                      "yes" if w["enabled"] else "no", "yes" if w["confirmed"] else "no",
                      w["notes"] or "")  # fmt: skip
    console.print(table)


def _set_whale(address: str, enabled: bool) -> None:
    from venuefeed.pipeline.whales import whale_store

    if not whale_store(settings().storage.sqlite_path).set_enabled(address, enabled):
        err_console.print(f"[red]no whale {address}[/red] (add it first)")
        raise typer.Exit(1)
    console.print(f"{address.lower()} {'enabled' if enabled else 'disabled'}")


@whales_app.command("enable")
def whales_enable(address: Annotated[str, typer.Argument()]) -> None:
    """Resume watching a wallet."""
    _set_whale(address, True)


@whales_app.command("disable")
def whales_disable(address: Annotated[str, typer.Argument()]) -> None:
    """Stop watching a wallet (kept in the table)."""
    _set_whale(address, False)


@whales_app.command("import")
def whales_import(path: Annotated[Path, typer.Argument(help="YAML file of whales.")]) -> None:
    """Add or update whales from a YAML file (a list, or a 'whales:' key)."""
    from venuefeed.pipeline.whales import load_whale_file, whale_store

    try:
        entries = load_whale_file(path)
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    store = whale_store(settings().storage.sqlite_path)
    for entry in entries:
        address = entry.pop("address")
        try:
            store.upsert(address, **entry)
        except ValueError as exc:
            err_console.print(f"[red]{address}:[/red] {exc}")
            raise typer.Exit(2) from None
    console.print(f"imported {len(entries)} whale(s) from {path}")


@app.command("export")
def export_data(
    table: Annotated[str, typer.Option("--table", help="Table to export, e.g. trades.")],
    source: Annotated[
        str, typer.Option("--from", help="Where the data is: sqlite or postgres.")
    ] = "sqlite",
    since: Annotated[
        str | None,
        typer.Option(help="Only rows at/after this event time: 2024-05-01, an ISO datetime, ns."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    out: Annotated[
        Path | None,
        typer.Option(help="Parquet: a directory (default ./export); CSV: a file or - (stdout)."),
    ] = None,
) -> None:
    """Export stored rows to Hive-partitioned Parquet or to CSV."""
    from venuefeed.sinks.export import EXPORTABLE, export

    cfg = settings()
    if source not in ("sqlite", "postgres") or fmt not in ("parquet", "csv"):
        err_console.print("[red]--from is sqlite or postgres; --format is parquet or csv[/red]")
        raise typer.Exit(2)
    if table not in EXPORTABLE:
        err_console.print(f"[red]cannot export {table!r}[/red]; choose {', '.join(EXPORTABLE)}")
        raise typer.Exit(2)
    target = out or (Path("export") if fmt == "parquet" else Path(f"{table}.csv"))
    url = cfg.storage.database_url.get_secret_value() if cfg.storage.database_url else None

    async def run() -> Any:
        return await export(
            source,  # type: ignore[arg-type]  # checked above
            table,
            since,
            fmt,  # type: ignore[arg-type]
            target,
            sqlite_path=cfg.storage.sqlite_path,
            database_url=url,
            pg_schema=cfg.storage.postgres_schema,
        )

    try:
        result = run_async(run)
    except (ValueError, FileNotFoundError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    quiet = str(target) == "-"
    if not quiet:
        console.print(
            f"exported {result.rows} {table} row(s) to {target} ({len(result.files)} file(s))"
        )
    if result.exact_text:
        err_console.print(
            f"{result.exact_text} value(s) too wide for their decimal column: "
            "exported exactly as text in column _exact"
        )


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
