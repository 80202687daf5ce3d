"""Config precedence (file < env < flags) and errors that name the key and source."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from venuefeed.config import ConfigError, load_config

EXAMPLE = Path(__file__).parent.parent / "examples" / "venuefeed.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_match_the_documented_values() -> None:
    cfg = load_config(environ={})
    assert cfg.discovery.max_resolution_days == 7
    assert cfg.ingestion.book_depth == 10
    assert cfg.quality.max_trade_age_seconds == 300
    assert cfg.quality.price_deviation_max == Decimal("0.10")
    assert cfg.api.host == "127.0.0.1"
    assert cfg.venues["polymarket"].enabled and not cfg.venues["binance"].enabled


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path, "api:\n  port: 9001\ningestion:\n  book_depth: 20\n  max_concurrency: 3\n"
    )
    env = {"VENUEFEED_API__PORT": "9002", "VENUEFEED_INGESTION__BOOK_DEPTH": "30"}
    cfg = load_config(path, {"api.port": 9003}, environ=env)
    assert cfg.api.port == 9003  # flag beats env and file
    assert cfg.ingestion.book_depth == 30  # env beats file
    assert cfg.ingestion.max_concurrency == 3  # file beats default
    assert cfg.ingestion.snapshot_interval_seconds == 30  # default


def test_venue_sections_merge_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "venues:\n  binance:\n    enabled: true\n    instruments: [BTCUSDT]\n")
    cfg = load_config(path, environ={})
    assert cfg.venues["binance"].enabled and cfg.venues["binance"].instruments == ["BTCUSDT"]
    assert cfg.venues["polymarket"].enabled  # not wiped by the partial venues section


def test_env_list_and_secret(tmp_path: Path) -> None:
    env = {
        "VENUEFEED_DISCOVERY__CATEGORIES": '["politics", "sports"]',
        "VENUEFEED_VENUES__POLYGON__CREDENTIALS__API_KEY": "pk-123456",
    }
    cfg = load_config(environ=env)
    assert cfg.discovery.categories == ["politics", "sports"]
    assert cfg.venues["polygon"].credentials["api_key"].get_secret_value() == "pk-123456"
    assert "pk-123456" not in str(cfg.masked())


def test_bad_value_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "quality:\n  max_trade_age_seconds: soon\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert "quality.max_trade_age_seconds" in message
    assert str(path) in message


def test_bad_value_in_env_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={"VENUEFEED_API__PORT": "eighty"})
    assert "api.port" in str(err.value)
    assert "VENUEFEED_API__PORT" in str(err.value)


def test_unknown_key_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    path = write(tmp_path, "ingestion:\n  book_dpeth: 5\n")
    with pytest.raises(ConfigError, match=r"ingestion\.book_dpeth: unknown key"):
        load_config(path, environ={})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "api: [unclosed\n"), environ={})


def test_secret_not_echoed_in_errors() -> None:
    env = {"VENUEFEED_VENUES__KALSHI__CREDENTIALS": "sekrit-value-999"}
    with pytest.raises(ConfigError) as err:
        load_config(environ=env)
    assert "sekrit-value-999" not in str(err.value)


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE, environ={})
    assert cfg.storage.sinks == ["sqlite"]
