"""Soak: does a long run at a steady rate keep its memory and latency flat?

Runs the way an operator does: a ``venuefeed sim polymarket`` and a ``venuefeed
sim kalshi`` process (each at ``--rate`` events/s) and a ``venuefeed run``
process ingesting from them into SQLite, with the API on a loopback port. Every
``--every`` seconds it samples the service's resident memory (``/proc``), the
trade latency (``/api/metrics``: frame received -> row durable, over the
recent trades), throughput and health, and prints one row. At the end it
prints the RSS slope in MB/min over the whole run and over the last half (the
first minutes include warm-up: caches, SQLite page cache, discovery) and a
verdict on the last-half slope.

Figures only, never a pass/fail test. Bounded: at most 180 minutes and 5,000
events/s per venue; everything listens on 127.0.0.1 and is stopped at the end
(or on Ctrl+C). ``python bench/soak.py --help``; ``make soak`` runs 10 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venuefeed.venues.kalshi.auth import generate_test_keypair
from venuefeed.venues.polymarket.sim import DEFAULT_WHALES

MAX_MINUTES = 180.0
MAX_RATE = 5000.0
FLAT_MB_PER_MIN = 0.25
"""Below this last-half slope the run is called flat (1 hour would add < 15 MB)."""
KALSHI_KEY_ID = "soak-key"


@dataclass
class Sample:
    t_min: float
    rss_mb: float
    sims_rss_mb: float
    events_per_s: float
    stored: int
    p50_ms: float | None
    p99_ms: float | None
    healthy: bool
    problems: list[str]


class Proc:
    """A ``venuefeed`` subprocess; its stdout is read for the lines announcing addresses."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log

    @classmethod
    async def start(cls, name: str, workdir: Path, *args: str, env: dict[str, str]) -> Proc:
        log = workdir / f"{name}.stderr"
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "venuefeed.cli", *args,
                stdout=asyncio.subprocess.PIPE, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **env},
            )  # fmt: skip
        return cls(name, proc, log)

    async def read_urls(self, first: str, within: float = 60.0) -> dict[str, str]:
        """Lines ``  name: url`` printed after the line matching ``first`` (other
        keys of the client configuration it prints, such as ``enabled``, are not URLs)."""
        assert self.proc.stdout is not None
        urls: dict[str, str] = {}
        seen_first = False
        async with asyncio.timeout(within):
            while not seen_first:
                seen_first = bool(re.search(first, await self._line()))
        while True:  # the url lines follow at once; a pause means they are all out
            try:
                line = await asyncio.wait_for(self._line(), 1.0)
            except TimeoutError:
                return urls
            match = re.match(r"\s+(\w+): ((?:https?|wss?)://\S+)", line)
            if match:
                urls[match[1]] = match[2]

    async def wait_for(self, pattern: str, within: float = 60.0) -> re.Match[str]:
        async with asyncio.timeout(within):
            while True:
                match = re.search(pattern, await self._line())
                if match:
                    return match

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        line = (await self.proc.stdout.readline()).decode()
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{tail}")
        return line

    async def drain_stdout(self) -> None:
        """Keep reading so a chatty process never blocks on a full pipe."""
        assert self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    def rss_mb(self) -> float:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return float("nan")
        match = re.search(r"VmRSS:\s+(\d+) kB", text)
        return int(match[1]) / 1024 if match else float("nan")

    async def stop(self) -> int | None:
        """SIGTERM (the service flushes and exits), then SIGKILL after 30 s."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


def get_json(url: str) -> dict[str, Any]:
    """GET a JSON body; a 503 (unhealthy) still carries the status body."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
    return body


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 with fewer than two."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


