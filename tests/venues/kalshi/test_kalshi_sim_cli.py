"""``venuefeed sim kalshi`` on its own prints what a client needs, and that is enough to sign."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from venuefeed.config import load_config
from venuefeed.venues.kalshi import Adapter, Simulator
from venuefeed.venues.kalshi.auth import generate_test_keypair


async def read_client_config(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The YAML block printed after "point a client at it" (until the output pauses)."""
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not any("point a client at it" in line for line in lines):
            line = (await proc.stdout.readline()).decode()
            assert line, "the simulator ended:\n" + "".join(lines)
            lines.append(line)
    block: list[str] = []
    while True:
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 2)).decode()
        except TimeoutError:
            break
        if not line.startswith("  "):
            break
        block.append(line)
    loaded: dict[str, Any] = yaml.safe_load("".join(block))
    return loaded


def key_file(path: Path) -> tuple[str, int]:
    """The key file's text and permission bits (``("", 0)`` once it is gone)."""
    if not path.exists():
        return "", 0
    return path.read_text(), path.stat().st_mode


async def test_the_standalone_simulator_prints_a_key_that_signs() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "venuefeed.cli", "sim", "kalshi", "--set", "markets=40",
        "--set", "trading_markets=2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"},
    )  # fmt: skip
    try:
        section = (await read_client_config(proc))["venues"]["kalshi"]
        credentials = section["credentials"]
        pem = Path(credentials["private_key_path"])
        text, mode = key_file(pem)
        assert credentials["api_key_id"] and text.startswith("-----BEGIN PRIVATE KEY")
        assert mode & 0o077 == 0  # readable by its owner only
        cfg = load_config(
            overrides={
                "venues.kalshi.urls.rest": section["urls"]["rest"],
                "venues.kalshi.urls.ws": section["urls"]["ws"],
                **{f"venues.kalshi.credentials.{k}": v for k, v in credentials.items()},
            },
            environ={},
        )
        async with Adapter(cfg.venues["kalshi"], cfg) as adapter:
            result = await adapter.check()  # a signed portfolio call the simulator verifies
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert result.reachable and result.authenticated, result.detail
    assert key_file(pem) == ("", 0)  # the key file goes with the simulator


def test_a_harness_key_file_becomes_the_simulators_test_key(tmp_path: Path) -> None:
    private_pem, _public = generate_test_keypair()
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(private_pem)
    sim = Simulator.standalone(key_file=str(key_file), markets=10)
    assert sim.client_credentials()["private_key"] == private_pem.decode()
    with pytest.raises(ValueError, match="key_file"):
        Simulator.standalone(key_file=str(tmp_path / "missing.pem"))
