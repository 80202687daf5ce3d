"""The service's event loop: uvloop when installed, asyncio when asked for."""

from __future__ import annotations

import asyncio

import pytest

from venuefeed import loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_runs_the_service_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert loop.run(_loop_module()).startswith("uvloop")


def test_asyncio_when_uvloop_is_not_wanted() -> None:
    assert loop.run(_loop_module(), uvloop_wanted=False).startswith("asyncio")
