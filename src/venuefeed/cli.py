"""The ``venuefeed`` command line.

Every verb is one function decorated with ``@app.command()`` (or a sub-app's),
taking its options as typed parameters; the shared ``--config``/``--log-*``
options and config loading live in :func:`_root` and :func:`settings`, so a
new verb only says what it does.

An operator's mistake -- a bad flag, a wrong setting, a port in use, a file that
cannot be written -- ends the program with ONE line on stderr naming the
problem and exit code 2, never a traceback (:func:`main`). Verbs check what
they can before they start anything (:mod:`venuefeed.preflight`): a refusal
never comes after ingestion has begun.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table

from venuefeed import __version__
from venuefeed import loop as event_loop
from venuefeed.config import ConfigError, Settings, VenueSettings, load_config
from venuefeed.log import configure as configure_logging
from venuefeed.log import redact, register_secret
from venuefeed.preflight import (
    check_database_file,
    check_storage,
    check_venue_options,
    check_writable_dir,
    postgres_url,
)

if TYPE_CHECKING:
    from venuefeed.sim.base import SimulatorBase
    from venuefeed.venues.base import VenueAdapter

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
lake_app = typer.Typer(help="The Parquet lake's upkeep.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")
pairs_app = typer.Typer(
    help="The same question on Kalshi and Polymarket: suggest, confirm, reject, list.",
    no_args_is_help=True,
)
app.add_typer(pairs_app, name="pairs")
cluster_app = typer.Typer(help="Scale-out on NATS JetStream.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")

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
        _State.settings = load_config(_State.config_path, _State.overrides)
        cfg = _State.settings
        configure_logging(cfg.logging.level, cfg.logging.format, secrets=_secrets(cfg))
    return _State.settings


def _secrets(cfg: Settings) -> list[str]:
    found = [  # a key file's path is where the secret is, not the secret: errors may name it
        secret.get_secret_value()
        for venue in cfg.venues.values()
        for name, secret in venue.credentials.items()
        if not name.endswith("_path")
    ]
    found.extend(
        s.get_secret_value() for s in (cfg.api.token, cfg.storage.database_url) if s is not None
    )
    found.extend(v for v in (os.environ.get("DATABASE_URL"), cfg.bus.nats_url) if v)
    for value in found:
        register_secret(value)
    return found


def _database(*, write: bool) -> Path:
    """``storage.sqlite_path`` for a verb that reads (or writes) it, checked first."""
    path = settings().storage.sqlite_path
    check_database_file(path, "storage.sqlite_path (--db)", create=write)
    return path


@contextlib.contextmanager
def _venuefeed_tables(path: Path) -> Iterator[None]:
    """A SQLite file without our tables is the wrong file (or one never migrated)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        raise ConfigError(
            f"{path} has no venuefeed tables ({exc}): wrong --db, or run `venuefeed db migrate`"
        ) from None


def _venue_name(venue: str, *, enabled: bool = False) -> str:
    """A registered venue (and, with ``enabled``, one the configuration turns on)."""
    from venuefeed.venues.base import known_venues

    if venue not in known_venues():
        raise typer.BadParameter(f"unknown venue {venue!r}; known: {', '.join(known_venues())}")
    configured = settings().venues.get(venue)
    if enabled and (configured is None or not configured.enabled):
        raise typer.BadParameter(f"venue {venue!r} is not enabled (venues.{venue}.enabled)")
    return venue


def _adapter(cfg: Settings, venue: str) -> VenueAdapter:
    """The venue's client; its own settings check (credentials, options) as a ConfigError."""
    from venuefeed.venues.base import adapter_class

    try:
        return adapter_class(venue)(cfg.venues.get(venue) or VenueSettings(), cfg)
    except Exception as exc:  # construction only validates settings: anything is a config error
        text = str(exc)  # options errors already name venues.<venue>.options.<key>
        named = text.startswith(f"venues.{venue}.")
        raise ConfigError(text if named else f"venues.{venue}: {text}") from None


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
        return event_loop.run(main())
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
    """Print the venuefeed version, and whether the book's loops run in C or Python."""
    from venuefeed.book import KERNEL

    console.print(f"venuefeed {__version__} (book kernel: {KERNEL})")


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

    path = _database(write=True)
    try:
        applied = migrate(path)
    except RuntimeError as exc:  # a database from a newer venuefeed: refused, not guessed
        raise ConfigError(str(exc)) from None
    if applied:
        console.print(f"{path}: applied migration(s) {', '.join(map(str, applied))}")
    else:
        console.print(f"{path}: schema is up to date")


