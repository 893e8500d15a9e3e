"""Configuration: precedence, sources, validation messages, and file rewriting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from better_ccflare.core import (
    Config,
    ConfigError,
    LogFormat,
    LogLevel,
    ModelPriceConfig,
    SourceKind,
    StrategyName,
    load_config,
    reload_file_settings,
    update_config_file,
    write_file_settings,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A config home with an empty working directory beside it."""
    (tmp_path / "cwd").mkdir()
    return tmp_path


def load(home: Path, **env: str) -> Config:
    return load_config({"XDG_CONFIG_HOME": str(home / "xdg"), **env}, cwd=home / "cwd")


def write_config_file(home: Path, data: object) -> Path:
    path = home / "xdg" / "better-ccflare" / "better-ccflare.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_defaults_apply_when_nothing_is_set(home: Path) -> None:
    config = load(home)
    assert config.port == 8080
    assert config.host == "127.0.0.1"
    assert config.lb_strategy is StrategyName.SESSION
    assert config.session_duration_ms == 5 * 3_600_000
    assert config.log_level is LogLevel.INFO
    assert config.log_format is LogFormat.PRETTY
    assert config.store_payloads is True
    assert config.data_retention_days == 1
    assert config.request_retention_days == 90
    assert config.db_path == home / "xdg" / "better-ccflare" / "better-ccflare.db"
    assert config.log_dir == home / "xdg" / "better-ccflare" / "logs"
    assert all(source.kind is SourceKind.DEFAULT for _, _, source in config.rows())


def test_home_config_dir_is_used_without_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config({}, cwd=tmp_path)
    assert config.config_dir == tmp_path / ".config" / "better-ccflare"


def test_file_overrides_defaults_and_reports_its_path(home: Path) -> None:
    path = write_config_file(home, {"port": 9000, "lb_strategy": "least-used"})
    config = load(home)
    assert config.port == 9000
    assert config.lb_strategy is StrategyName.LEAST_USED
    assert config.source_of("port").kind is SourceKind.FILE
    assert config.source_of("port").detail == str(path)


def test_environment_overrides_file(home: Path) -> None:
    write_config_file(home, {"port": 9000})
    config = load(home, PORT="9100")
    assert config.port == 9100
    assert str(config.source_of("port")) == "environment (PORT)"


def test_dotenv_sits_between_file_and_environment(home: Path) -> None:
    write_config_file(home, {"port": 9000, "log_level": "DEBUG"})
    (home / "cwd" / ".env").write_text("PORT=9200\nLOG_LEVEL=error\n")
    config = load(home, LOG_LEVEL="warn")
    assert config.port == 9200
    assert config.source_of("port").kind is SourceKind.DOTENV
    assert config.log_level is LogLevel.WARN
    assert config.source_of("log_level").kind is SourceKind.ENVIRONMENT


def test_dotenv_can_point_at_another_config_file(home: Path) -> None:
    other = home / "elsewhere.json"
    other.write_text(json.dumps({"request_retention_days": 30}))
    (home / "cwd" / ".env").write_text(f"BETTER_CCFLARE_CONFIG_PATH={other}\n")
    config = load(home)
    assert config.config_path == other
    assert config.request_retention_days == 30


def test_config_path_variable_selects_the_file(home: Path) -> None:
    other = home / "custom.json"
    other.write_text(json.dumps({"port": 7000}))
    config = load(home, BETTER_CCFLARE_CONFIG_PATH=str(other))
    assert config.port == 7000
    assert config.source_of("port").detail == str(other)


