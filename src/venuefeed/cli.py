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
from typing import Annotated, Any, TypeVar

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
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

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
) -> None:
    """Run a venue's local simulator on 127.0.0.1 until Ctrl+C."""
    from venuefeed.sim.base import Faults
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

    async def serve() -> None:
        simulator = cls(  # type: ignore[call-arg]
            seed=seed, faults=fault_switches, events_per_second=events_per_second
        )
        await simulator.start(port=port)
        console.print(f"{venue} simulator on {simulator.base_url}")
        for name, url in simulator.urls().items():
            console.print(f"  {name}: {url}")
        try:
            await asyncio.Event().wait()
        finally:
            await simulator.stop()

    run_async(serve)


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
    if result.rejected:
        err_console.print(
            f"[yellow]{result.rejected} row(s) skipped: {result.first_problem}[/yellow]"
        )


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