@db_app.command("status")
def db_status() -> None:
    """Show the schema version and pending migrations."""
    from venuefeed.sinks.sqlite import schema_status

    path = _database(write=False)
    if not path.exists():
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
    port: Annotated[
        int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).", min=0, max=65535)
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed: the same seed replays the same data.")] = 1,
    faults: Annotated[
        str, typer.Option(help="Fault switches, e.g. 'http_429_rate=0.1,malformed_rate=0.01'.")
    ] = "",
    events_per_second: Annotated[
        float, typer.Option(help="Live events per second (0 = as fast as possible).", min=0)
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
    from venuefeed.venues.base import simulator_class

    _venue_name(venue)
    try:
        fault_switches = Faults.from_spec(faults)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from None
    cls = simulator_class(venue)
    extra: dict[str, Any] = {}
    for item in option or ():
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected key=value", param_hint="--set")
        try:
            extra[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise typer.BadParameter(f"{item!r}: not a value", param_hint="--set") from None
    if truth is not None:
        check_writable_dir(truth.parent, "--truth", shown=truth)

    async def serve() -> None:
        try:
            simulator = cls.standalone(
                seed=seed, faults=fault_switches, events_per_second=events_per_second,
                ground_truth=GroundTruth(path=truth, keep=False), **extra,
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--set") from None
        try:
            await simulator.start(port=port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} is in use: pass --port (0 = any free port)"
                ) from None
            raise
        console.print(f"{venue} simulator on {simulator.base_url}")
        with tempfile.TemporaryDirectory(prefix=f"venuefeed-sim-{venue}-") as keys:
            console.print("point a client at it (venuefeed.yaml):", markup=False)
            console.print(_client_config(venue, simulator, Path(keys)), markup=False)
            try:
                await asyncio.Event().wait()
            finally:
                await simulator.stop()

    run_async(serve)


def _client_config(venue: str, simulator: SimulatorBase, keys: Path) -> str:
    """The config block a client needs for this simulator: its URLs and its test credentials.

    Multi-line credentials (Kalshi's PEM key) go to a file in ``keys`` (removed when the
    simulator stops) and the block names the file.
    """
    import yaml

    credentials: dict[str, str] = {}
    for name, value in simulator.client_credentials().items():
        if "\n" in value:
            path = keys / f"{name}.pem"
            path.write_text(value)
            path.chmod(0o600)
            credentials[f"{name}_path"] = str(path)
        else:
            credentials[name] = value
    section: dict[str, Any] = {"enabled": True, "urls": simulator.urls()}
    if credentials:
        section["credentials"] = credentials
    return (
        "  "
        + yaml.safe_dump({"venues": {venue: section}}, sort_keys=False)
        .replace("\n", "\n  ")
        .rstrip()
    )


@archive_app.command("kalshi")
def archive_kalshi(
    out: Annotated[
        Path, typer.Option(help="Folder that holds kalshi_atomic_ingestion_<timestamp>/.")
    ] = Path("."),
    layout: Annotated[str, typer.Option(help="files (one JSON per record), jsonl or parquet.")] = (
        "files"
    ),
    fresh: Annotated[bool, typer.Option(help="Start a new archive instead of resuming.")] = False,
    endpoint: Annotated[
        list[str] | None, typer.Option(help="series, events, markets (default: all three).")
    ] = None,
) -> None:
    """Every Kalshi series, event and market (live and historical tier), in seed 004's
    layout; resumable (rerun continues), deduplicated."""
    from venuefeed.venues.kalshi.archive import ENDPOINTS, ArchiveSummary, run_archive

    if layout not in ("files", "jsonl", "parquet"):
        raise typer.BadParameter("must be files, jsonl or parquet", param_hint="--layout")
    endpoints = tuple(endpoint) if endpoint else ("series", "events", "markets")
    unknown = sorted(set(endpoints) - set(ENDPOINTS))
    if unknown:
        raise typer.BadParameter(f"unknown {unknown}; known: {list(ENDPOINTS)}",
                                 param_hint="--endpoint")  # fmt: skip
    cfg = settings()
    check_writable_dir(out, "--out")
    chosen = cast(Literal["files", "jsonl", "parquet"], layout)

    async def go() -> ArchiveSummary:
        await _adapter(cfg, "kalshi").close()  # credentials checked before any download
        return await run_archive(
            cfg, out_dir=out, layout=chosen, fresh=fresh, endpoints=endpoints, show_progress=True
        )

    summary = run_async(go)
    console.print(
        f"{summary.records} records archived; complete: {summary.ok}; endpoints succeeded: "
        f"{summary.success_rate:g} %; requests succeeded: {summary.request_success_rate:g} %"
    )
    if not summary.ok:
        raise typer.Exit(1)


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _service_command(
    body: Callable[[Any], Coroutine[Any, Any, T]],
    *,
    continuous: bool,
    venues: list[str] | None = None,
    with_api: bool = False,
) -> T:
    """Run ``body(service)`` with a started service (and API) that is stopped cleanly afterwards.

    Everything that can be checked is checked before the service starts: the
    storage, the named venues and, ``with_api``, the API's address and port
    (bound here, so "in use" or "exposed without a token" stops us first).
    """
    from venuefeed.service import Service

    cfg = settings()
    for venue in venues or ():
        _venue_name(venue, enabled=True)
    check_storage(cfg)
    check_venue_options(cfg)
    listener = None
    if with_api and cfg.api.enabled:
        from venuefeed.api.server import PortInUse, open_listener

        try:
            listener = open_listener(cfg.api)
        except PortInUse as exc:
            raise ConfigError(
                f"port {exc.port} is in use: set api.port (VENUEFEED_API__PORT) to a free port"
            ) from None

    async def run() -> T:
        service = Service(cfg, echo=lambda line: console.print(line, markup=False))
        api = None
        if listener is not None:
            from venuefeed.api.server import ApiServer

            api = ApiServer(service, cfg.api, sock=listener)
        await service.start(continuous=continuous)
        try:
            if api is not None:
                await api.start()
                console.print(f"API and dashboard on http://{cfg.api.host}:{api.port}/")
            return await body(service)
        finally:
            if api is not None:
                await api.stop()
            await service.stop()

    try:
        return run_async(run)
    finally:
        if listener is not None:
            listener.close()


@app.command()
def discover(
    venue: Annotated[list[str] | None, typer.Option(help="Venue(s); default all enabled.")] = None,
) -> None:
    """Discover markets in the resolution window and store them."""

    async def body(service: Any) -> Any:
        return await service.discover_markets(venue)

    _print_json(_service_command(body, continuous=False, venues=venue))


@app.command()
def ingest(
    venue: Annotated[list[str] | None, typer.Option(help="Venue(s); default all enabled.")] = None,
) -> None:
    """One snapshot pass: top-N books and recent trades of every active market."""

    async def body(service: Any) -> Any:
        return await service.ingest_once(venue)

    _print_json(_service_command(body, continuous=False, venues=venue))


@app.command()
def continuous(
    interval: Annotated[
        float, typer.Option(help="Seconds between snapshot passes.", min=0.1)
    ] = 30.0,
) -> None:
    """Discovery + streaming (+ polling where a venue has no stream) until Ctrl+C."""

    async def body(service: Any) -> None:
        await service.start_continuous(interval)
        await asyncio.Event().wait()

    _service_command(body, continuous=False)


_RECORD_HELP = "Record every venue frame (WebSocket and REST) into this folder (recording.*)."


def _record_into(folder: Path | None) -> None:
    """``--record DIR``: the same as ``recording.enabled`` and ``recording.path``."""
    if folder is not None:
        _State.overrides.update({"recording.enabled": True, "recording.path": folder})
        _State.settings = None


@app.command()
def run(
    record: Annotated[Path | None, typer.Option("--record", help=_RECORD_HELP)] = None,
) -> None:
    """The full service from config: ingestion, API and dashboard, until Ctrl+C or SIGTERM."""
    _record_into(record)

    async def body(service: Any) -> None:
        await asyncio.Event().wait()

    _service_command(body, continuous=True, with_api=True)


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl+C).", min=0)
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="API/dashboard port (0 = any free port); default api.port (8080).",
            min=0,
            max=65535,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
    rate: Annotated[
        float, typer.Option(help="Simulated events per second per venue.", min=0)
    ] = 25.0,
    record: Annotated[Path | None, typer.Option("--record", help=_RECORD_HELP)] = None,
) -> None:
    """Simulators + ingestion + SQLite + dashboard on this machine, no external service."""
    from venuefeed.demo import run_demo

    _record_into(record)
    cfg = settings()
    if _State.overrides.get("logging.level") is None:  # keep the live screen readable
        configure_logging("WARNING", cfg.logging.format)
    final = run_async(
        lambda: run_demo(_State.config_path, duration=duration, db=cfg.storage.sqlite_path,
                         api_port=port, seed=seed, events_per_second=rate, console=console,
                         record=record)
    )  # fmt: skip
    stored = final["details"]["writer"]["stored"]
    console.print(f"demo stopped cleanly: {stored} records stored in {cfg.storage.sqlite_path}")


