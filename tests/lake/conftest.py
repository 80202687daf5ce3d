"""One recorded live run shared by the replay tests (recording it takes seconds)."""

from __future__ import annotations

import asyncio

import pytest

from .recorded import LiveRun, record_live_run


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    return asyncio.run(record_live_run(tmp_path_factory.mktemp("live")))
