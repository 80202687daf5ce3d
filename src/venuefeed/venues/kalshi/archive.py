"""``venuefeed archive kalshi``: every series, event and market, resumable, in constant memory.

Layout and record format as the Kalshi file-ingestion tool users already have
(seed 004)::

    kalshi_atomic_ingestion_<YYYYmmdd_HHMMSS>/
        atomic_ingestion.log    atomic_session_summary_<YYYYmmdd_HHMMSS>.json
        markets/batch_0000/ (records 0-999)   markets/batch_0001/ (1000-1999) ...
        events/batch_0000/ ...  series/batch_0000/ ...   .checkpoint/<endpoint>.sqlite

A batch holds 1,000 records whatever the venue's page size (batches span
pages), numbered from ``batch_0000``. Each record is ``{endpoint,
ingestion_time, record_id, record_hash, batch_info: {record_index,
batch_number, total_records}, data}``: ``endpoint`` is the API path it came
from (``/markets``; ``/historical/markets`` for markets only the historical
tier still serves -- the archive covers both tiers), ``record_index`` counts
across the whole endpoint, ``total_records`` is the endpoint's total, and
``data`` is the venue's JSON *byte for byte* (``msgspec.Raw``: never
re-encoded, no field lost) with ``record_hash`` its SHA-256, which also
deduplicates within an endpoint. ``--layout jsonl`` writes one
``batch_NNNN.jsonl`` per batch instead of a folder, ``parquet`` one
``batch_NNNN.parquet``.

The total is only known once an endpoint's last page is in, so an endpoint
runs in two phases, both resumable from its SQLite checkpoint: *fetch* stages
each page's new records (and their hashes, the cursor and the counters) in
one transaction, on disk, so memory stays flat at 200,000+ records; *write*
then cuts the staged records into batches, each written under a temporary
name, renamed into place, and only then marked done. A kill loses at most the
page or batch in flight, which the rerun redoes under the same name.
Rerunning the same command resumes the newest unfinished archive in
``out_dir``; ``fresh=True`` starts a new one.

Long failures -- timeouts, refused connections and 5xx answers alike -- are
ridden out by the transport's extended recovery mode. Every failed attempt
is counted: the session summary reports, per endpoint and overall, the
success rate of the requests and which endpoints completed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from venuefeed import metrics
from venuefeed.config import Settings
from venuefeed.log import get_logger
from venuefeed.transport import HttpClient, HttpError, HttpPolicy
from venuefeed.venues.kalshi.adapter import Adapter
from venuefeed.venues.kalshi.auth import load_signer
from venuefeed.venues.kalshi.protocol import RawPage
from venuefeed.venues.kalshi.rest import EVENTS_PAGE_MAX, MARKETS_PAGE_MAX

__all__ = ["ArchiveSummary", "EndpointSummary", "Layout", "run_archive"]

Layout = Literal["files", "jsonl", "parquet"]

ENDPOINTS: dict[str, tuple[tuple[str, ...], int | None, str]] = {
    # endpoint -> (paths read in turn, page size (None: the venue takes none), id field)
    "series": (("/series",), None, "ticker"),
    "events": (("/events",), EVENTS_PAGE_MAX, "event_ticker"),
    "markets": (("/markets", "/historical/markets"), MARKETS_PAGE_MAX, "ticker"),
}
BATCH_SIZE = 1000
"""Records per batch folder (seed 004: 1,000 files a folder)."""
_PREFIX = "kalshi_atomic_ingestion_"
_COMPLETE = ".complete"
_FAILURE_KINDS = ("timeout", "connection", "429", "5xx", "circuit_open")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

_log = get_logger("venuefeed.venues.kalshi.archive")


class _Ids(msgspec.Struct):
    ticker: str = ""
    event_ticker: str = ""


class BatchInfo(msgspec.Struct):
    record_index: int
    batch_number: int
    total_records: int


class ArchiveRecord(msgspec.Struct):
    endpoint: str
    ingestion_time: str
    record_id: str
    record_hash: str
    batch_info: BatchInfo
    data: msgspec.Raw


@dataclass
class EndpointSummary:
    endpoint: str
    status: Literal["success", "failed", "pending"] = "pending"
    records: int = 0
    files: int = 0
    batches: int = 0
    pages: int = 0
    duplicates_skipped: int = 0
    duration_seconds: float = 0.0
    records_per_second: float = 0.0
    network_incidents: int = 0
    recoveries: int = 0
    failed_attempts: int = 0
    """Requests that failed and were retried (timeouts, refused connections, 429, 5xx)."""
    request_success_rate: float = 100.0
    """Percent of the endpoint's requests that succeeded (pages / (pages + failed attempts))."""
    resumed: bool = False
    error: str | None = None