@app.command()
def status() -> None:
    """Status of a running service (via its API) or, if none runs, of the database.

    Exit code 1 when the service answers that it is unhealthy (HTTP 503).
    """
    import urllib.error
    import urllib.request

    from venuefeed.report import storage_summary

    cfg = settings()
    host = cfg.api.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
    url = f"http://{host}:{cfg.api.port}/api/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read()
    except urllib.error.HTTPError as exc:  # 503 carries the status, with its problems
        if exc.code != 503:
            raise ConfigError(f"{url} answered HTTP {exc.code}: is it a venuefeed API?") from None
        text = exc.read()
    except OSError:
        text = None
    if text is not None:
        try:
            body = json.loads(text)
        except ValueError:
            raise ConfigError(f"{url} did not answer JSON: is it a venuefeed API?") from None
        _print_json(body)
        if not body.get("healthy", False):
            raise typer.Exit(1)
        return
    path = _database(write=False)
    console.print(f"no service answering at {url}; showing {path}")
    if not path.exists():
        err_console.print(f"{path}: no database yet")
        raise typer.Exit(1)
    with _venuefeed_tables(path):
        _print_json(storage_summary(path))


@app.command("test")
def test_venue(
    venue: Annotated[
        str, typer.Option("--venue", "--venue-name", help="Venue to check (seed 000's flag too).")
    ],
) -> None:
    """Check a venue: reachable? authenticated? Prints a clear verdict; exit 1 if not OK."""
    cfg = settings()
    _venue_name(venue)

    async def check() -> Any:
        async with _adapter(cfg, venue) as adapter:
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
    concurrency: Annotated[int, typer.Option(help="Chunks fetched at once.", min=1, max=64)] = 4,
) -> None:
    """Fetch history in chunks, idempotently; a rerun skips chunks already stored."""
    import time as _time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from venuefeed.pipeline.backfill import BackfillPlan, BackfillResult, run_backfill
    from venuefeed.service import build_sink

    cfg = settings()
    _venue_name(venue)
    if kind not in ("trades", "candles"):
        raise typer.BadParameter("must be trades or candles", param_hint="--kind")
    if not start:
        raise typer.BadParameter("is required", param_hint="--from")
    plan = BackfillPlan(venue, symbol, kind, _parse_time(start),  # type: ignore[arg-type]
                        _parse_time(end) if end else _time.time_ns(), interval)  # fmt: skip
    try:
        plan.chunks()
    except ValueError as exc:  # an empty range or an interval the plan cannot cut
        raise typer.BadParameter(str(exc)) from None
    check_storage(cfg)

    async def go() -> BackfillResult:
        async with _adapter(cfg, venue) as adapter:
            sink = build_sink(cfg)
            await sink.start()
            try:
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
    window: Annotated[float, typer.Option(help="Window in hours.", min=0.001)] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per venue.")] = False,
) -> None:
    """Per-venue data-quality report: coverage, gaps open/healed, stale books."""
    from venuefeed.report import quality_report

    cfg = settings()
    path = _database(write=False)
    if not path.exists():
        err_console.print(f"{path}: no database yet")
        raise typer.Exit(1)
    from venuefeed.venues.base import adapter_class, known_venues

    expected = {
        name: adapter_class(name).why_no_data(venue)
        for name, venue in cfg.venues.items()
        if venue.enabled and name in known_venues()
    }
    with _venuefeed_tables(path):
        rows = quality_report(
            path, window_s=window * 3600, stale_s=cfg.quality.stale_feed_seconds, expected=expected
        )
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
    whale_store(_database(write=True)).upsert(address, **fields)
    console.print(f"watching {address.lower()}")


