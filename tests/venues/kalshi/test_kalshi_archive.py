"""The bulk archive: complete, deduplicated, flat in memory, resumable after SIGKILL, in the
seed-004 layout (batch_0000 first, 1,000 records a batch, global record_index, endpoint totals),
through 5xx storms, and across Kalshi's live and historical tiers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq
import pytest

from tests.venues.kalshi.kalshi_support import ANCHOR, kalshi_settings
from venuefeed.sim.base import Faults
from venuefeed.venues.kalshi import Simulator
from venuefeed.venues.kalshi.archive import run_archive

ROOT = Path(__file__).resolve().parents[3]

# Runs one archive in a child process and reports its summary and RSS samples as JSON.
CHILD = r"""
import asyncio, json, os, sys, time
from pathlib import Path
from tests.venues.kalshi.kalshi_support import kalshi_settings
from venuefeed.venues.kalshi.archive import run_archive

rest, out, layout = sys.argv[1:4]
page = os.sysconf("SC_PAGE_SIZE")
samples = []

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

async def main():
    async def sample():
        while True:
            samples.append(rss())
            await asyncio.sleep(0.05)
    sampler = asyncio.create_task(sample())
    start = time.perf_counter()
    summary = await run_archive(kalshi_settings(rest), out_dir=Path(out), layout=layout,
                                fresh=False, show_progress=False)
    elapsed = time.perf_counter() - start
    sampler.cancel()
    print(json.dumps({"ok": summary.ok, "records": summary.records, "dir": str(summary.archive_dir),
                      "resumed": summary.resumed, "elapsed": elapsed, "rss": samples,
                      "markets_resumed": summary.endpoints["markets"].resumed}))

asyncio.run(main())
"""


def child(rest: str, out: Path, layout: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, rest, str(out), layout],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def finish(proc: subprocess.Popen[str], limit: float = 100) -> dict[str, Any]:
    out, err = await asyncio.to_thread(proc.communicate, timeout=limit)
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def jsonl_records(archive: Path) -> list[tuple[str, str, str]]:
    """(endpoint, record_id, record_hash) of every record, checking each line's shape."""
    out = []
    for path in sorted(archive.glob("*/batch_*.jsonl")):
        for line in path.read_bytes().splitlines():
            rec = msgspec.json.decode(line)
            out.append((rec["endpoint"], rec["record_id"], rec["record_hash"]))
    return out


def pages_logged(out: Path) -> int:
    """Pages the running archive under ``out`` has committed so far (from its log)."""
    logs = list(out.glob("*/atomic_ingestion.log"))
    if not logs:
        return 0
    return logs[0].read_bytes().count(b'"event":"page"')


def expected_counts(sim: Simulator) -> dict[str, int]:
    u = sim.universe
    return {"series": u.n_series, "events": u.n_events, "markets": u.n_markets}


async def test_killed_and_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    async with Simulator(seed=11, markets=12_000, anchor_ts=ANCHOR, trading_markets=0) as sim:
        assert isinstance(sim, Simulator)
        rest = sim.urls()["rest"]
        clean = await finish(child(rest, tmp_path / "clean", "jsonl"))

        killed_out = tmp_path / "killed"
        proc = child(rest, killed_out, "jsonl")
        deadline = time.monotonic() + 60
        while len(list(killed_out.glob("*/markets/batch_*.jsonl"))) < 3:
            assert proc.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        assert proc.returncode == -signal.SIGKILL
        first = sorted(killed_out.glob("*/markets/batch_000[0-1].jsonl"))
        before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first}

        resumed = await finish(child(rest, killed_out, "jsonl"))

    assert clean["ok"] and resumed["ok"] and resumed["resumed"] and resumed["markets_resumed"]
    assert resumed["dir"].startswith(str(killed_out))
    a, b = jsonl_records(Path(clean["dir"])), jsonl_records(Path(resumed["dir"]))
    assert len(b) == len(set(b)) == sum(expected_counts(sim).values())
    assert len({(e, i) for e, i, _ in b}) == len(b)  # no record id twice
    assert set(a) == set(b)
    # Batches committed before the kill were not written again.
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first} == before


