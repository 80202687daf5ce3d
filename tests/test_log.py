"""Secrets never reach the log output."""

from __future__ import annotations

import io
import subprocess
import sys

from venuefeed.log import configure, get_logger


def test_configured_secret_is_masked_everywhere() -> None:
    out = io.StringIO()
    configure("INFO", "json", stream=out, secrets=["sk-live-abcdef123456"])
    log = get_logger("test")
    log.info(
        "request",
        url="https://x/?apiKey=sk-live-abcdef123456",
        headers={"auth": "sk-live-abcdef123456"},
    )
    try:
        raise RuntimeError("bad key sk-live-abcdef123456")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    assert "sk-live-abcdef123456" not in text
    assert text.count("********") >= 3
    assert '"event": "request"' in text  # JSON when not a TTY


def test_config_show_masks_env_credentials(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"VENUEFEED_VENUES__KALSHI__CREDENTIALS__API_KEY_ID": "key-id-77777777", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", "--db", str(tmp_path / "x.db"), "config", "show"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert "key-id-77777777" not in result.stdout + result.stderr
    assert "api_key_id: '********'" in result.stdout
