"""A real service (SQLite in a temp dir) behind the real API served by uvicorn on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from venuefeed.api.server import ApiServer
from venuefeed.service import Service

from .apihelp import Stack, StackFactory, make_settings


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[StackFactory]:
    started: list[Stack] = []

    async def make(continuous: bool = False, **overrides: Any) -> Stack:
        settings = make_settings(tmp_path / str(len(started)), **overrides)
        service = Service(settings)
        await service.start(continuous=continuous)
        api = ApiServer(service, settings.api)
        await api.start()
        client = httpx.AsyncClient(base_url=api.url, timeout=10)
        stack = Stack(service, api, client)
        started.append(stack)
        return stack

    yield make
    for stack in reversed(started):
        await stack.client.aclose()
        await stack.api.stop()
        await stack.service.stop()


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()