@pytest.mark.slow
@pytest.mark.timeout(400)  # two passes over 200,000 records on a shared machine
async def test_200k_markets_complete_no_duplicates_flat_memory(tmp_path: Path) -> None:
    async with Simulator(seed=1, markets=200_000, anchor_ts=ANCHOR, trading_markets=0) as sim:
        assert isinstance(sim, Simulator)
        result = await finish(child(sim.urls()["rest"], tmp_path, "jsonl"), limit=300)
    assert result["ok"]
    records = jsonl_records(Path(result["dir"]))
    by_endpoint: dict[str, set[str]] = {}
    for endpoint, record_id, _ in records:
        by_endpoint.setdefault(endpoint, set()).add(record_id)
    assert {k.lstrip("/"): len(v) for k, v in by_endpoint.items()} == expected_counts(sim)
    assert len(records) == result["records"] == sum(expected_counts(sim).values())
    rss = result["rss"]
    warm, peak = rss[len(rss) // 5], max(rss)
    print(
        f"\narchive 200k: {result['records'] / result['elapsed']:,.0f} records/s, "
        f"{result['elapsed']:.1f} s, peak RSS {peak / 2**20:.0f} MiB "
        f"(after warm-up {warm / 2**20:.0f} MiB)"
    )
    assert peak - warm < 40 * 2**20, "memory grew with the number of records"


async def test_files_layout_summary_log_and_mid_pagination_failures(tmp_path: Path) -> None:
    async with Simulator(seed=2, markets=2_500, anchor_ts=ANCHOR, trading_markets=0) as sim:
        assert isinstance(sim, Simulator)
        sim.fail_pagination(after_pages=1, failures=3)
        summary = await run_archive(
            kalshi_settings(sim.urls()["rest"]),
            out_dir=tmp_path,
            layout="files",
            fresh=False,
            show_progress=False,
        )
        assert any(e["kind"] == "pagination_failure" for e in sim.truth.events)
    assert summary.ok and summary.records == sum(expected_counts(sim).values())
    incidents = sum(e.network_incidents for e in summary.endpoints.values())
    recoveries = sum(e.recoveries for e in summary.endpoints.values())
    assert incidents >= 1 and recoveries == incidents
    archive = summary.archive_dir
    assert archive.name.startswith("kalshi_atomic_ingestion_")
    folders = sorted(archive.glob("markets/batch_*"))
    assert [f.name for f in folders] == ["batch_0000", "batch_0001", "batch_0002"]
    assert [len(list(f.iterdir())) for f in folders] == [1000, 1000, 500]
    first = sorted(folders[0].iterdir())[0]
    rec = msgspec.json.decode(first.read_bytes())
    assert set(rec) == {
        "endpoint",
        "ingestion_time",
        "record_id",
        "record_hash",
        "batch_info",
        "data",
    }
    assert rec["endpoint"] == "/markets"
    assert rec["batch_info"] == {"record_index": 0, "batch_number": 0, "total_records": 2_500}
    assert rec["record_id"] == rec["data"]["ticker"] == sim.universe.market_ticker(0)
    assert len(rec["ingestion_time"]) == 15 and rec["ingestion_time"][8] == "_"
    # record_index counts across the endpoint; a batch spans the venue's pages (events: 200).
    second = [msgspec.json.decode(p.read_bytes()) for p in sorted(folders[1].iterdir())]
    assert sorted(r["batch_info"]["record_index"] for r in second) == list(range(1000, 2000))
    assert {r["batch_info"]["batch_number"] for r in second} == {1}
    events = list((archive / "events" / "batch_0000").iterdir())
    assert len(events) == expected_counts(sim)["events"] == 313
    (written_path,) = archive.glob("atomic_session_summary_*.json")
    written = json.loads(written_path.read_text())
    assert written["complete"] and written["endpoints"]["markets"]["files"] == 2_500
    assert written["endpoints"]["events"]["status"] == "success"
    assert written["success_rate"] == 100.0 and written["failed_endpoints"] == []
    assert 0 < written["request_success_rate"] < 100.0  # the 3 failed page requests count
    log_lines = [
        json.loads(line) for line in (archive / "atomic_ingestion.log").read_text().splitlines()
    ]
    assert {
        "session_start",
        "page",
        "batch",
        "network_recovered",
        "endpoint_complete",
        "session_end",
    } <= {line["event"] for line in log_lines}
    assert (archive / ".complete").exists()


async def test_a_503_storm_is_ridden_out_and_the_summary_reports_the_success_rate(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=5, markets=3_000, anchor_ts=ANCHOR, trading_markets=0) as sim:
        assert isinstance(sim, Simulator)
        sim.faults = Faults(http_5xx_rate=0.5)
        cfg = kalshi_settings(sim.urls()["rest"], **{"venues.kalshi.retry.attempts": 2})
        summary = await run_archive(cfg, out_dir=tmp_path, layout="jsonl", fresh=True,
                                    show_progress=False)  # fmt: skip
        served_503 = sum(e["kind"] == "http_5xx" for e in sim.truth.events)
    assert summary.ok and summary.success_rate == 100.0
    assert summary.records == sum(expected_counts(sim).values())
    failed = sum(e.failed_attempts for e in summary.endpoints.values())
    pages = sum(e.pages for e in summary.endpoints.values())
    assert failed == served_503 > 0
    assert summary.request_success_rate == round(100 * pages / (pages + failed), 2)
    records = jsonl_records(summary.archive_dir)
    assert len(records) == len(set(records)) == summary.records


async def test_the_markets_endpoint_covers_the_live_and_the_historical_tier(
    tmp_path: Path,
) -> None:
    cutoff = ANCHOR - 10 * 86_400
    sim = Simulator(seed=6, markets=1_600, anchor_ts=ANCHOR, trading_markets=0,
                    historical_cutoff_ts=cutoff)  # fmt: skip
    async with sim:
        summary = await run_archive(kalshi_settings(sim.urls()["rest"]), out_dir=tmp_path,
                                    layout="jsonl", fresh=True, endpoints=("markets",),
                                    show_progress=False)  # fmt: skip
    old = {c.ticker for c in map(sim.universe.core, range(1_600)) if sim.historical(c)}
    assert old and len(old) < 1_600
    lines = [
        msgspec.json.decode(line)
        for path in sorted(summary.archive_dir.glob("markets/batch_*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    assert [r["batch_info"]["record_index"] for r in lines] == list(range(1_600))
    assert {r["batch_info"]["total_records"] for r in lines} == {1_600}
    by_tier = {r["record_id"]: r["endpoint"] for r in lines}
    assert {t for t, e in by_tier.items() if e == "/historical/markets"} == old
    assert {e for t, e in by_tier.items() if t not in old} == {"/markets"}
    assert sim.requests["/trade-api/v2/historical/markets"] >= 1


async def test_rerun_after_completion_starts_a_new_archive(tmp_path: Path) -> None:
    async with Simulator(seed=2, markets=50, anchor_ts=ANCHOR, trading_markets=0) as sim:
        assert isinstance(sim, Simulator)
        cfg = kalshi_settings(sim.urls()["rest"])
        first = await run_archive(
            cfg, out_dir=tmp_path, layout="jsonl", fresh=False, show_progress=False
        )
        again = await run_archive(
            cfg, out_dir=tmp_path, layout="jsonl", fresh=False, show_progress=False
        )
    assert first.ok and again.ok and not again.resumed
    assert again.archive_dir != first.archive_dir and again.records == first.records


async def test_parquet_layout_and_extended_recovery_over_an_outage(tmp_path: Path) -> None:
    sim = Simulator(seed=4, markets=6_000, anchor_ts=ANCHOR, trading_markets=0)
    await sim.start()
    port = sim.port
    task = asyncio.create_task(
        run_archive(
            kalshi_settings(sim.urls()["rest"]),
            out_dir=tmp_path,
            layout="parquet",
            fresh=True,
            endpoints=("markets",),
            show_progress=False,
        )
    )
    while pages_logged(tmp_path) < 2:  # the outage strikes in the middle of the pagination
        assert not task.done()
        await asyncio.sleep(0.005)
    await sim.stop()  # the venue disappears: connections are refused
    await asyncio.sleep(0.8)
    await sim.start(port=port)
    summary = await asyncio.wait_for(task, 60)
    await sim.stop()
    markets = summary.endpoints["markets"]
    assert summary.ok and markets.records == 6_000
    assert markets.network_incidents >= 1 and markets.recoveries >= 1
    tables = [pq.read_table(p) for p in sorted(summary.archive_dir.glob("markets/batch_*.parquet"))]
    ids = [i for t in tables for i in t.column("record_id").to_pylist()]
    assert len(ids) == len(set(ids)) == 6_000
    assert json.loads(tables[0].column("data")[0].as_py())["ticker"] == ids[0]