@whales_app.command("list")
def whales_list() -> None:
    """List watched wallets."""
    from venuefeed.pipeline.whales import whale_store

    table = Table("address", "pseudonym", "tier", "enabled", "confirmed", "notes")
    for w in whale_store(_database(write=False)).all():
        table.add_row(w["address"], w["pseudonym"] or "", w["tier"] or "",
                      "yes" if w["enabled"] else "no", "yes" if w["confirmed"] else "no",
                      w["notes"] or "")  # fmt: skip
    console.print(table)


def _set_whale(address: str, enabled: bool) -> None:
    from venuefeed.pipeline.whales import whale_store

    if not whale_store(_database(write=True)).set_enabled(address, enabled):
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
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    store = whale_store(_database(write=True))
    for entry in entries:
        address = entry.pop("address")
        try:
            store.upsert(address, **entry)
        except ValueError as exc:
            raise ConfigError(f"{path}: {address}: {exc}") from None
    console.print(f"imported {len(entries)} whale(s) from {path}")


@pairs_app.command("suggest")
def pairs_suggest(
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    min_score: Annotated[
        float | None, typer.Option(min=0, max=100, help="Score floor (pairs.min_score).")
    ] = None,
) -> None:
    """Score the discovered Kalshi and Polymarket markets; store the candidates."""
    from venuefeed.pairs.store import PairStore
    from venuefeed.pairs.suggestions import NoMarkets, suggest_from_store

    store = PairStore(_database(write=True))
    try:
        found = suggest_from_store(store, settings().pairs, limit=limit, min_score=min_score)
    except NoMarkets as exc:
        raise ConfigError(str(exc)) from None
    for c in found:  # one line a pair: ids are long, and a table would wrap them
        _pair_line(c.pair_id, "suggested", c.score, c.mapping, c.kalshi.title, c.polymarket.title)
    console.print(f"{len(found)} candidate(s); confirm with `venuefeed pairs confirm PAIR`")


