"""The CLI: verbs that edit or report on the database, and how every verb meets a mistake."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from venuefeed.config import VenueSettings, load_config
from venuefeed.demo import demo_settings
from venuefeed.models import DataGap, Trade
from venuefeed.pipeline.whales import whale_store
from venuefeed.report import quality_report, storage_summary
from venuefeed.service import Service
from venuefeed.sinks.sqlite import SqliteStore
from venuefeed.venues.kalshi import Adapter as Kalshi


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", "--db", str(db), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_whales_add_import_disable_list(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    assert cli(db, "whales", "add", "0xAAA111", "--pseudonym", "Big Al").returncode == 0
    file = tmp_path / "whales.yaml"
    file.write_text(
        "whales:\n  - address: '0xBBB222'\n    tier: A\n    cluster: fund-x\n    famous: true\n"
        "  - address: '0xCCC333'\n    win_rate: 0.61\n"
    )
    assert "imported 2 whale(s)" in cli(db, "whales", "import", str(file)).stdout
    assert cli(db, "whales", "disable", "0xccc333").returncode == 0
    assert cli(db, "whales", "disable", "0xnobody").returncode == 1
    listing = cli(db, "whales", "list").stdout
    assert "0xaaa111" in listing and "Big Al" in listing and "0xbbb222" in listing
    store = whale_store(db)
    rows = {w["address"]: w for w in store.all()}
    assert rows["0xbbb222"]["cluster_name"] == "fund-x" and rows["0xbbb222"]["famous"] == 1
    assert rows["0xccc333"]["win_rate"] == "0.61" and rows["0xccc333"]["enabled"] == 0
    assert sorted(store.enabled_addresses()) == ["0xaaa111", "0xbbb222"]


def test_the_seed_whale_records_import_as_they_are(tmp_path: Path) -> None:
    """Seed 001's FAMOUS_WHALES entry, keys and all, as a user would paste it (as JSON)."""
    db = tmp_path / "seed.db"
    file = tmp_path / "famous.json"
    file.write_text(json.dumps([{
        "address": "0xYOUR_WHALE_ADDRESS", "pseudonym": "WhaleName", "tier": "MEGA",
        "notes": "Description", "cluster_name": "Optional Cluster", "is_famous": True,
        "estimated_pnl": 1000000, "primary_category": "politics", "win_rate": 65.0,
        "total_volume": 2000000, "is_confirmed": True, "is_copying_enabled": True,
    }]))  # fmt: skip
    result = cli(db, "whales", "import", str(file))
    assert result.returncode == 0, result.stderr
    [row] = whale_store(db).all()
    assert (row["famous"], row["confirmed"], row["copying_enabled"]) == (1, 1, 1)
    assert (row["tier"], row["primary_category"], row["win_rate"]) == ("MEGA", "politics", "65")


