"""The chaos suite, seconds long: every scenario at once, against real processes.

Every trade the simulators printed while the service ran -- or was killed,
stalled, cut off or out of disk -- must be stored exactly once. The full
version (minutes long, the issue's numbers) is ``make chaos``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.sinks.helpers import NATS_URL, PG_URL
from venuefeed.chaos.__main__ import run
from venuefeed.chaos.report import failures, table
from venuefeed.chaos.scenarios import SCENARIOS, Environment


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_quick_chaos_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    env = Environment(postgres_dsn=PG_URL, nats_url=NATS_URL)
    results = await run(SCENARIOS, ("polymarket", "kalshi"), True, tmp_path, env, parallel=True)
    print(table(results))
    by_name = {s.name: s for s in results}
    for s in results:
        if s.skipped is not None and IN_CI and "root" not in s.skipped:
            pytest.fail(f"{s.name} skipped in CI: {s.skipped}")
        assert s.error is None, f"{s.name}: {s.error}"
    # The harness really did break things, and the venues really did trade meanwhile.
    assert by_name["restarts"].exit_codes.count(-9) >= 2
    faults = by_name["venue-faults"].results
    assert faults and all(r.connection_faults > 0 and r.emitted > 0 for r in faults)
    lost = [line for line in failures(results) if "missing" in line or "more than once" in line]
    assert not lost, "\n".join(lost)