@pairs_app.command("confirm")
def pairs_confirm(
    pair: Annotated[str, typer.Argument(help="Pair id, as `pairs list` shows it.")],
    mapping: Annotated[
        str | None, typer.Option(help="yes_yes or yes_no: override the suggested mapping.")
    ] = None,
) -> None:
    """Confirm a pair: the running service starts quoting it within seconds."""
    _decide_pair(pair, "confirmed", mapping)


@pairs_app.command("reject")
def pairs_reject(pair: Annotated[str, typer.Argument(help="Pair id.")]) -> None:
    """Reject a pair (kept, never suggested again)."""
    _decide_pair(pair, "rejected", None)


def _decide_pair(pair: str, status: Literal["confirmed", "rejected"], mapping: str | None) -> None:
    from venuefeed.pairs.store import MAPPINGS, PairStore

    if mapping is not None and mapping not in MAPPINGS:
        raise typer.BadParameter(f"--mapping must be one of {', '.join(MAPPINGS)}")
    store = PairStore(_database(write=True))
    if not store.decide(pair, status, cast("Any", mapping)):
        err_console.print(f"[red]no pair {pair}[/red] (run `venuefeed pairs suggest` first)")
        raise typer.Exit(1)
    console.print(f"{pair} {status}")


@pairs_app.command("list")
def pairs_list(
    status: Annotated[
        str | None, typer.Option(help="Only suggested, confirmed or rejected pairs.")
    ] = None,
) -> None:
    """List stored pairs with their mapping and decision."""
    from venuefeed.pairs.store import PairStore

    if status is not None and status not in ("suggested", "confirmed", "rejected"):
        raise typer.BadParameter("--status must be suggested, confirmed or rejected")
    for p in PairStore(_database(write=False)).all(cast("Any", status)):
        _pair_line(p["pair_id"], p["status"], p["score"], p["mapping"], p["kalshi_title"],
                   p["polymarket_title"])  # fmt: skip


def _pair_line(
    pair: str, status: str, score: float, mapping: str, kalshi: str, polymarket: str
) -> None:
    """``PAIR  STATUS  SCORE  MAPPING  "kalshi title" ~ "polymarket title"``, unwrapped."""
    print(f'{pair}  {status}  {score:.1f}  {mapping}  "{kalshi}" ~ "{polymarket}"')


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
    if source not in ("sqlite", "postgres"):
        raise typer.BadParameter("must be sqlite or postgres", param_hint="--from")
    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter("must be parquet or csv", param_hint="--format")
    if table not in EXPORTABLE:
        raise typer.BadParameter(f"cannot export {table!r}; choose {', '.join(EXPORTABLE)}",
                                 param_hint="--table")  # fmt: skip
    target = out or (Path("export") if fmt == "parquet" else Path(f"{table}.csv"))
    if str(target) != "-":
        check_writable_dir(target if fmt == "parquet" else target.parent, "--out", shown=target)
    url = None
    if source == "postgres":
        url = postgres_url(cfg)
    else:
        _database(write=False)

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
    except (ValueError, FileNotFoundError) as exc:  # --since, or no database at that path
        raise ConfigError(str(exc)) from None
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