def test_bad_whale_file_is_a_clear_error(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("- tier: A\n")
    result = cli(tmp_path / "w.db", "whales", "import", str(file))
    assert result.returncode == 2 and "entry 1 has no address" in result.stderr


async def test_service_picks_up_a_new_whale_without_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    settings = load_config(
        overrides={
            "storage.sqlite_path": db,
            "venues.polymarket.enabled": False,
            "venues.kalshi.enabled": False,
        },
        environ={},
    )
    service = Service(settings)
    await service.start()
    try:
        assert service.pipeline.whales.addresses == frozenset()
        whale_store(db).upsert("0xDDD444")
        for _ in range(140):  # refreshed every 5 s
            if "0xddd444" in service.pipeline.whales.addresses:
                break
            await asyncio.sleep(0.05)
        assert "0xddd444" in service.pipeline.whales.addresses
    finally:
        await service.stop()


async def test_quality_report(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    now = time.time_ns()
    store = SqliteStore(db)
    await store.start()
    await store.write([
        Trade(venue="kalshi", instrument="K1", ts_venue=now, ts_recv=now, trade_id="1",
              price="0.5", size="1"),
        DataGap(venue="kalshi", instrument="K1", ts_venue=0, ts_recv=now, cause="disconnect",
                start=now - 3_600_000_000_000, end=now - 3_240_000_000_000, healed=True),
        DataGap(venue="kalshi", instrument="K1", ts_venue=0, ts_recv=now, cause="sequence_gap",
                start=now - 60_000_000_000, end=now - 30_000_000_000),
    ])  # fmt: skip
    await store.close()
    out = cli(db, "quality", "--window", "24", "--json").stdout
    rows = {row["venue"]: row for row in map(json.loads, out.splitlines())}
    # Only the open gap (30 s) leaves data missing: the healed window was recovered.
    # 30 s over 24 h for one instrument -> 99.965 % coverage; 1 open, 1 healed.
    kalshi = rows["kalshi"]
    assert (kalshi["instruments"], kalshi["trades"], kalshi["gaps_open"]) == (1, 1, 1)
    assert (kalshi["gaps_healed"], kalshi["coverage_pct"]) == (1, 99.965)
    # An enabled venue without data is listed with nothing claimed, and why.
    assert rows["polymarket"]["coverage_pct"] is None
    assert "no data" in rows["polymarket"]["note"]


async def test_quality_report_says_why_a_venue_has_no_data(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    store = SqliteStore(db)
    await store.start()
    await store.close()
    report = {
        q.venue: q
        for q in quality_report(
            db, expected={"kalshi": Kalshi.why_no_data(VenueSettings(enabled=True))}
        )
    }
    assert report["kalshi"].coverage_pct is None
    assert report["kalshi"].note.startswith("no credentials")


# -- operator mistakes: one line on stderr naming the problem, exit code 2, nothing started --

BOMB = (
    "venues:\n  polymarket:\n    options:\n      a: &a [lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"      {n}: &{n} [{', '.join([f'*{p}'] * 8)}]\n"
        for p, n in zip("abcdefg", "bcdefgh", strict=True)
    )
)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("VENUEFEED_") and k != "DATABASE_URL"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", *args],
        capture_output=True, text=True, timeout=60, env={**clean, **(env or {})},
    )  # fmt: skip


def assert_refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_config_file_mistakes(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff" * 20)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    cases = {
        binary: "is not UTF-8 text",
        bomb: "aliases expand to more than 100,000 values",
        tmp_path / "absent.yaml": "cannot read config file",
    }
    for path, expected in cases.items():
        assert_refused(run_cli("--config", str(path), "config", "show"), expected)


def test_run_refuses_before_ingestion_starts(tmp_path: Path, taken_port: int) -> None:
    db = tmp_path / "data" / "run.db"
    cases = [
        ({"VENUEFEED_API__PORT": str(taken_port)},
         [f"port {taken_port} is in use: set api.port"]),
        ({"VENUEFEED_API__HOST": "0.0.0.0"}, ["non-loopback address '0.0.0.0' without a token"]),
        ({"VENUEFEED_STORAGE__SINKS": '["sqlite", "postgres"]'},
         ["PostgreSQL needs storage.database_url"]),
        ({"VENUEFEED_STORAGE__SINKS": '["nats"]'}, ["the nats sink needs bus.nats_url"]),
        ({"VENUEFEED_STORAGE__SINKS": '["kafka"]'}, ["the kafka sink needs bus.kafka_bootstrap"]),
    ]  # fmt: skip
    for env, expected in cases:
        assert_refused(run_cli("--db", str(db), "run", env=env), *expected)
        assert not db.exists(), env  # the service never started: it would create the database


def test_unusable_database_paths(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"definitely not sqlite" * 10)
    under_file = str(a_file / "x.db")
    cases = [
        (["--db", under_file, "run"], f"{a_file} is not a directory"),
        (["--db", under_file, "whales", "add", "0xabc"], f"{a_file} is not a directory"),
        (["--db", under_file, "db", "migrate"], f"{a_file} is not a directory"),
        (["--db", str(tmp_path), "db", "status"], "is a directory, not a database file"),
        (["--db", str(garbage), "quality"], "is not a SQLite database"),
        (["--db", str(garbage), "whales", "list"], "is not a SQLite database"),
        (["--db", str(garbage), "export", "--table", "trades", "--out", str(tmp_path / "e")],
         "is not a SQLite database"),
    ]  # fmt: skip
    for args, expected in cases:
        assert_refused(run_cli(*args), expected)
    status = run_cli("--db", str(garbage), "status", env={"VENUEFEED_API__PORT": "9"})
    assert_refused(status, "is not a SQLite database")


def test_venue_test_with_a_bad_kalshi_key(tmp_path: Path) -> None:
    garbage = tmp_path / "key.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    key = {"VENUEFEED_VENUES__KALSHI__CREDENTIALS__API_KEY_ID": "key-id-123456"}
    cases = [(garbage, "is not a readable unencrypted PEM key"),
             (tmp_path / "absent.pem", "cannot read kalshi private key file")]  # fmt: skip
    for path, expected in cases:
        env = {**key, "VENUEFEED_VENUES__KALSHI__CREDENTIALS__PRIVATE_KEY_PATH": str(path)}
        line = assert_refused(run_cli("--db", str(tmp_path / "t.db"), "test", "--venue", "kalshi",
                                      env=env), "venues.kalshi: ", expected)  # fmt: skip
        assert "key-id-123456" not in line
    assert_refused(run_cli("test", "--venue", "nasdaq"), "unknown venue 'nasdaq'")


def test_every_verb_answers_a_mistake_in_one_line(tmp_path: Path, taken_port: int) -> None:
    db = str(tmp_path / "v.db")
    bomb = tmp_path / "whales.yaml"
    bomb.write_text(BOMB.replace("venues:", "whales:"))
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        (["demo", "--port", str(taken_port), "--duration", "1"],
         f"port {taken_port} is in use: pass --port"),
        (["sim", "polygon", "--port", str(taken_port)],
         f"port {taken_port} is in use: pass --port"),
        (["sim", "polygon", "--faults", "bogus=1"], "unknown fault 'bogus'"),
        (["sim", "nasdaq"], "unknown venue 'nasdaq'"),
        (["export", "--from", "postgres", "--table", "trades"], "PostgreSQL needs"),
        (["export", "--table", "nope"], "cannot export 'nope'"),
        (["archive", "kalshi", "--out", str(a_file / "x")], f"{a_file} is not a directory"),
        (["archive", "kalshi", "--endpoint", "bogus"], "unknown ['bogus']"),
        (["whales", "import", str(bomb)], "a YAML alias bomb"),
        (["whales", "import", str(tmp_path / "absent.yaml")], "cannot read whale file"),
        (["discover", "--venue", "binance"], "venue 'binance' is not enabled"),
        (["ingest", "--venue", "nasdaq"], "unknown venue 'nasdaq'"),
        (["backfill", "--venue", "binance", "--symbol", "X", "--from", "2024-01-01",
          "--interval", "7q"], "interval '7q'"),
        (["continuous", "--interval", "0"], "--interval"),
        (["run", "--bogus"], "No such option: --bogus"),
    ]  # fmt: skip
    for args, expected in cases:
        assert_refused(run_cli("--db", db, *args), expected)


