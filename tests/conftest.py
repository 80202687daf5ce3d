"""Shared test helpers.

Tests that need a real service (PostgreSQL, NATS) or Debian's chromium use
:func:`require_service` / :func:`require_browser`: on a developer machine
without them the test is skipped with the reason; in CI (``CI=true``) a missing
dependency fails the test, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

CAPTURES = Path(__file__).resolve().parent / "captures"
"""Recorded venue payloads, in the repository with their provenance (captures/SOURCES.md)."""
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the conformance golden files (tests/captures/*/golden) from the parsers; "
        "review the diff before committing",
    )


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it: see .ci/run)")
    pytest.skip(reason)


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (in CI) unless ``host:port`` accepts connections."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        _missing(f"{name} is not reachable at {host}:{port}: {exc}")


def require_browser() -> str:
    """Path of Debian's chromium, or skip/fail."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        _missing("Debian's chromium is not installed (apt-get install chromium)")
        raise AssertionError("unreachable")
    return path


@pytest.fixture
def captures() -> Path:
    """The recorded venue payloads (``tests/captures``), one folder per venue."""
    return CAPTURES


@pytest.fixture
def chromium() -> str:
    """Debian's chromium for browser tests (skipped locally, failed in CI, when missing)."""
    return require_browser()
