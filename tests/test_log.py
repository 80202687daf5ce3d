"""Secrets never reach the log output."""

from __future__ import annotations

import io
import json
import logging
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


def test_url_passwords_are_masked_even_when_not_registered() -> None:
    out = io.StringIO()
    configure("INFO", "json", stream=out)
    get_logger("test").warning(
        "sink unavailable", error="cannot connect to postgresql://app:pw-never-seen@db:5432/x"
    )
    text = out.getvalue()
    assert "pw-never-seen" not in text
    assert "postgresql://app:********@db:5432/x" in text


def test_a_registered_url_masks_its_password_alone_too() -> None:
    out = io.StringIO()
    configure("INFO", "json", stream=out, secrets=["postgresql://app:pw-alone-4321@db/x"])
    get_logger("test").error("driver said", detail="password pw-alone-4321 rejected for app")
    assert "pw-alone-4321" not in out.getvalue()


def test_library_records_are_rendered_and_redacted_like_ours() -> None:
    """uvicorn, asyncio, drivers log through stdlib logging: same format, same masking."""
    out = io.StringIO()
    configure("INFO", "json", stream=out, secrets=["sk-lib-abcdef123456"])
    try:
        raise ConnectionError("refused for key sk-lib-abcdef123456")
    except ConnectionError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    logging.getLogger("asyncio").debug("below the level: not shown")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 1
    record = lines[0]
    assert record["event"] == "Exception in ASGI application"
    assert record["level"] == "error" and record["logger"] == "uvicorn.error"
    assert "ConnectionError" in record["exception"]
    assert "sk-lib-abcdef123456" not in out.getvalue()