def test_demo_port_follows_the_documented_precedence(tmp_path: Path, taken_port: int) -> None:
    """File < environment < flag: the flag's default no longer overrides the other two."""
    config = tmp_path / "cfg.yaml"
    config.write_text(f"api:\n  port: {taken_port}\n")
    from_file = run_cli("--config", str(config), "--db", str(tmp_path / "d.db"), "demo")
    assert_refused(from_file, f"port {taken_port} is in use")
    from_env = run_cli("--db", str(tmp_path / "d.db"), "demo",
                       env={"VENUEFEED_API__PORT": str(taken_port)})  # fmt: skip
    assert_refused(from_env, f"port {taken_port} is in use")
    settings = demo_settings(config, {}, tmp_path / "d.db", 0)
    assert settings.api.port == 0  # --port wins


def test_venue_test_mistakes_are_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    no_key = run_cli("--db", db, "test", "--venue", "polygon")
    assert_refused(no_key, "polygon: no API key; set venues.polygon.credentials")
    assert_refused(run_cli("--db", db, "test", "--venue-name", "nasdaq"),  # seed 000's flag
                   "unknown venue 'nasdaq'")  # fmt: skip


def test_demo_refuses_an_exposed_api_without_a_token_in_one_line(tmp_path: Path) -> None:
    exposed = run_cli("--db", str(tmp_path / "d.db"), "demo", "--duration", "1",
                      env={"VENUEFEED_API__HOST": "0.0.0.0"})  # fmt: skip
    assert_refused(exposed, "non-loopback address '0.0.0.0' without a token")


def test_secrets_never_reach_an_error_line(tmp_path: Path) -> None:
    password = "pw-Hunter2-secret"
    cases = [
        {"VENUEFEED_STORAGE__DATABASE_URL": f'["postgresql://app:{password}@db/x"]'},
        {"VENUEFEED_STORAGE__SINKS": '["postgres"]',
         "VENUEFEED_STORAGE__DATABASE_URL": f"postgress://app:{password}@db/x"},
        {"VENUEFEED_STORAGE__SINKS": '["postgres"]',
         "DATABASE_URL": f"mysql://app:{password}@db/x"},
        {"VENUEFEED_BUS__NATS_URL": f'{{"url": "nats://app:{password}@bus"}}'},
    ]  # fmt: skip
    for env in cases:
        result = run_cli("--db", str(tmp_path / "s.db"), "run", env=env)
        line = assert_refused(result)
        assert password not in result.stderr + result.stdout, line


def test_piped_demo_output_arrives_while_it_runs(tmp_path: Path) -> None:
    """A live table renders only at exit when stdout is not a terminal: plain lines instead."""
    cmd = [sys.executable, "-m", "venuefeed.cli", "--db", str(tmp_path / "demo.db"), "demo",
           "--port", "0", "--duration", "60"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 40
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            seen.append(line)
            if "events/s" in line:
                break
        assert any("events/s" in line for line in seen), seen[-5:]
        assert proc.poll() is None  # still running: the line came while it ran
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


async def test_storage_summary_shows_times_a_person_reads(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SqliteStore(db)
    await store.start()
    at = 1_796_030_280_123_456_789
    await store.write([Trade(venue="kalshi", instrument="K", ts_venue=at, ts_recv=at,
                             trade_id="1", price="0.5", size="1")])  # fmt: skip
    await store.close()
    newest = storage_summary(db)["newest_trade"]["kalshi"]
    assert newest["at"] == "2026-11-30T09:18:00.123Z" and newest["age_s"] > 0
