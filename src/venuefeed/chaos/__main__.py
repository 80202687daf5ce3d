"""``python -m venuefeed.chaos [--scenario NAME ...] [--quick] [--json] [--keep DIR]``.

Exit status: 0 when no scenario lost or duplicated a trade, 1 otherwise, 2 for
a usage mistake. Every other failed criterion (books, unhealed gaps, exit
codes, a status that stayed healthy on a full disk) is printed, named, and
does not change the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from venuefeed.chaos.report import as_json, table
from venuefeed.chaos.run import VENUES, Durations, ScenarioResult
from venuefeed.chaos.scenarios import SCENARIOS, Environment, run_scenario


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m venuefeed.chaos", description=__doc__)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument(
        "--venue",
        action="append",
        choices=VENUES,
        help="simulate only this venue (repeatable; default: all four)",
    )
    parser.add_argument("--quick", action="store_true", help="seconds-long phases (make test)")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the scenarios at the same time (each has its own processes)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--keep", type=Path, help="keep logs, configs and truth files here")
    parser.add_argument("--postgres", default=Environment.postgres_dsn, help="PostgreSQL DSN")
    parser.add_argument("--nats", default=Environment.nats_url, help="NATS URL")
    return parser.parse_args(argv)  # fmt: skip


async def run(
    scenarios: tuple[str, ...], venues: tuple[str, ...], quick: bool, folder: Path,
    env: Environment, parallel: bool = False,
) -> list[ScenarioResult]:  # fmt: skip
    durations = Durations.quick() if quick else Durations.full()
    if parallel:
        return list(await asyncio.gather(
            *(run_scenario(name, folder, venues, durations, env) for name in scenarios)
        ))  # fmt: skip
    results = []
    for name in scenarios:
        print(f"chaos: {name} ...", file=sys.stderr, flush=True)
        results.append(await run_scenario(name, folder, venues, durations, env))
    return results


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    scenarios = tuple(args.scenario or SCENARIOS)
    venues = tuple(args.venue or VENUES)
    env = Environment(postgres_dsn=args.postgres, nats_url=args.nats)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        folder = args.keep
        results = asyncio.run(run(scenarios, venues, args.quick, folder, env, args.parallel))
    else:
        with tempfile.TemporaryDirectory(prefix="venuefeed-chaos-") as tmp:
            folder = Path(tmp)
            results = asyncio.run(run(scenarios, venues, args.quick, folder, env, args.parallel))
    if args.json:
        print(json.dumps(as_json(results), indent=2))
    else:
        print(table(results))
    lost = any(r.missing or r.duplicated for s in results for r in s.results)
    errors = any(s.error for s in results)
    return 1 if lost or errors else 0


if __name__ == "__main__":
    sys.exit(main())