def test_every_documented_variable_is_read(home: Path, tmp_path: Path) -> None:
    config = load(
        home,
        PORT="1234",
        BETTER_CCFLARE_HOST="0.0.0.0",
        BETTER_CCFLARE_DB_PATH=str(tmp_path / "x.db"),
        BETTER_CCFLARE_LOG_DIR=str(tmp_path / "logs"),
        LB_STRATEGY="session-affinity",
        SESSION_DURATION_MS="3600000",
        LOG_LEVEL="debug",
        LOG_FORMAT="JSON",
        STORE_PAYLOADS="off",
        DATA_RETENTION_DAYS="7",
        REQUEST_RETENTION_DAYS="365",
        SSL_KEY_PATH=str(tmp_path / "k.pem"),
        SSL_CERT_PATH=str(tmp_path / "c.pem"),
        BETTER_CCFLARE_SECRET_KEY="abc",
        BETTER_CCFLARE_CONNECT_TIMEOUT_MS="2000",
        BETTER_CCFLARE_FIRST_BYTE_TIMEOUT_MS="60000",
        BETTER_CCFLARE_IDLE_TIMEOUT_MS="30000",
    )
    assert config.port == 1234
    assert config.host == "0.0.0.0"
    assert config.db_path == tmp_path / "x.db"
    assert config.log_dir == tmp_path / "logs"
    assert config.lb_strategy is StrategyName.SESSION_AFFINITY
    assert config.session_duration_ms == 3_600_000
    assert config.log_level is LogLevel.DEBUG
    assert config.log_format is LogFormat.JSON
    assert config.store_payloads is False
    assert config.data_retention_days == 7
    assert config.request_retention_days == 365
    assert config.tls_enabled
    assert config.secret_key == "abc"
    assert (config.connect_timeout_ms, config.first_byte_timeout_ms) == (2000, 60000)
    assert config.idle_timeout_ms == 30000


