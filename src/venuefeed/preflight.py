"""Start-up checks: operator mistakes are found before anything starts, and named in one line.

The sinks would find the same problems later -- after ingestion started, as a
driver's traceback, sometimes with the database URL in it. These checks run in
the CLI before the service, read only the settings and the file system, and
raise :class:`~venuefeed.config.ConfigError` naming the setting to fix and
never its secret value.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from venuefeed.config import ConfigError, Settings

__all__ = [
    "check_database_file",
    "check_storage",
    "check_venue_options",
    "check_writable_dir",
    "postgres_url",
]

SQLITE_HEADER = b"SQLite format 3\x00"
_POSTGRES_SCHEMES = ("postgres", "postgresql")
_NATS_SCHEMES = ("nats", "tls", "ws", "wss")
_NETWORK_SINKS = ("postgres", "kafka", "nats")


def check_storage(settings: Settings) -> None:
    """Every configured sink has what it needs: a URL of the right kind, a writable place."""
    storage, bus = settings.storage, settings.bus
    sinks = set(storage.sinks)
    if "sqlite" in sinks:
        check_database_file(storage.sqlite_path, "storage.sqlite_path", create=True)
    if "postgres" in sinks:
        postgres_url(settings)
    if "nats" in sinks:
        if not bus.nats_url:
            raise ConfigError("the nats sink needs bus.nats_url (VENUEFEED_BUS__NATS_URL)")
        _check_scheme(bus.nats_url, "bus.nats_url", _NATS_SCHEMES)
    if "kafka" in sinks and not bus.kafka_bootstrap_servers:
        raise ConfigError(
            "the kafka sink needs bus.kafka_bootstrap_servers "
            "(VENUEFEED_BUS__KAFKA_BOOTSTRAP_SERVERS)"
        )
    if "parquet" in sinks:
        check_writable_dir(storage.parquet_root, "storage.parquet_root")
    if sinks & set(_NETWORK_SINKS):
        check_writable_dir(storage.spool_dir, "storage.spool_dir")
    if settings.recording.enabled:
        check_writable_dir(settings.recording.path, "recording.path (--record)")


def check_venue_options(settings: Settings) -> None:
    """Every configured venue's ``options`` against the type its adapter declares.

    An unknown key (``audit_interval`` for ``audit_interval_seconds``), a value
    of the wrong type or out of range stops start-up with the key named, instead
    of running with a setting silently ignored.
    """
    from venuefeed.venues.base import VENUES, adapter_class
    from venuefeed.venues.options import OptionsError, load_options

    for name, venue in sorted(settings.venues.items()):
        if name not in VENUES:
            continue
        options_type = adapter_class(name).options_type
        if options_type is None:
            continue
        try:
            load_options(options_type, name, venue.options)
        except OptionsError as exc:
            raise ConfigError(str(exc)) from None


def postgres_url(settings: Settings) -> str:
    """``storage.database_url`` (else ``DATABASE_URL``), checked to be a PostgreSQL URL."""
    configured = settings.storage.database_url
    url = configured.get_secret_value() if configured is not None else ""
    url = url or os.environ.get("DATABASE_URL", "")
    if not url:
        raise ConfigError(
            "PostgreSQL needs storage.database_url (VENUEFEED_STORAGE__DATABASE_URL) "
            "or DATABASE_URL"
        )
    _check_scheme(url, "storage.database_url", _POSTGRES_SCHEMES)
    return url


def _check_scheme(url: str, key: str, schemes: tuple[str, ...]) -> None:
    """The URL's scheme and host are usable; the message shows neither the URL nor its password."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ConfigError(f"{key} is not a valid URL") from None
    if parts.scheme not in schemes:
        shown = f"'{parts.scheme}'" if parts.scheme.isascii() and parts.scheme else "none"
        raise ConfigError(
            f"{key} must be a {' or '.join(s + '://' for s in schemes)} URL (its scheme is {shown})"
        )


def check_database_file(path: Path, key: str, *, create: bool) -> None:
    """``path`` is a SQLite database (or nothing yet) in a directory we may write to.

    ``create``: the directory may be created and must accept new files (SQLite
    in WAL mode writes ``-wal`` and ``-shm`` files beside the database).
    """
    if path.is_dir():
        raise ConfigError(f"{key} {path} is a directory, not a database file")
    if path.exists():
        try:
            with path.open("rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise ConfigError(f"{key} {path}: cannot read it: {exc.strerror or exc}") from None
        if head and head != SQLITE_HEADER[: len(head)]:
            raise ConfigError(f"{key} {path} is not a SQLite database")
        if create and not os.access(path, os.W_OK):
            raise ConfigError(f"{key} {path} is not writable")
    if create:
        check_writable_dir(path.parent, key, shown=path)


def check_writable_dir(path: Path, key: str, *, shown: Path | None = None) -> None:
    """Create ``path`` if needed and prove a file can be written in it."""
    what = shown if shown is not None else path
    blocking = next((p for p in (path, *path.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ConfigError(f"{key} {what}: {blocking} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{key} {what}: cannot write in {path}: {reason}") from None
