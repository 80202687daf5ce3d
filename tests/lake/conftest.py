"""Shared by the replay tests: one recorded live run (recording it takes seconds), and the
command line run in this process (a subprocess costs seconds of imports)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator
from unittest import mock

import pytest
import structlog

from venuefeed import log as venuefeed_log
from venuefeed.cli import main

from .recorded import LiveRun, record_live_run

Cli = Callable[..., int]


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    return asyncio.run(record_live_run(tmp_path_factory.mktemp("live")))


@pytest.fixture
def cli() -> Iterator[Cli]:
    """``venuefeed ARGS`` in this process; returns the exit code.

    The command configures logging onto the (captured) stderr of the moment:
    the configuration before it is put back, so later tests do not log into a
    closed capture.
    """
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level, ours = root.handlers[:], root.level, venuefeed_log._handler

    def run(*args: str) -> int:
        with mock.patch.object(sys, "argv", ["venuefeed", *args]), \
                pytest.raises(SystemExit) as done:  # fmt: skip
            main()
        return int(done.value.code or 0)

    try:
        yield run
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        venuefeed_log._handler = ours