def test_empty_environment_variable_counts_as_unset(home: Path) -> None:
    assert load(home, PORT="").port == 8080


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PORT", "eighty", "a whole number from 1 to 65535"),
        ("PORT", "70000", "a whole number from 1 to 65535"),
        ("LB_STRATEGY", "round-robin", "one of session, least-used, session-affinity"),
        ("LOG_LEVEL", "verbose", "one of DEBUG, INFO, WARN, ERROR"),
        ("LOG_FORMAT", "xml", "one of pretty, json"),
        ("STORE_PAYLOADS", "maybe", "true or false"),
        ("DATA_RETENTION_DAYS", "0", "a whole number from 1 to 365"),
        ("REQUEST_RETENTION_DAYS", "5000", "a whole number from 1 to 3650"),
        ("SESSION_DURATION_MS", "10", "a whole number from 60000"),
    ],
)
def test_invalid_environment_value_names_variable_and_accepted_values(
    home: Path, variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(home, **{variable: value})
    message = str(info.value)
    assert message.startswith(f"{variable}={value!r} (from environment)")
    assert expected in message
    assert info.value.setting == variable


def test_invalid_file_value_names_key_and_file(home: Path) -> None:
    path = write_config_file(home, {"port": "high"})
    with pytest.raises(ConfigError) as info:
        load(home)
    assert info.value.setting == "port"
    assert str(path) in str(info.value)


def test_json_booleans_and_numbers_in_file_are_accepted(home: Path) -> None:
    write_config_file(home, {"store_payloads": False, "data_retention_days": 3})
    config = load(home)
    assert config.store_payloads is False
    assert config.data_retention_days == 3


def test_boolean_is_not_a_number(home: Path) -> None:
    write_config_file(home, {"port": True})
    with pytest.raises(ConfigError):
        load(home)


def test_malformed_config_file_reports_line_and_column(home: Path) -> None:
    path = home / "xdg" / "better-ccflare" / "better-ccflare.json"
    path.parent.mkdir(parents=True)
    path.write_text('{\n  "port": 80,\n}')
    with pytest.raises(ConfigError) as info:
        load(home)
    assert "line 3" in str(info.value)


def test_config_file_must_hold_an_object(home: Path) -> None:
    write_config_file(home, ["port", 80])
    with pytest.raises(ConfigError, match="JSON object"):
        load(home)


def test_unknown_file_keys_are_ignored(home: Path) -> None:
    write_config_file(home, {"combos_enabled": True, "alert_webhook_url": "x", "port": 8081})
    assert load(home).port == 8081


def test_tls_needs_both_key_and_certificate(home: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(home, SSL_KEY_PATH="/k.pem")
    assert info.value.setting == "SSL_CERT_PATH"
    assert "SSL_KEY_PATH is set" in str(info.value)


def test_secret_key_is_never_read_from_the_file(home: Path) -> None:
    write_config_file(home, {"secret_key": "from-file"})
    config = load(home)
    assert config.secret_key is None


def test_repr_hides_the_secret_key(home: Path) -> None:
    config = load(home, BETTER_CCFLARE_SECRET_KEY="do-not-print")
    assert "do-not-print" not in repr(config)


def test_the_database_url_is_shown_without_its_password(home: Path) -> None:
    config = load(home, DATABASE_URL="postgresql://ccflare:do-not-print@db:5432/ccflare")

    assert "do-not-print" not in repr(config)
    assert Config.shown("database_url", config.database_url) == (
        "postgresql://ccflare:<redacted>@db:5432/ccflare"
    )


def test_update_config_file_keeps_unknown_keys(home: Path) -> None:
    path = write_config_file(home, {"combos_enabled": True, "lb_strategy": "session"})
    update_config_file(path, {"lb_strategy": "least-used"})
    assert json.loads(path.read_text()) == {"combos_enabled": True, "lb_strategy": "least-used"}
    assert load(home).lb_strategy is StrategyName.LEAST_USED


def test_update_config_file_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "better-ccflare.json"
    update_config_file(path, {"port": 8090})
    assert json.loads(path.read_text()) == {"port": 8090}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_write_file_settings_persists_validates_and_applies(home: Path) -> None:
    config = load(home)
    changed = write_file_settings(config, {"lb_strategy": "least-used", "data_retention_days": 7})
    assert changed.lb_strategy is StrategyName.LEAST_USED
    assert changed.data_retention_days == 7
    assert changed.source_of("lb_strategy").kind is SourceKind.FILE
    saved = json.loads(config.config_path.read_text())
    assert saved == {"data_retention_days": 7, "lb_strategy": "least-used"}
    assert load(home) == changed
    with pytest.raises(ConfigError, match="data_retention_days"):
        write_file_settings(changed, {"data_retention_days": 0})
    with pytest.raises(ConfigError, match="config-file settings"):
        write_file_settings(changed, {"secret_key": "x"})
    assert json.loads(config.config_path.read_text()) == saved  # nothing written on refusal


def test_write_file_settings_refuses_what_the_environment_overrides(home: Path) -> None:
    config = load(home, LB_STRATEGY="session")
    with pytest.raises(ConfigError, match="LB_STRATEGY"):
        write_file_settings(config, {"lb_strategy": "least-used"})
    assert not config.config_path.exists()


def test_reload_file_settings_follows_the_file_and_keeps_the_environment(home: Path) -> None:
    config = load(home, PORT="9100")
    write_config_file(home, {"port": 9000, "lb_strategy": "session-affinity"})
    reloaded = reload_file_settings(config)
    assert reloaded.lb_strategy is StrategyName.SESSION_AFFINITY
    assert reloaded.port == 9100  # the environment still wins
    write_config_file(home, {})
    assert reload_file_settings(reloaded).lb_strategy is StrategyName.SESSION  # back to default
    assert reload_file_settings(reloaded).source_of("lb_strategy").kind is SourceKind.DEFAULT


def test_edge_settings_have_safe_defaults(home: Path) -> None:
    config = load(home)
    assert config.allowed_hosts == ()
    assert (config.max_connections, config.max_headers) == (1000, 100)
    assert config.max_header_bytes == 64 * 1024
    assert (config.header_timeout_ms, config.body_timeout_ms) == (10_000, 30_000)
    assert config.max_body_bytes == 64 * 1024 * 1024


def test_edge_settings_are_read_from_the_environment(home: Path) -> None:
    config = load(
        home,
        BETTER_CCFLARE_ALLOWED_HOSTS=" Proxy.Example., ::1 ,,other.example",
        BETTER_CCFLARE_MAX_CONNECTIONS="50",
        BETTER_CCFLARE_MAX_HEADER_BYTES="8192",
        BETTER_CCFLARE_MAX_HEADERS="40",
        BETTER_CCFLARE_HEADER_TIMEOUT_MS="2000",
        BETTER_CCFLARE_BODY_TIMEOUT_MS="5000",
        BETTER_CCFLARE_MAX_BODY_BYTES="1048576",
    )
    assert config.allowed_hosts == ("proxy.example", "[::1]", "other.example")
    assert (config.max_connections, config.max_header_bytes, config.max_headers) == (50, 8192, 40)
    assert (config.header_timeout_ms, config.body_timeout_ms) == (2000, 5000)
    assert config.max_body_bytes == 1024 * 1024


def test_allowed_hosts_may_be_a_json_list_in_the_file(home: Path) -> None:
    write_config_file(home, {"allowed_hosts": ["a.example", "*"]})
    assert load(home).allowed_hosts == ("a.example", "*")


@pytest.mark.parametrize("value", ["proxy.example:8080", "http://proxy.example", "a b"])
def test_allowed_hosts_refuse_ports_schemes_and_spaces(home: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"BETTER_CCFLARE_ALLOWED_HOSTS.*without scheme or port"):
        load(home, BETTER_CCFLARE_ALLOWED_HOSTS=value)


# --------------------------------------------------------------------------- model prices


def test_model_prices_are_read_from_the_file(home: Path) -> None:
    path = write_config_file(
        home,
        {
            "model_prices": {
                "glm-9": {"input": 1.5, "output": 6, "cache_read": 0.3, "cache_write": 1.5},
                "house-model": {"input": 0.2, "output": 0.8},
            }
        },
    )
    config = load(home)
    assert config.model_prices == {
        "glm-9": ModelPriceConfig(input=1.5, output=6, cache_read=0.3, cache_write=1.5),
        "house-model": ModelPriceConfig(input=0.2, output=0.8),
    }
    assert config.source_of("model_prices").detail == str(path)


def test_no_model_prices_by_default(home: Path) -> None:
    assert load(home).model_prices == {}


@pytest.mark.parametrize(
    ("prices", "says"),
    [
        ({"glm-9": {"input": 1}}, "output"),
        ({"glm-9": {"input": -1, "output": 2}}, "input"),
        ({"glm-9": {"input": 1, "output": 2, "cache_reed": 0.1}}, "cache_reed"),
        ({"glm-9": {"input": "cheap", "output": 2}}, "input"),
        ({" ": {"input": 1, "output": 2}}, "empty"),
        ([1, 2], "object"),
    ],
)
def test_invalid_model_prices_name_what_is_wrong(home: Path, prices: object, says: str) -> None:
    write_config_file(home, {"model_prices": prices})
    with pytest.raises(ConfigError) as caught:
        load(home)
    assert caught.value.setting == "model_prices"
    assert says in str(caught.value)
    assert "USD per million tokens" in str(caught.value)


def test_model_prices_follow_the_file_while_running(home: Path) -> None:
    path = write_config_file(home, {})
    config = load(home)
    path.write_text(json.dumps({"model_prices": {"glm-9": {"input": 1, "output": 2}}}))
    assert reload_file_settings(config).model_prices == {
        "glm-9": ModelPriceConfig(input=1, output=2)
    }


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("::1", "http://[::1]:8080"),
        ("proxy.example", "http://proxy.example:8080"),
    ],
)
def test_the_local_url_reaches_a_wildcard_bind_through_loopback(
    home: Path, host: str, url: str
) -> None:
    assert load(home, BETTER_CCFLARE_HOST=host).local_url == url
