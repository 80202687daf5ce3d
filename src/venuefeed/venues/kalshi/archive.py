"""``venuefeed archive kalshi``: every series, event and market, resumable, in constant memory.

Layout (compatible with the archive tool Kalshi users already have)::

    kalshi_archive_<YYYYmmdd_HHMMSS>/
        series/batch_0001/...   events/...   markets/batch_0001/0000_<ticker>.json
        ingestion.log           session_summary.json      .checkpoint/<endpoint>.sqlite

One batch is one API page (at most 1000 records, so at most 1000 files per
folder). Each record is ``{endpoint, ingestion_time, record_id, record_hash,
batch_info: {record_index, batch_number, total_records}, data}`` where
``data`` is the venue's JSON *byte for byte* (``msgspec.Raw``: never
re-encoded, no field lost) and ``record_hash`` its SHA-256. ``--layout jsonl``
writes one ``batch_NNNN.jsonl`` per batch instead of a folder, ``parquet`` one
``batch_NNNN.parquet``.

How it survives being killed: per endpoint, a SQLite checkpoint holds the
cursor, the counters and the set of record hashes already written (on disk,
so memory stays flat at 200,000+ records). A page is processed as one unit:
new records are found with ``INSERT OR IGNORE`` into the hash set inside a
transaction, the batch is written under a temporary name and renamed into
place, and only then are the hashes and the next cursor committed. A kill
before the commit loses nothing but that page, which the rerun fetches and
writes again under the same batch name; a kill after it never rewrites it.
Rerunning the same command resumes the newest unfinished archive in
``out_dir``; ``fresh=True`` starts a new one.

Long network failures are ridden out by the transport's extended recovery
mode; each request that needed retries counts as a network incident, and as a
recovery when it finally succeeded.
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

ENDPOINTS: dict[str, tuple[str, int | None, str]] = {
    # endpoint -> (path, page size (None: the venue takes none), id field)
    "series": ("/series", None, "ticker"),
    "events": ("/events", EVENTS_PAGE_MAX, "event_ticker"),
    "markets": ("/markets", MARKETS_PAGE_MAX, "ticker"),
}
_PREFIX = "kalshi_archive_"
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

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "archive_dir": str(self.archive_dir),
            "layout": self.layout,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "resumed": self.resumed,
            "complete": self.ok,
            "total_records": self.records,
            "endpoints": {k: asdict(v) for k, v in self.endpoints.items()},
        }
        return msgspec.json.format(msgspec.json.encode(data), indent=2)


# -- checkpoint -------------------------------------------------------------------


class _Checkpoint:
    """One endpoint's resumable state: cursor, counters and the on-disk set of hashes seen."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v BLOB)")
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (h BLOB PRIMARY KEY) WITHOUT ROWID")
        row = self.db.execute("SELECT v FROM state WHERE k = 'state'").fetchone()
        self.state: dict[str, Any] = msgspec.json.decode(row[0]) if row else {}

    def begin(self) -> None:
        self.db.execute("BEGIN")

    def add(self, digest: bytes) -> bool:
        """True when the hash is new (inside the open transaction)."""
        cur = self.db.execute("INSERT OR IGNORE INTO seen (h) VALUES (?)", (digest,))
        return cur.rowcount == 1

    def commit(self) -> None:
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
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
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
    path, page_size, id_field = ENDPOINTS[endpoint]
    root = archive / endpoint
    root.mkdir(parents=True, exist_ok=True)
    ck = _Checkpoint(archive / ".checkpoint" / f"{endpoint}.sqlite")
    state = ck.state
    label = f"archive_{endpoint}"
    ids = msgspec.json.Decoder(_Ids)
    try:
        if state.get("done"):
            _fill(summary, state, "success")
            log.write("endpoint_already_complete", endpoint=endpoint, records=summary.records)
            return
        if state:
            summary.resumed = True
            log.write("endpoint_resumed", endpoint=endpoint, records=state.get("records", 0))
        else:
            state.update(cursor=None, done=False, batches=0, records=0, files=0, pages=0)
            state.update(duplicates=0, elapsed=0.0, incidents=0, recoveries=0)
        on_progress(state["records"], 0.0)
        while True:
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
                if _failures(label) > failures_before:
                    state["incidents"] += 1
                raise
            if _failures(label) > failures_before:
                state["incidents"] += 1
                state["recoveries"] += 1
                log.write("network_recovered", endpoint=endpoint, cursor=state["cursor"])
            page = msgspec.json.decode(response.body, type=RawPage)
            items = getattr(page, endpoint) or []
            ingested = _now_iso()
            ck.begin()
            fresh: list[tuple[str, str, msgspec.Raw]] = []
            duplicates = 0
            for raw in items:
                digest = hashlib.sha256(raw).digest()
                if not ck.add(digest):
                    duplicates += 1
                    continue
                found = ids.decode(raw)
                record_id = found.ticker if id_field == "ticker" else found.event_ticker
                fresh.append((record_id, digest.hex(), raw))
            batch = state["batches"] + 1
            if fresh:
                records = [
                    ArchiveRecord(
                        endpoint=endpoint,
                        ingestion_time=ingested,
                        record_id=record_id,
                        record_hash=digest_hex,
                        batch_info=BatchInfo(index, batch, len(fresh)),
                        data=raw,
                    )
                    for index, (record_id, digest_hex, raw) in enumerate(fresh)
                ]
                state["files"] += _write_batch(root, layout, batch, records)
                state["batches"] = batch
            next_cursor = page.cursor or None
            state["cursor"] = next_cursor
            state["records"] += len(fresh)
            state["duplicates"] += duplicates
            state["pages"] += 1
            state["elapsed"] += time.monotonic() - started
            state["done"] = next_cursor is None or not items
            ck.commit()
            log.write(
                "page",
                endpoint=endpoint,
                page=state["pages"],
                batch=batch if fresh else None,
                records=len(fresh),
                duplicates=duplicates,
                total=state["records"],
            )
            on_progress(state["records"], state["elapsed"])
            if state["done"]:
                break
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


def _fill(summary: EndpointSummary, state: dict[str, Any], status: str) -> None:
    summary.status = status  # type: ignore[assignment]
    summary.records = int(state.get("records", 0))
    summary.files = int(state.get("files", 0))
    summary.batches = int(state.get("batches", 0))
    summary.pages = int(state.get("pages", 0))
    summary.duplicates_skipped = int(state.get("duplicates", 0))
    summary.duration_seconds = round(float(state.get("elapsed", 0.0)), 3)
    elapsed = summary.duration_seconds
    summary.records_per_second = round(summary.records / elapsed, 1) if elapsed > 0 else 0.0
    summary.network_incidents = int(state.get("incidents", 0))
    summary.recoveries = int(state.get("recoveries", 0))


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
    log = _Log(archive / "ingestion.log")
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
        (archive / "session_summary.json").write_bytes(summary.to_json())
        if summary.ok and set(endpoints) == set(ENDPOINTS):
            (archive / _COMPLETE).touch()
        log.write("session_end", complete=summary.ok, records=summary.records)
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