@app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="SQL (DuckDB dialect); see the names below.")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or parquet.")] = "table",
    out: Annotated[
        Path | None, typer.Option(help="Write to this file (parquet needs one; csv: stdout).")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Rows a table shows at most.", min=1)] = 1000,
) -> None:
    """SQL over the Parquet lake (lake.<table>) and the store (store.<table>).

    Unqualified trades, books, book_levels, book_deltas, candles, quotes, gaps
    and markets are the store's when there is one, else the lake's.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from venuefeed.lake.query import Catalog, QueryError, StoreSource

    if fmt not in ("table", "csv", "parquet"):
        raise typer.BadParameter("must be table, csv or parquet", param_hint="--format")
    if fmt == "parquet" and out is None:
        raise typer.BadParameter("parquet output needs --out FILE", param_hint="--out")
    if out is not None:
        check_writable_dir(out.parent, "--out", shown=out)
    cfg = settings()
    store: StoreSource | None = None
    if "postgres" in cfg.storage.sinks:
        store = StoreSource("postgres", database_url=postgres_url(cfg),
                            pg_schema=cfg.storage.postgres_schema)  # fmt: skip
    elif cfg.storage.sqlite_path.exists():
        check_database_file(cfg.storage.sqlite_path, "storage.sqlite_path (--db)", create=False)
        store = StoreSource("sqlite", sqlite_path=cfg.storage.sqlite_path)
    lake = cfg.storage.parquet_root if cfg.storage.parquet_root.is_dir() else None
    if store is None and lake is None:
        raise ConfigError(
            f"nothing to query: no database at {cfg.storage.sqlite_path} (--db) and no "
            f"Parquet lake at {cfg.storage.parquet_root} (storage.parquet_root)"
        )
    catalog = Catalog(lake, store)
    try:
        result = catalog.run(sql)
    except QueryError as exc:
        raise ConfigError(f"query: {exc}") from None
    finally:
        catalog.close()
    if fmt == "parquet":
        assert out is not None
        pq.write_table(result, out, compression="zstd")
        console.print(f"{result.num_rows} row(s) written to {out}")
    elif fmt == "csv":
        if out is None:
            sink = pacsv.CSVWriter(sys.stdout.buffer, result.schema)
            sink.write_table(result)
            sink.close()
            sys.stdout.flush()
        else:
            pacsv.write_csv(result, out)
            console.print(f"{result.num_rows} row(s) written to {out}")
    else:
        table = Table(*result.column_names)
        for row in result.slice(0, max_rows).to_pylist():
            table.add_row(*(_cell(v) for v in row.values()))
        console.print(table)
        if result.num_rows > max_rows:
            console.print(f"{result.num_rows - max_rows} more row(s): --max-rows, or --format csv")


@lake_app.command("compact")
def lake_compact(
    min_age: Annotated[
        float | None,
        typer.Option(
            help="Leave parts younger than this many seconds (default: the setting).", min=0
        ),
    ] = None,
) -> None:
    """Merge the Parquet lake's small parts into large, sorted, de-duplicated files."""
    from venuefeed.lake.compact import compact_lake

    storage = settings().storage
    root = storage.parquet_root
    if not root.is_dir():
        raise ConfigError(f"no Parquet lake at {root} (storage.parquet_root)")
    age = storage.parquet_compact_min_age_seconds if min_age is None else min_age
    result = compact_lake(root, min_age_seconds=age,
                          target_bytes=storage.parquet_compact_target_bytes)  # fmt: skip
    if result.skipped:
        err_console.print(f"{root}: {result.skipped}")
        raise typer.Exit(1)
    console.print(
        f"{result.partitions} partition(s): {result.files_before} file(s) -> {result.files_after}, "
        f"{result.bytes_before:,} -> {result.bytes_after:,} bytes, "
        f"{result.duplicates} repeated row(s) dropped"
        + (f", {result.leftovers_removed} leftover part(s) removed" if result.leftovers_removed
           else "")
    )  # fmt: skip


_CONFIG_HELP = "YAML config file (the same as the global --config)."


def _use_config(config: Path | None) -> None:
    """A verb's own ``--config``: what the global one says, written after the verb."""
    if config is not None:
        _State.config_path = config
        _State.settings = None


def _recording_dir(folder: Path, wanted: list[str] | None = None) -> Path:
    from venuefeed.lake.reader import venues

    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such recording folder")
    recorded = venues(folder)
    if not recorded:
        raise ConfigError(f"{folder}: not a recording (no venue=<name> folders)")
    missing = sorted(set(wanted or ()) - set(recorded))
    if missing:
        raise ConfigError(f"{folder}: no recording of {', '.join(missing)} "
                          f"(recorded: {', '.join(recorded)})")  # fmt: skip
    return folder