async def soak(args: argparse.Namespace, workdir: Path) -> list[Sample]:
    db = workdir / "soak.db"
    rate = str(args.rate)
    quiet = {"VENUEFEED_LOGGING__LEVEL": "WARNING"}
    private_pem, _public = generate_test_keypair()  # the Kalshi simulator verifies it
    key_file = workdir / "kalshi-test-key.pem"
    key_file.write_bytes(private_pem)
    key_file.chmod(0o600)
    sims = [
        await Proc.start("sim-polymarket", workdir, "sim", "polymarket", "--port", "0",
                         "--seed", "7", "--events-per-second", rate, env=quiet),
        await Proc.start("sim-kalshi", workdir, "sim", "kalshi", "--port", "0", "--seed", "8",
                         "--events-per-second", rate, "--set", f"key_file={key_file}", env=quiet),
    ]  # fmt: skip
    service: Proc | None = None
    samples: list[Sample] = []
    try:
        pm_urls = await sims[0].read_urls("polymarket simulator on")
        kalshi_urls = await sims[1].read_urls("kalshi simulator on")
        env = {
            **quiet,
            "VENUEFEED_STORAGE__SQLITE_PATH": str(db),
            "VENUEFEED_API__PORT": "0",
            "VENUEFEED_WHALES__POLL_INTERVAL_SECONDS": "5",
            "VENUEFEED_VENUES__POLYMARKET__URLS": json.dumps(pm_urls),
            "VENUEFEED_VENUES__KALSHI__URLS": json.dumps(kalshi_urls),
            "VENUEFEED_VENUES__KALSHI__CREDENTIALS__API_KEY_ID": KALSHI_KEY_ID,
            "VENUEFEED_VENUES__KALSHI__CREDENTIALS__PRIVATE_KEY": private_pem.decode(),
        }
        for wallet in DEFAULT_WHALES:  # as `venuefeed demo` does: the wallet poller runs too
            whale = await Proc.start("whales", workdir, "whales", "add", wallet, env=env)
            await whale.proc.wait()
        service = await Proc.start("service", workdir, "run", env=env)
        match = await service.wait_for(r"API and dashboard on (http://\S+?)/?$")
        api = match[1]
        drains = [asyncio.create_task(p.drain_stdout()) for p in (*sims, service)]
        print(f"workdir {workdir}; service pid {service.proc.pid}; API {api}")
        print(f"{args.rate:g} events/s per venue (polymarket, kalshi) for {args.minutes:g} min, "
              f"a sample every {args.every:g} s")  # fmt: skip
        print(f"{'min':>6} {'rss MB':>8} {'sims MB':>8} {'ev/s':>7} {'stored':>10} "
              f"{'p50 ms':>7} {'p99 ms':>7}  health")  # fmt: skip
        unanswered = 0
        start = time.monotonic()
        end = start + args.minutes * 60
        while time.monotonic() < end:
            await asyncio.sleep(min(args.every, max(0.0, end - time.monotonic())))
            if service.proc.returncode is not None:
                raise RuntimeError(f"the service exited with {service.proc.returncode}")
            try:
                status, metrics = await asyncio.to_thread(
                    lambda: (get_json(api + "/api/status"), get_json(api + "/api/metrics"))
                )
            except (TimeoutError, OSError) as exc:  # URLError is an OSError
                # A slow answer is a finding, not the end of the run: say so and go on.
                unanswered += 1
                print(f"{(time.monotonic() - start) / 60:6.1f} {service.rss_mb():8.1f}"
                      f"  the API did not answer: {exc}", flush=True)  # fmt: skip
                continue
            latency = metrics.get("latency_ms") or {}
            sample = Sample(
                t_min=(time.monotonic() - start) / 60,
                rss_mb=service.rss_mb(),
                sims_rss_mb=sum(s.rss_mb() for s in sims),
                events_per_s=metrics.get("events_per_s", 0.0),
                stored=status["details"]["writer"]["stored"],
                p50_ms=latency.get("p50"),
                p99_ms=latency.get("p99"),
                healthy=bool(status.get("healthy")),
                problems=list(status.get("problems", [])),
            )
            samples.append(sample)
            health = "ok" if sample.healthy else "UNHEALTHY: " + "; ".join(sample.problems)
            print(f"{sample.t_min:6.1f} {sample.rss_mb:8.1f} {sample.sims_rss_mb:8.1f} "
                  f"{sample.events_per_s:7.0f} {sample.stored:10d} {fmt_ms(sample.p50_ms):>7} "
                  f"{fmt_ms(sample.p99_ms):>7}  {health}", flush=True)  # fmt: skip
        code = await service.stop()
        print(f"service stopped with exit code {code}")
        print(f"samples the API did not answer: {unanswered}")
        for task in drains:
            task.cancel()
    finally:
        if service is not None:
            await service.stop()
        for sim in sims:
            await sim.stop()
    report(samples, db)
    return samples


def report(samples: list[Sample], db: Path) -> None:
    if not samples:
        print("no samples")
        return
    points = [(s.t_min, s.rss_mb) for s in samples]
    half = samples[-1].t_min / 2
    last_half = [(t, r) for t, r in points if t >= half]
    whole, tail = slope(points), slope(last_half)
    p99s = [s.p99_ms for s in samples if s.p99_ms is not None]
    sims = [(s.t_min, s.sims_rss_mb) for s in samples]
    print()
    print(f"RSS {samples[0].rss_mb:.1f} -> {samples[-1].rss_mb:.1f} MB "
          f"(max {max(r for _, r in points):.1f})")  # fmt: skip
    print(f"RSS slope: whole run {whole:+.2f} MB/min, last half {tail:+.2f} MB/min")
    print(f"simulators' RSS slope (not the service): {slope(sims):+.2f} MB/min")
    if p99s:
        print(f"p99 latency over the samples: {min(p99s):.1f} - {max(p99s):.1f} ms")
    unhealthy = sum(1 for s in samples if not s.healthy)
    print(f"unhealthy samples: {unhealthy} of {len(samples)}")
    with contextlib.suppress(sqlite3.Error):
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT venue, count(*) FROM trades GROUP BY venue").fetchall()
        print("trades stored:", ", ".join(f"{venue} {n}" for venue, n in rows))
    flat = abs(tail) < FLAT_MB_PER_MIN
    verdict = "FLAT" if flat else "GROWING"
    print(f"verdict: {verdict} (last-half slope {tail:+.2f} MB/min; flat means "
          f"|slope| < {FLAT_MB_PER_MIN} MB/min)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--rate", type=float, default=300.0, help="events/s per simulator")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--workdir", help="keep the database and logs here (default: a temp dir)")
    args = parser.parse_args()
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES:g}]")
    if not 0 < args.rate <= MAX_RATE:
        parser.error(f"--rate must be in (0, {MAX_RATE:g}]")
    if not 1 <= args.every <= 600:
        parser.error("--every must be between 1 and 600 seconds")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {sys.platform}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="venuefeed-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(soak(args, workdir))


if __name__ == "__main__":
    main()
