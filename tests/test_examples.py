"""The README's examples run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_library_example_runs_against_the_simulator() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "library.py")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("best bids: [('") for line in lines)
    assert sum(line.startswith(("trade ", "book change")) for line in lines) >= 1
