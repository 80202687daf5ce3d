"""`venuefeed sim` prints the configuration a client needs, credentials included (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import yaml


def test_the_printed_client_config_is_enough_to_connect(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENUEFEED_")}
    env.pop("POLYGON_API_KEY", None)
    env.pop("MASSIVE_API_KEY", None)
    sim = subprocess.Popen(
        [sys.executable, "-m", "venuefeed.cli", "sim", "polygon", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        _until(sim.stdout, "point a client at it")
        block = _until(sim.stdout, "api_key:")  # the credentials close the block
        config = yaml.safe_load("".join(block))
        polygon = config["venues"]["polygon"]
        assert polygon["credentials"]["api_key"]  # the simulator's key, not in our config
        path = tmp_path / "client.yaml"
        path.write_text(yaml.safe_dump(config))
        check = subprocess.run(
            [sys.executable, "-m", "venuefeed.cli", "--config", str(path), "--db",
             str(tmp_path / "c.db"), "test", "--venue", "polygon"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        sim.terminate()
        sim.wait(10)


def _until(stream: IO[str], marker: str, within: float = 60.0) -> list[str]:
    """Lines read up to and including the first one containing ``marker``."""
    lines: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        line = stream.readline()
        assert line, "simulator ended:\n" + "".join(lines)
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} within {within} s:\n" + "".join(lines))
