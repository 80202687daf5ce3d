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


def _bomb() -> str:
    """The classic "billion laughs" (9^9 strings once expanded) where any value is accepted."""
    lines = [
        "venues:",
        "  polymarket:",
        "    options:",
        '      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"      {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, _bomb()), environ={})
    assert "aliases expand to more than 100,000 values" in str(err.value)
    assert "\n" not in str(err.value)


def test_ordinary_aliases_still_work(tmp_path: Path) -> None:
    text = (
        "venues:\n"
        "  binance: {retry: &retry {attempts: 2, timeout_seconds: 3}}\n"
        "  polygon: {retry: *retry}\n"
    )
    cfg = load_config(write(tmp_path, text), environ={})
    assert cfg.venues["binance"].retry.attempts == cfg.venues["polygon"].retry.attempts == 2


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refers to a node that contains it"):
        load_config(write(tmp_path, "discovery: &d {categories: [*d]}\n"), environ={})


def test_binary_and_oversized_files_are_one_line_errors(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff" * 10)
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 8\)"):
        load_config(binary, environ={})
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_config(big, environ={})
    with pytest.raises(ConfigError, match=r"cannot read config file .*: Is a directory"):
        load_config(tmp_path, environ={})


def test_yaml_syntax_error_is_one_line_without_the_text(tmp_path: Path) -> None:
    path = write(tmp_path, "storage:\n  database_url: 'postgresql://u:pw-hidden-1@db/x\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert "not valid YAML" in message and "line 3" in message
    assert "\n" not in message and "pw-hidden-1" not in message


def test_several_wrong_values_are_one_line() -> None:
    env = {"VENUEFEED_API__PORT": "eighty", "VENUEFEED_INGESTION__BOOK_DEPTH": "deep"}
    with pytest.raises(ConfigError) as err:
        load_config(environ=env)
    message = str(err.value)
    assert "\n" not in message
    assert "api.port" in message and "ingestion.book_depth" in message


@pytest.mark.parametrize(
    "source",
    [
        {"VENUEFEED_STORAGE__DATABASE_URL": '["postgresql://app:pw-hunter2-x@db/x"]'},
        {"VENUEFEED_STORAGE__DATABASE_URL": '{"url": "postgresql://app:pw-hunter2-x@db/x"}'},
        {"VENUEFEED_VENUES__KALSHI__CREDENTIALS__PRIVATE_KEY": '["pw-hunter2-x"]'},
        {"VENUEFEED_API__TOKEN": '{"a": "pw-hunter2-x"}'},
    ],
)
def test_a_wrongly_typed_secret_is_never_echoed(source: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ=source)
    assert "pw-hunter2-x" not in str(err.value)
    assert "[from environment variable" in str(err.value)


def test_a_wrongly_typed_secret_in_a_file_is_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "storage:\n  database_url:\n    - postgresql://app:pw-hunter2-x@db/x\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "storage.database_url" in str(err.value) and "pw-hunter2-x" not in str(err.value)


def test_url_passwords_are_masked_in_echoed_values_and_config_show() -> None:
    with pytest.raises(ConfigError) as err:  # not a secret field, but the URL holds a password
        load_config(environ={"VENUEFEED_BUS__NATS_URL": '["nats://app:pw-nats-77@bus:4222"]'})
    assert "pw-nats-77" not in str(err.value) and "nats://app:********@bus:4222" in str(err.value)
    cfg = load_config(environ={"VENUEFEED_BUS__NATS_URL": "nats://app:pw-nats-77@bus:4222"})
    assert cfg.masked()["bus"]["nats_url"] == "nats://app:********@bus:4222"
    assert cfg.bus.nats_url == "nats://app:pw-nats-77@bus:4222"  # the service still uses it


def test_api_guard_and_job_settings_have_safe_defaults() -> None:
    cfg = load_config(environ={})
    assert cfg.api.allowed_hosts == [] and cfg.api.max_running_jobs == 4
    cfg = load_config(environ={"VENUEFEED_API__ALLOWED_HOSTS": '["feed.internal"]',
                               "VENUEFEED_API__MAX_RUNNING_JOBS": "2"})  # fmt: skip
    assert cfg.api.allowed_hosts == ["feed.internal"] and cfg.api.max_running_jobs == 2


def test_the_seed_documents_environment_names_are_aliases(tmp_path: Path) -> None:
    """Seeds 000-002 configure with these names; each lands on the documented setting."""
    environ = {
        "KALSHI_API_KEY_ID": "kid",
        "KALSHI_API_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----x",
        "POLYMARKET_API_KEY": "pk",
        "POLYMARKET_API_SECRET": "ps",
        "POLYMARKET_API_PASSPHRASE": "pp",
        "POLYGON_API_KEY": "gk",
        "BINANCE_API_KEY": "bk",
        "BINANCE_API_SECRET": "bs",
        "DATABASE_URL": "postgresql://u:secret@db/market_data",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "PROMETHEUS_PORT": "9100",
    }
    cfg = load_config(environ=environ)

    def secret(venue: str, key: str) -> str:
        return cfg.venues[venue].credentials[key].get_secret_value()

    assert (secret("kalshi", "api_key_id"), secret("polygon", "api_key")) == ("kid", "gk")
    assert secret("kalshi", "private_key").startswith("-----BEGIN")
    polymarket = [secret("polymarket", k) for k in ("api_key", "api_secret", "api_passphrase")]
    assert polymarket == ["pk", "ps", "pp"]
    assert (secret("binance", "api_key"), secret("binance", "api_secret")) == ("bk", "bs")
    assert cfg.storage.database_url is not None
    assert cfg.storage.database_url.get_secret_value().endswith("@db/market_data")
    assert cfg.bus.kafka_bootstrap_servers == "kafka:9092"
    assert cfg.metrics.port == 9100


def test_an_alias_beats_the_file_and_venuefeed_variables_beat_the_alias(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("metrics:\n  port: 9000\nbus:\n  kafka_bootstrap_servers: file:9092\n")
    environ = {"PROMETHEUS_PORT": "9100", "KAFKA_BOOTSTRAP_SERVERS": "alias:9092",
               "VENUEFEED_BUS__KAFKA_BOOTSTRAP_SERVERS": "venuefeed:9092"}  # fmt: skip
    cfg = load_config(path, environ=environ)
    assert cfg.metrics.port == 9100
    assert cfg.bus.kafka_bootstrap_servers == "venuefeed:9092"


def test_a_bad_alias_value_names_the_alias() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"PROMETHEUS_PORT": "nine"})
    assert "metrics.port" in str(caught.value)
    assert "environment variable PROMETHEUS_PORT" in str(caught.value)