@dataclass
class ArchiveSummary:
    archive_dir: Path
    layout: Layout
    started_at: str
    finished_at: str = ""
    resumed: bool = False
    endpoints: dict[str, EndpointSummary] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(e.status == "success" for e in self.endpoints.values())

    @property
    def records(self) -> int:
        return sum(e.records for e in self.endpoints.values())

    @property
    def success_rate(self) -> float:
        """Percent of the endpoints that completed."""
        done = sum(e.status == "success" for e in self.endpoints.values())
        return round(100.0 * done / len(self.endpoints), 1) if self.endpoints else 100.0

    @property
    def request_success_rate(self) -> float:
        """Percent of all requests of the session that succeeded."""
        pages = sum(e.pages for e in self.endpoints.values())
        failed = sum(e.failed_attempts for e in self.endpoints.values())
        return _rate(pages, failed)

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "archive_dir": str(self.archive_dir),
            "layout": self.layout,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "resumed": self.resumed,
            "complete": self.ok,
            "total_records": self.records,
            "files_saved": sum(e.files for e in self.endpoints.values()),
            "success_rate": self.success_rate,
            "request_success_rate": self.request_success_rate,
            "successful_endpoints": [k for k, v in self.endpoints.items() if v.status == "success"],
            "failed_endpoints": [k for k, v in self.endpoints.items() if v.status != "success"],
            "network_incidents": sum(e.network_incidents for e in self.endpoints.values()),
            "recoveries": sum(e.recoveries for e in self.endpoints.values()),
            "endpoints": {k: asdict(v) for k, v in self.endpoints.items()},
        }
        return msgspec.json.format(msgspec.json.encode(data), indent=2)


# -- checkpoint -------------------------------------------------------------------


def _rate(succeeded: int, failed: int) -> float:
    total = succeeded + failed
    return round(100.0 * succeeded / total, 2) if total else 100.0


class _Checkpoint:
    """One endpoint's resumable state: cursor, counters, the on-disk set of hashes seen and
    the records fetched but not yet written into batches."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v BLOB)")
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (h BLOB PRIMARY KEY) WITHOUT ROWID")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS staged (i INTEGER PRIMARY KEY, source TEXT, "
            "record_id TEXT, hash TEXT, ingested TEXT, data BLOB)"
        )
        row = self.db.execute("SELECT v FROM state WHERE k = 'state'").fetchone()
        self.state: dict[str, Any] = msgspec.json.decode(row[0]) if row else {}

    def begin(self) -> None:
        self.db.execute("BEGIN")

    def add(self, digest: bytes) -> bool:
        """True when the hash is new (inside the open transaction)."""
        cur = self.db.execute("INSERT OR IGNORE INTO seen (h) VALUES (?)", (digest,))
        return cur.rowcount == 1

    def stage(self, rows: list[tuple[int, str, str, str, str, bytes]]) -> None:
        """Keep a page's new records until their batches are written (inside the transaction):
        ``(index, source path, record_id, hash, ingestion_time, data)``."""
        self.db.executemany("INSERT OR REPLACE INTO staged VALUES (?, ?, ?, ?, ?, ?)", rows)

    def staged(self, first: int, end: int) -> list[tuple[int, str, str, str, str, bytes]]:
        """The staged records ``first <= index < end``, in order."""
        rows = self.db.execute(
            "SELECT i, source, record_id, hash, ingested, data FROM staged "
            "WHERE i >= ? AND i < ? ORDER BY i",
            (first, end),
        )
        return list(rows)

    def unstage(self) -> None:
        """Every batch is written: the staged copies are no longer needed."""
        self.db.execute("DELETE FROM staged")

    def commit(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        self.db.execute(
            "INSERT OR REPLACE INTO state (k, v) VALUES ('state', ?)",
            (msgspec.json.encode(self.state),),
        )
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.rollback()
        self.db.close()


# -- writers ------------------------------------------------------------------------

_record_encoder = msgspec.json.Encoder()


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)  # an uncommitted earlier attempt at this same batch
    os.replace(tmp, final)


def _write_batch(root: Path, layout: Layout, batch: int, records: list[ArchiveRecord]) -> int:
    """Write one batch atomically (temp name, then rename); returns the files it made."""
    name = f"batch_{batch:04d}"
    if layout == "files":
        tmp = root / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for rec in records:
            safe = _UNSAFE.sub("_", rec.record_id)[:120]
            path = tmp / f"{rec.batch_info.record_index:04d}_{safe}.json"
            path.write_bytes(_record_encoder.encode(rec))
        _replace_dir(tmp, root / name)
        return len(records)
    if layout == "jsonl":
        tmp_file = root / f".{name}.jsonl.tmp"
        with tmp_file.open("wb") as out:
            out.write(b"\n".join(_record_encoder.encode(rec) for rec in records) + b"\n")
        os.replace(tmp_file, root / f"{name}.jsonl")
        return 1
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "endpoint": [r.endpoint for r in records],
            "ingestion_time": [r.ingestion_time for r in records],
            "record_id": [r.record_id for r in records],
            "record_hash": [r.record_hash for r in records],
            "record_index": [r.batch_info.record_index for r in records],
            "batch_number": [r.batch_info.batch_number for r in records],
            "total_records": [r.batch_info.total_records for r in records],
            "data": [bytes(r.data).decode() for r in records],
        }
    )
    tmp_file = root / f".{name}.parquet.tmp"
    pq.write_table(table, tmp_file)
    os.replace(tmp_file, root / f"{name}.parquet")
    return 1


# -- the run --------------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp() -> str:
    """``20240914_111603``: the seed's ``ingestion_time`` and file-name stamp (UTC)."""
    return datetime.now(UTC).strftime("%Y%m%d_%H%M%S")