@app.command("replay")
def replay_command(
    folder: Annotated[Path, typer.Argument(help="Recording folder (recording.path).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help=_CONFIG_HELP)] = None,
    venue: Annotated[list[str] | None, typer.Option(help="Venue(s); default all recorded.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="From this receive time (ISO or unix s/ns).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Up to this receive time (ISO or unix s/ns).")
    ] = None,
    speed: Annotated[
        float,
        typer.Option(
            help="1 = as recorded, 10 = ten times faster; 0 = as fast as possible.", min=0
        ),
    ] = 0.0,
) -> None:
    """Run a recording again through today's parsers, feeds and pipeline into the sinks.

    Deterministic: the same recording gives the same rows on every run.
    """
    from venuefeed.lake.replay import replay

    _use_config(config)
    cfg = settings()
    for name in venue or ():
        _venue_name(name)
    check_storage(cfg)
    _recording_dir(folder, venue)
    result = run_async(
        lambda: replay(folder, cfg, only=venue, speed=speed,
                       start=_parse_instant(start) if start else None,
                       end=_parse_instant(end) if end else None)
    )  # fmt: skip
    for name, done in result.venues.items():
        rejects = sum(done.rejects.values())
        console.print(f"{name}: {done.frames} frames -> {done.events} events, "
                      f"{done.reconnects} reconnect(s), {rejects} rejected, "
                      f"{done.rest_served} REST answer(s) replayed"
                      + (f", {done.lost} frame(s) missing from the recording" if done.lost
                         else ""))  # fmt: skip
    if result.damaged_blocks:
        err_console.print(f"{result.damaged_blocks} damaged block(s) skipped (see the log)")
    console.print(f"replayed in {result.seconds:.1f}s into {', '.join(cfg.storage.sinks)}")


@app.command("replay-server")
def replay_server_command(
    folder: Annotated[Path, typer.Argument(help="Recording folder (recording.path).")],
    port: Annotated[
        int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).", min=0, max=65535)
    ] = 8765,
    speed: Annotated[
        float,
        typer.Option(
            help="1 = as recorded, 10 = ten times faster; 0 = as fast as possible.", min=0
        ),
    ] = 1.0,
    start: Annotated[
        str | None, typer.Option("--from", help="From this receive time (ISO or unix s/ns).")
    ] = None,
    venue: Annotated[list[str] | None, typer.Option(help="Venue(s); default all recorded.")] = None,
    config_out: Annotated[
        Path | None,
        typer.Option("--config-out", help="Write a client config (YAML) pointing at the server."),
    ] = None,
) -> None:
    """Serve a recorded session over each venue's own WebSocket and REST, until Ctrl+C.

    ``venuefeed run`` (or any bot) connects to it as to the venues.
    """
    import yaml

    from venuefeed.lake.replay_server import ReplayServer

    settings()  # logging as configured
    for name in venue or ():
        _venue_name(name)
    _recording_dir(folder, venue)

    async def serve() -> None:
        server = ReplayServer(folder, speed=speed, only=venue,
                              start=_parse_instant(start) if start else None)  # fmt: skip
        await server.start(port=port)
        try:
            for name in server.venues:
                urls = ", ".join(f"{k} {v}" for k, v in server.client_urls(name).items())
                console.print(f"{name}: {urls}")
            if config_out is not None:
                tree: dict[str, Any] = {"venues": {}}
                for key, value in server.client_settings().items():
                    _, name, *rest = key.split(".")
                    node = tree["venues"].setdefault(name, {})
                    for part in rest[:-1]:
                        node = node.setdefault(part, {})
                    node[rest[-1]] = value
                config_out.write_text(yaml.safe_dump(tree, sort_keys=True))
                config_out.chmod(0o600)  # it holds the (test) keys a client signs with
                console.print(f"client config written to {config_out}")
            console.print(f"serving {folder} at {speed:g}x on port {server.port}; Ctrl+C stops")
            await asyncio.Event().wait()
        finally:
            await server.stop()

    run_async(serve)


@app.command("book")
def book(
    venue: Annotated[str, typer.Argument(help="Venue.")],
    instrument: Annotated[str, typer.Argument(help="Instrument: token id, ticker or symbol.")],
    at: Annotated[
        str, typer.Option("--at", help="Instant: ISO date/time (UTC if no zone), unix s or ns.")
    ],
    depth: Annotated[int, typer.Option(help="Levels per side to show.", min=1)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The order book at any past instant, rebuilt from stored snapshots and deltas.

    From PostgreSQL when ``storage.sinks`` has it (as ``venuefeed query``), else SQLite.
    """
    from venuefeed.lake.book_at import BookAt, SqliteHistory, book_at

    cfg = settings()
    _venue_name(venue)
    instant = _parse_instant(at)
    found: BookAt | None
    if "postgres" in cfg.storage.sinks:
        history = _postgres_book_history(cfg, venue, instrument, instant)
        found = book_at(history, venue, instrument, instant,
                        snapshot_depth=cfg.ingestion.book_depth)  # fmt: skip
    else:
        path = _database(write=False)
        if not path.exists():
            raise ConfigError(f"{path}: no database (--db)")
        sqlite_history = SqliteHistory(path)
        try:
            with _venuefeed_tables(path):
                found = book_at(sqlite_history, venue, instrument, instant,
                                snapshot_depth=cfg.ingestion.book_depth)  # fmt: skip
        finally:
            sqlite_history.close()
    if found is None:
        err_console.print(f"no stored book of {venue} {instrument} at or before {at}")
        raise typer.Exit(1)
    bids, asks = found.top(depth)
    if as_json:
        _print_json({
            "venue": venue, "instrument": instrument, "at": instant,
            "snapshot_ts": found.snapshot_ts, "changes_applied": found.changes,
            "bids": [[lv.price, lv.size] for lv in bids],
            "asks": [[lv.price, lv.size] for lv in asks],
            "bids_complete": found.bids_complete, "asks_complete": found.asks_complete,
        })  # fmt: skip
        return
    console.print(f"{venue} {instrument} at {instant}: snapshot of {found.snapshot_ts} "
                  f"+ {found.changes} level change(s)")  # fmt: skip
    table = Table("bid size", "bid", "ask", "ask size")
    for i in range(max(len(bids), len(asks))):
        bid = bids[i] if i < len(bids) else None
        ask = asks[i] if i < len(asks) else None
        table.add_row(bid.size if bid else "", bid.price if bid else "",
                      ask.price if ask else "", ask.size if ask else "")  # fmt: skip
    console.print(table)
    for side, complete, shown in (("bids", found.bids_complete, bids),
                                  ("asks", found.asks_complete, asks)):  # fmt: skip
        if not complete and len(shown) < depth:
            console.print(f"{side}: known to {len(shown)} level(s) only (the stored snapshot "
                          "kept ingestion.book_depth levels)")  # fmt: skip


def _postgres_book_history(cfg: Settings, venue: str, instrument: str, at: int) -> Any:
    """What ``book --at`` needs from PostgreSQL; a missing schema or server as one line."""
    import asyncpg

    from venuefeed.lake.book_at import postgres_history

    url, pg_schema = postgres_url(cfg), cfg.storage.postgres_schema
    try:
        return run_async(lambda: postgres_history(url, pg_schema, venue, instrument, at))
    except asyncpg.UndefinedTableError:
        raise ConfigError(
            f"PostgreSQL schema {pg_schema!r} has no venuefeed tables: wrong "
            "storage.postgres_schema, or nothing stored there yet"
        ) from None
    except asyncpg.PostgresError as exc:
        raise ConfigError(f"PostgreSQL: {exc}") from None


def _parse_instant(text: str) -> int:
    """``--at``: ns or unix seconds as digits (ns from 10^14 on), else an ISO date/time."""
    if text.isdigit():
        value = int(text)
        return value if value >= 10**14 else value * 1_000_000_000
    return _parse_time(text)


def _cell(value: object) -> str:
    """A query result value as text: decimals canonical (``0.5``, not ``0.500000000000``)."""
    from decimal import Decimal

    from venuefeed.exact import canon

    if value is None:
        return ""
    if isinstance(value, Decimal):
        return canon(format(value, "f"))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


@app.command()
def worker() -> None:
    """Ingestion worker: owns shards of the instruments by lease, publishes to JetStream."""
    from venuefeed.cluster.process import run_until_signalled
    from venuefeed.cluster.worker import Worker

    node = Worker(settings())
    run_until_signalled(node.run)


@app.command()
def writer() -> None:
    """Cluster writer: the JetStream consumer into the configured stores, acked after commit."""
    from venuefeed.cluster.process import run_until_signalled
    from venuefeed.cluster.writer import ClusterWriter

    node = ClusterWriter(settings())
    run_until_signalled(node.run)


@cluster_app.command("status")
def cluster_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Workers, leases and their ages, shards and instruments per worker, writer lag."""
    from venuefeed.cluster.jetstream import NoCluster
    from venuefeed.cluster.status import format_status, read_cluster_status

    cfg = settings()
    try:
        status = run_async(lambda: read_cluster_status(cfg, within=10))
    except NoCluster as exc:
        raise ConfigError(f"cluster {cfg.cluster.name!r}: {exc}") from None
    except (TimeoutError, OSError) as exc:
        urls = cfg.cluster.nats_urls
        raise ConfigError(f"NATS not reachable at {urls}: {type(exc).__name__}") from None
    if as_json:
        console.print_json(json.dumps(status))
    else:
        console.print(format_status(status), highlight=False)


def main() -> None:
    """Console-script entry point: operator mistakes end in one line and exit code 2.

    An operator mistake is what an operator can cause and fix: a wrong flag or
    setting (click's errors, ConfigError and its kin) or the system saying
    no (OSError: a file that cannot be read or written, a port in use).
    Anything else is our bug and keeps its traceback.
    """
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # an unknown option, a bad flag value; or no args
        if type(exc).__name__ == "NoArgsIsHelpError":  # its message is the help text
            sys.stderr.write(exc.format_message() + "\n")
            code = exc.exit_code
        else:
            code = _fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        code = 130
    except (ConfigError, OSError) as exc:
        code = _fail(_describe(exc))
    sys.exit(code or 0)


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def _fail(message: str, code: int = 2) -> int:
    """Print ``error: message`` as one line on stderr (secrets masked); return the exit code."""
    line = " ".join(redact(message).split())
    sys.stderr.write(f"error: {line}\n")
    return code


if __name__ == "__main__":
    main()
