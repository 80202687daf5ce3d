"""Fixtures shared by the sink tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import IN_CI


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of our own, unmounted whatever happens."""
    if os.geteuid() != 0:
        reason = "filling a real disk needs root to mount a tmpfs (CI runs as root)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