def _find_archive(out_dir: Path, fresh: bool) -> tuple[Path, bool]:
    """The newest unfinished archive to resume, or a new directory."""
    if not fresh and out_dir.exists():
        candidates = sorted(
            (p for p in out_dir.glob(_PREFIX + "*") if p.is_dir()),
            key=lambda p: p.name,
            reverse=True,
        )
        for path in candidates:
            if (path / ".checkpoint").is_dir() and not (path / _COMPLETE).exists():
                return path, True
    stamp = _stamp()
    path = out_dir / f"{_PREFIX}{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = out_dir / f"{_PREFIX}{stamp}_{n}"
    return path, False


def _failures(label: str) -> float:
    """Failed attempts the transport counted for this endpoint label so far."""
    total = 0.0
    for family in metrics.HTTP_ERRORS.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_total")
                and labels.get("venue") == "kalshi"
                and labels.get("endpoint") == label
                and labels.get("kind") in _FAILURE_KINDS
            ):
                total += sample.value
    return total


class _Log:
    """The ingestion log: one JSON line per page, incident and endpoint outcome."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("ab")

    def write(self, event: str, **data: Any) -> None:
        self._file.write(msgspec.json.encode({"ts": _now_iso(), "event": event, **data}) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


async def _archive_endpoint(
    http: HttpClient,
    endpoint: str,
    archive: Path,
    layout: Layout,
    log: _Log,
    summary: EndpointSummary,
    on_progress: Callable[[int, float], None],
) -> None:
    root = archive / endpoint
    root.mkdir(parents=True, exist_ok=True)
    ck = _Checkpoint(archive / ".checkpoint" / f"{endpoint}.sqlite")
    state = ck.state
    try:
        if state.get("done"):
            _fill(summary, state, "success")
            log.write("endpoint_already_complete", endpoint=endpoint, records=summary.records)
            return
        if state:
            summary.resumed = True
            log.write("endpoint_resumed", endpoint=endpoint, records=state.get("records", 0))
        else:
            state.update(source=0, cursor=None, fetched=False, written=0, done=False)
            state.update(records=0, files=0, pages=0, duplicates=0, elapsed=0.0)
            state.update(incidents=0, recoveries=0, failed_attempts=0)
        on_progress(state["records"], state["elapsed"])
        while not state["fetched"]:
            await _fetch_page(http, endpoint, ck, log)
            on_progress(state["records"], state["elapsed"])
        _write_batches(endpoint, root, layout, ck, log)
        _fill(summary, state, "success")
        log.write("endpoint_complete", endpoint=endpoint, records=summary.records)
    except (HttpError, OSError, msgspec.DecodeError, sqlite3.Error) as exc:
        ck.rollback()
        _fill(summary, state, "failed")
        summary.error = str(exc)
        log.write("endpoint_failed", endpoint=endpoint, error=str(exc), records=summary.records)
        _log.error("kalshi archive endpoint failed", endpoint=endpoint, error=str(exc))
    finally:
        ck.close()


async def _fetch_page(http: HttpClient, endpoint: str, ck: _Checkpoint, log: _Log) -> None:
    """Fetch the next page and stage its new records, with the cursor, in one transaction."""
    paths, page_size, id_field = ENDPOINTS[endpoint]
    state = ck.state
    path = paths[state["source"]]
    label = f"archive_{endpoint}"
    started = time.monotonic()
    params: dict[str, Any] = {"cursor": state["cursor"]}
    if page_size is not None:
        params["limit"] = page_size
    failures_before = _failures(label)
    try:
        response = await http.request(
            "GET",
            path,
            params=params,
            endpoint=label,
            extended_recovery=True,
            progress=lambda: int(state["records"]),
        )
    except HttpError:
        failed = int(_failures(label) - failures_before)
        if failed:
            state["incidents"] += 1
            state["failed_attempts"] += failed
        raise
    failed = int(_failures(label) - failures_before)
    if failed:
        state["incidents"] += 1
        state["recoveries"] += 1
        state["failed_attempts"] += failed
        log.write("network_recovered", endpoint=endpoint, path=path, cursor=state["cursor"],
                  failed_attempts=failed)  # fmt: skip
    page = msgspec.json.decode(response.body, type=RawPage)
    items = getattr(page, endpoint) or []
    ingested = _stamp()
    ids = _ID_DECODER
    ck.begin()
    rows: list[tuple[int, str, str, str, str, bytes]] = []
    duplicates = 0
    for raw in items:
        digest = hashlib.sha256(raw).digest()
        if not ck.add(digest):
            duplicates += 1
            continue
        found = ids.decode(raw)
        record_id = found.ticker if id_field == "ticker" else found.event_ticker
        rows.append((state["records"] + len(rows), path, record_id, digest.hex(), ingested,
                     bytes(raw)))  # fmt: skip
    ck.stage(rows)
    fresh = len(rows)
    state["records"] += fresh
    next_cursor = page.cursor or None
    if next_cursor is None or not items:  # this path is done: the next one, or the end
        state["source"] += 1
        state["cursor"] = None
        state["fetched"] = state["source"] >= len(paths)
    else:
        state["cursor"] = next_cursor
    state["duplicates"] += duplicates
    state["pages"] += 1
    state["elapsed"] += time.monotonic() - started
    ck.commit()
    log.write("page", endpoint=endpoint, path=path, page=state["pages"], records=fresh,
              duplicates=duplicates, total=state["records"])  # fmt: skip


_ID_DECODER = msgspec.json.Decoder(_Ids)


def _write_batches(endpoint: str, root: Path, layout: Layout, ck: _Checkpoint, log: _Log) -> None:
    """Cut the staged records into batches of :data:`BATCH_SIZE`, each marked done once renamed
    into place; the endpoint's total is known by now and goes into every record."""
    state = ck.state
    total = int(state["records"])
    batches = -(-total // BATCH_SIZE)
    while state["written"] < batches:
        started = time.monotonic()
        number = int(state["written"])
        rows = ck.staged(number * BATCH_SIZE, (number + 1) * BATCH_SIZE)
        records = [
            ArchiveRecord(
                endpoint=source,
                ingestion_time=ingested,
                record_id=record_id,
                record_hash=digest,
                batch_info=BatchInfo(index, number, total),
                data=msgspec.Raw(data),
            )
            for index, source, record_id, digest, ingested, data in rows
        ]
        state["files"] += _write_batch(root, layout, number, records)
        state["written"] = number + 1
        state["elapsed"] += time.monotonic() - started
        ck.commit()
        log.write("batch", endpoint=endpoint, batch=number, records=len(records), total=total)
    ck.begin()
    ck.unstage()
    state["done"] = True
    ck.commit()


def _fill(summary: EndpointSummary, state: dict[str, Any], status: str) -> None:
    summary.status = status  # type: ignore[assignment]
    summary.records = int(state.get("records", 0))
    summary.files = int(state.get("files", 0))
    summary.batches = int(state.get("written", 0))
    summary.pages = int(state.get("pages", 0))
    summary.duplicates_skipped = int(state.get("duplicates", 0))
    summary.duration_seconds = round(float(state.get("elapsed", 0.0)), 3)
    elapsed = summary.duration_seconds
    summary.records_per_second = round(summary.records / elapsed, 1) if elapsed > 0 else 0.0
    summary.network_incidents = int(state.get("incidents", 0))
    summary.recoveries = int(state.get("recoveries", 0))
    summary.failed_attempts = int(state.get("failed_attempts", 0))
    summary.request_success_rate = _rate(summary.pages, summary.failed_attempts)


async def run_archive(
    config: Settings,
    *,
    out_dir: Path,
    layout: Layout,
    fresh: bool,
    endpoints: Sequence[str] = ("series", "events", "markets"),
    show_progress: bool = True,
) -> ArchiveSummary:
    """Download every series, event and market of Kalshi into ``out_dir`` (see module doc)."""
    unknown = [e for e in endpoints if e not in ENDPOINTS]
    if unknown:
        raise ValueError(f"unknown kalshi archive endpoint(s) {unknown}; known: {list(ENDPOINTS)}")
    venue = config.venues["kalshi"]
    base_url = venue.urls.get("rest") or Adapter.default_urls["rest"]
    signer = load_signer(
        *(
            (s.get_secret_value() if (s := venue.credentials.get(k)) is not None else None)
            for k in ("api_key_id", "private_key", "private_key_path")
        )
    )
    archive, resumed = _find_archive(Path(out_dir), fresh)
    (archive / ".checkpoint").mkdir(parents=True, exist_ok=True)
    summary = ArchiveSummary(
        archive_dir=archive, layout=layout, started_at=_now_iso(), resumed=resumed
    )
    log = _Log(archive / "atomic_ingestion.log")
    log.write("session_start", resumed=resumed, layout=layout, endpoints=list(endpoints))
    http = HttpClient("kalshi", base_url, HttpPolicy.from_settings(venue), signer=signer)
    progress = _progress(show_progress)
    try:
        for endpoint in endpoints:
            ep_summary = summary.endpoints[endpoint] = EndpointSummary(endpoint)
            update = progress.task(endpoint) if progress is not None else _no_progress
            await _archive_endpoint(http, endpoint, archive, layout, log, ep_summary, update)
    finally:
        await http.close()
        if progress is not None:
            progress.stop()
        summary.finished_at = _now_iso()
        (archive / f"atomic_session_summary_{_stamp()}.json").write_bytes(summary.to_json())
        if summary.ok and set(endpoints) == set(ENDPOINTS):
            (archive / _COMPLETE).touch()
        log.write("session_end", complete=summary.ok, records=summary.records,
                  success_rate=summary.success_rate,
                  request_success_rate=summary.request_success_rate)  # fmt: skip
        log.close()
    return summary


def _no_progress(records: int, elapsed: float) -> None:
    return None


class _RateColumn(ProgressColumn):
    """Records per second of the endpoint's own work (resumed runs included)."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate", 0.0)
        return Text(f"{rate:,.0f} rec/s", style="progress.data.speed")


class _EtaColumn(ProgressColumn):
    """ETA when the venue tells how many records remain; Kalshi lists have no total."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("done", style="progress.elapsed")
        rate = task.fields.get("rate", 0.0)
        if task.total is None or rate <= 0:
            return Text("ETA ?", style="progress.remaining")
        left = max(0.0, (task.total - task.completed) / rate)
        return Text(f"ETA {int(left) // 60}:{int(left) % 60:02d}", style="progress.remaining")


class _Progress:
    """A rich progress bar per endpoint: records, records/s, elapsed, ETA."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(),
            TextColumn("{task.completed:>10,.0f} records"),
            _RateColumn(),
            TimeElapsedColumn(),
            _EtaColumn(),
        )
        self._bar.start()

    def task(self, endpoint: str) -> Callable[[int, float], None]:
        task_id = self._bar.add_task(endpoint, total=None, rate=0.0)

        def update(records: int, elapsed: float) -> None:
            rate = records / elapsed if elapsed > 0 else 0.0
            self._bar.update(task_id, completed=records, rate=rate)

        return update

    def stop(self) -> None:
        self._bar.stop()


def _progress(show: bool) -> _Progress | None:
    return _Progress() if show else None
