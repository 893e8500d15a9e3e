"""The one source of truth for settings: defaults, then the config file, then the environment.

Precedence, lowest to highest:

1. built-in defaults;
2. the JSON config file (``$XDG_CONFIG_HOME/better-ccflare/better-ccflare.json``, or
   ``BETTER_CCFLARE_CONFIG_PATH``);
3. a ``.env`` file in the working directory;
4. the process environment.

Every value remembers where it came from (:meth:`Config.source_of`), so ``config show`` and
error messages can tell the user which knob to turn. Keys in the config file that this version
does not know are ignored and preserved on rewrite, because the reference implementation keeps
many more settings in the same file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from ._dotenv import read_dotenv
from ._errors import ConfigError
from ._strategy import StrategyName

__all__ = [
    "DEFAULT_CLIENT_ID",
    "Config",
    "LogFormat",
    "LogLevel",
    "ModelPriceConfig",
    "SettingSource",
    "SourceKind",
    "default_config_dir",
    "load_config",
    "redacted_url",
    "reload_file_settings",
    "update_config_file",
    "write_file_settings",
]

APP_DIR_NAME = "better-ccflare"
CONFIG_FILE_NAME = "better-ccflare.json"
DEFAULT_CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
"""The public OAuth client id Claude Code uses; ``CLIENT_ID`` overrides it."""


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class LogFormat(StrEnum):
    PRETTY = "pretty"
    JSON = "json"


class SourceKind(StrEnum):
    DEFAULT = "default"
    FILE = "file"
    DOTENV = ".env"
    ENVIRONMENT = "environment"
    COMMAND_LINE = "command line"


_UsdPerMillion = Annotated[float, msgspec.Meta(ge=0)]


class ModelPriceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One model's price from the config file's ``model_prices`` section, in USD per million
    tokens. It adds a model the bundled table lacks, or overrides the bundled price.

    ``cache_read`` and ``cache_write`` default to ``input``: without a stated discount or
    surcharge, cached tokens are billed like plain input. ``cache_write`` applies to both cache
    lifetimes.
    """

    input: _UsdPerMillion
    output: _UsdPerMillion
    cache_read: _UsdPerMillion | None = None
    cache_write: _UsdPerMillion | None = None


class SettingSource(msgspec.Struct, frozen=True):
    """Where one value came from: the kind of source and the exact name or path within it."""

    kind: SourceKind
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else str(self.kind)


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting the service reads at start-up, fully validated."""

    port: int
    host: str
    config_path: Path
    config_dir: Path
    """Where the key file and, by default, the database and logs live."""
    db_path: Path
    database_url: str | None
    """``postgresql://...``: use that PostgreSQL database instead of the SQLite file ``db_path``."""
    log_dir: Path
    lb_strategy: StrategyName
    session_duration_ms: int
    log_level: LogLevel
    log_format: LogFormat
    store_payloads: bool
    data_retention_days: int
    """Days to keep request and response bodies."""
    request_retention_days: int
    """Days to keep request rows (tokens, cost, status)."""
    ssl_key_path: Path | None
    ssl_cert_path: Path | None
    client_id: str
    usage_poll_interval_ms: int
    connect_timeout_ms: int
    """How long to wait for an upstream connection before trying another account."""
    first_byte_timeout_ms: int
    """How long to wait for upstream response headers."""
    idle_timeout_ms: int
    """The longest silence allowed between two chunks of an upstream response body."""
    shutdown_grace_ms: int
    """How long a stopping server lets responses in flight finish before it cuts them."""
    allowed_hosts: tuple[str, ...]
    """Host names (lower case, no port) the server answers besides loopback and its bound
    address; ``("*",)`` answers any, for a reverse proxy that sets ``Host`` itself."""
    max_connections: int
    """Open client connections at once; the next one is refused with 503."""
    max_header_bytes: int
    """The largest request head (request line and headers) a client may send."""
    max_headers: int
    """The most header fields one request may carry."""
    header_timeout_ms: int
    """How long a client has to send a request's whole head, from its first byte (or from
    connecting)."""
    body_timeout_ms: int
    """The longest silence allowed between two chunks of a request body."""
    max_body_bytes: int
    """The largest request body the proxy accepts (413 beyond it)."""
    secret_key: str | None
    """Base64 key that encrypts stored credentials; ``None`` means use the key file."""
    model_prices: dict[str, ModelPriceConfig]
    """Prices the user added or overrode, by model id (config file only)."""
    metrics_token: str | None
    """A bearer token that may read ``/metrics`` (and nothing else) once proxy keys exist, so a
    Prometheus server needs no admin key; ``None``: only admin keys may scrape."""
    agent_workspace_autodiscover: bool
    """Register the working directory a Claude Code system prompt names as a workspace, so its
    ``.claude/agents`` are discovered (the reference's opt-in of the same name)."""
    hold_until_reset_ms: int
    """When no account can serve but one frees up within this, hold the request and serve it
    then (a stream gets ``ping`` events meanwhile); 0 (the default): answer at once."""
    hold_max_waiting: int
    """How many requests may be held at once; the next gets the answer at once."""
    access_log: bool
    """Log one line per proxied request (``better_ccflare.access``), whatever ``log_level``."""
    tracing: bool
    """Export OpenTelemetry traces, configured by the standard ``OTEL_*`` environment variables;
    needs the ``otel`` extra (``better-ccflare-server[otel]``)."""
    trace_propagate_upstream: bool
    """Send W3C trace context (``traceparent``, ``tracestate``) upstream; by default the
    proxy keeps it to itself."""
    sources: dict[str, SettingSource]

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={_MASK if self.is_secret(name) and value else self.shown(name, value)!r}"
            for name, value, _ in self.rows()
        )
        return f"Config({shown})"

    def source_of(self, name: str) -> SettingSource:
        """Where setting ``name`` (a field of this object) came from."""
        return self.sources[name]

    def rows(self) -> Iterator[tuple[str, object, SettingSource]]:
        """Each setting as (name, value, source), in declaration order, for display."""
        for setting in _SETTINGS:
            yield setting.name, getattr(self, setting.name), self.sources[setting.name]

    @staticmethod
    def is_secret(name: str) -> bool:
        """Whether setting ``name`` holds a secret, never to be shown."""
        return name in _SECRET_SETTINGS

    @staticmethod
    def shown(name: str, value: object) -> object:
        """``value`` of setting ``name`` as it may be displayed: a URL without its password.

        Secrets (see ``is_secret``) are the caller's to mask; this handles settings that are
        shown but may carry a password.
        """
        if name in _URL_SETTINGS and isinstance(value, str):
            return redacted_url(value)
        return value

    @property
    def tls_enabled(self) -> bool:
        return self.ssl_key_path is not None and self.ssl_cert_path is not None

    @property
    def local_url(self) -> str:
        """The server's address from this machine (no trailing slash): a wildcard bind is
        reached through loopback, an IPv6 host is bracketed."""
        host = _LOOPBACK_FOR_WILDCARD.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls_enabled else 'http'}://{host}:{self.port}"


_LOOPBACK_FOR_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
"""Wildcard bind addresses and the loopback address that reaches them (nothing is bound here)."""


def redacted_url(url: str) -> str:
    """``url`` with its password, if it has one, replaced by ``<redacted>``: for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:{_MASK}@{host}").geturl()


def default_config_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/better-ccflare``, falling back to ``~/.config/better-ccflare``."""
    xdg = environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / APP_DIR_NAME


# --- parsers: each takes a raw value (env string or JSON value) and returns the typed value,
# raising ValueError whose text says what is accepted. ---------------------------------------

_Parser = Callable[[object], Any]


def _int_in(low: int, high: int) -> tuple[_Parser, str]:
    expected = f"a whole number from {low} to {high}"

    def parse(raw: object) -> int:
        if isinstance(raw, bool):
            raise ValueError(expected)
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
            value = int(raw.strip())
        else:
            raise ValueError(expected)
        if not low <= value <= high:
            raise ValueError(expected)
        return value

    return parse, expected


def _choice(
    enum: type[StrEnum], *, upper: bool = False, aliases: Mapping[str, str] | None = None
) -> tuple[_Parser, str]:
    expected = "one of " + ", ".join(member.value for member in enum)

    def parse(raw: object) -> StrEnum:
        if not isinstance(raw, str):
            raise ValueError(expected)
        text = raw.strip().upper() if upper else raw.strip().lower()
        text = (aliases or {}).get(text, text)
        try:
            return enum(text)
        except ValueError:
            raise ValueError(expected) from None

    return parse, expected


def _bool() -> tuple[_Parser, str]:
    expected = "true or false (also 1/0, yes/no, on/off)"
    truthy = {"1", "true", "yes", "on"}
    falsy = {"0", "false", "no", "off"}

    def parse(raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            text = raw.strip().lower()
            if text in truthy:
                return True
            if text in falsy:
                return False
        raise ValueError(expected)

    return parse, expected


def _text() -> tuple[_Parser, str]:
    expected = "a non-empty string"

    def parse(raw: object) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError(expected)
        return raw.strip()

    return parse, expected


def _path() -> tuple[_Parser, str]:
    expected = "a file-system path"

    def parse(raw: object) -> Path:
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError(expected)
        return Path(raw.strip()).expanduser()

    return parse, expected


_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?")


def _host_list() -> tuple[_Parser, str]:
    expected = (
        "host names without scheme or port, separated by commas (or a JSON list), "
        'or "*" for any host'
    )

    def one(entry: str) -> str:
        name = entry.strip().lower().rstrip(".")
        if name == "*" or _HOST_NAME.fullmatch(name):
            return name
        literal = name.removeprefix("[").removesuffix("]")
        try:
            return f"[{ipaddress.IPv6Address(literal)}]"
        except ValueError:
            raise ValueError(expected) from None

    def parse(raw: object) -> tuple[str, ...]:
        if isinstance(raw, str):
            entries: list[object] = list(raw.split(","))
        elif isinstance(raw, list):
            entries = list(raw)  # pyright: ignore[reportUnknownArgumentType]
        else:
            raise ValueError(expected)
        names: list[str] = []
        for entry in entries:
            if not isinstance(entry, str):
                raise ValueError(expected)
            if entry.strip():
                names.append(one(entry))
        return tuple(dict.fromkeys(names))

    return parse, expected


def _model_prices() -> tuple[_Parser, str]:
    expected = (
        'an object of model ids to prices in USD per million tokens, e.g. {"glm-5": '
        '{"input": 1.0, "output": 3.2, "cache_read": 0.2, "cache_write": 1.0}}; input and '
        "output are required, every price is a number of 0 or more"
    )

    def parse(raw: object) -> dict[str, ModelPriceConfig]:
        try:
            prices = msgspec.convert(raw, dict[str, ModelPriceConfig])
        except msgspec.ValidationError as exc:
            raise ValueError(f"{expected} ({exc})") from None
        if any(not model.strip() for model in prices):
            raise ValueError(f"{expected} (a model id is empty)")
        return {model.strip(): price for model, price in prices.items()}

    return parse, expected


@dataclass(frozen=True, slots=True)
class _Setting:
    name: str
    env: str | None
    file_key: str | None
    parser: tuple[_Parser, str]
    default: Callable[[Path], object]
    """Given the config directory, the default value."""


_SETTINGS: tuple[_Setting, ...] = (
    _Setting("port", "PORT", "port", _int_in(1, 65535), lambda _: 8080),
    _Setting("host", "BETTER_CCFLARE_HOST", "host", _text(), lambda _: "127.0.0.1"),
    _Setting(
        "config_path", "BETTER_CCFLARE_CONFIG_PATH", None, _path(), lambda d: d / CONFIG_FILE_NAME
    ),
    _Setting("config_dir", None, None, _path(), lambda d: d),
    _Setting(
        "db_path", "BETTER_CCFLARE_DB_PATH", "db_path", _path(), lambda d: d / "better-ccflare.db"
    ),
    # PostgreSQL instead of SQLite, under the reference's variable name; it may hold a password,
    # so it is shown without one.
    _Setting("database_url", "DATABASE_URL", "database_url", _text(), lambda _: None),
    _Setting("log_dir", "BETTER_CCFLARE_LOG_DIR", "log_dir", _path(), lambda d: d / "logs"),
    _Setting(
        "lb_strategy",
        "LB_STRATEGY",
        "lb_strategy",
        _choice(StrategyName),
        lambda _: StrategyName.SESSION,
    ),
    _Setting(
        "session_duration_ms",
        "SESSION_DURATION_MS",
        "session_duration_ms",
        _int_in(60_000, 7 * 24 * 3_600_000),
        lambda _: 5 * 3_600_000,
    ),
    _Setting(
        "log_level",
        "LOG_LEVEL",
        "log_level",
        _choice(LogLevel, upper=True, aliases={"WARNING": "WARN"}),
        lambda _: LogLevel.INFO,
    ),
    _Setting(
        "log_format", "LOG_FORMAT", "log_format", _choice(LogFormat), lambda _: LogFormat.PRETTY
    ),
    _Setting("store_payloads", "STORE_PAYLOADS", "store_payloads", _bool(), lambda _: True),
    _Setting(
        "data_retention_days",
        "DATA_RETENTION_DAYS",
        "data_retention_days",
        _int_in(1, 365),
        lambda _: 1,
    ),
    _Setting(
        "request_retention_days",
        "REQUEST_RETENTION_DAYS",
        "request_retention_days",
        _int_in(1, 3650),
        lambda _: 90,
    ),
    _Setting("ssl_key_path", "SSL_KEY_PATH", "ssl_key_path", _path(), lambda _: None),
    _Setting("ssl_cert_path", "SSL_CERT_PATH", "ssl_cert_path", _path(), lambda _: None),
    _Setting("client_id", "CLIENT_ID", "client_id", _text(), lambda _: DEFAULT_CLIENT_ID),
    _Setting(
        "usage_poll_interval_ms",
        "USAGE_POLL_INTERVAL_MS",
        "usage_poll_interval_ms",
        _int_in(10_000, 3_600_000),
        lambda _: 90_000,
    ),
    # Upstream deadlines. The defaults stay under Claude Code's 300-second stall detector, so the
    # proxy gives up (and fails over, when nothing was sent yet) before the client does.
    _Setting(
        "connect_timeout_ms",
        "BETTER_CCFLARE_CONNECT_TIMEOUT_MS",
        "connect_timeout_ms",
        _int_in(100, 120_000),
        lambda _: 10_000,
    ),
    _Setting(
        "first_byte_timeout_ms",
        "BETTER_CCFLARE_FIRST_BYTE_TIMEOUT_MS",
        "first_byte_timeout_ms",
        _int_in(1_000, 3_600_000),
        lambda _: 240_000,
    ),
    _Setting(
        "idle_timeout_ms",
        "BETTER_CCFLARE_IDLE_TIMEOUT_MS",
        "idle_timeout_ms",
        _int_in(1_000, 3_600_000),
        lambda _: 240_000,
    ),
    # Shutdown: streams still running when the grace period ends are cut (and recorded).
    _Setting(
        "shutdown_grace_ms",
        "BETTER_CCFLARE_SHUTDOWN_GRACE_MS",
        "shutdown_grace_ms",
        _int_in(0, 3_600_000),
        lambda _: 30_000,
    ),
    # The edge: who may talk to the server, and the limits every client meets before its key
    # is checked (docs/security.md).
    _Setting(
        "allowed_hosts",
        "BETTER_CCFLARE_ALLOWED_HOSTS",
        "allowed_hosts",
        _host_list(),
        lambda _: (),
    ),
    _Setting(
        "max_connections",
        "BETTER_CCFLARE_MAX_CONNECTIONS",
        "max_connections",
        _int_in(1, 1_000_000),
        lambda _: 1000,
    ),
    _Setting(
        "max_header_bytes",
        "BETTER_CCFLARE_MAX_HEADER_BYTES",
        "max_header_bytes",
        _int_in(1024, 16 * 1024 * 1024),
        lambda _: 64 * 1024,
    ),
    _Setting(
        "max_headers",
        "BETTER_CCFLARE_MAX_HEADERS",
        "max_headers",
        _int_in(1, 10_000),
        lambda _: 100,
    ),
    _Setting(
        "header_timeout_ms",
        "BETTER_CCFLARE_HEADER_TIMEOUT_MS",
        "header_timeout_ms",
        _int_in(100, 600_000),
        lambda _: 10_000,
    ),
    _Setting(
        "body_timeout_ms",
        "BETTER_CCFLARE_BODY_TIMEOUT_MS",
        "body_timeout_ms",
        _int_in(100, 3_600_000),
        lambda _: 30_000,
    ),
    _Setting(
        "max_body_bytes",
        "BETTER_CCFLARE_MAX_BODY_BYTES",
        "max_body_bytes",
        _int_in(1024, 4 * 1024 * 1024 * 1024),
        lambda _: 64 * 1024 * 1024,
    ),
    # The encryption key never comes from the config file: it must live apart from the data.
    _Setting("secret_key", "BETTER_CCFLARE_SECRET_KEY", None, _text(), lambda _: None),
    # A nested object: the config file is its only source.
    _Setting("model_prices", None, "model_prices", _model_prices(), lambda _: {}),
    # Metrics: the scrape token, read at each scrape (a change applies without a restart).
    _Setting(
        "metrics_token", "BETTER_CCFLARE_METRICS_TOKEN", "metrics_token", _text(), lambda _: None
    ),
    _Setting(
        "agent_workspace_autodiscover",
        "BETTER_CCFLARE_AGENT_WORKSPACE_AUTODISCOVER",
        "agent_workspace_autodiscover",
        _bool(),
        lambda _: False,
    ),
    # Observability beyond /metrics (docs/observability.md).
    _Setting("access_log", "BETTER_CCFLARE_ACCESS_LOG", "access_log", _bool(), lambda _: False),
    _Setting("tracing", "BETTER_CCFLARE_TRACING", "tracing", _bool(), lambda _: False),
    _Setting(
        "trace_propagate_upstream",
        "BETTER_CCFLARE_TRACE_PROPAGATE_UPSTREAM",
        "trace_propagate_upstream",
        _bool(),
        lambda _: False,
    ),
    # Hold until reset: at most Claude Code's own default request timeout (API_TIMEOUT_MS).
    _Setting(
        "hold_until_reset_ms",
        "BETTER_CCFLARE_HOLD_UNTIL_RESET_MS",
        "hold_until_reset_ms",
        _int_in(0, 600_000),
        lambda _: 0,
    ),
    _Setting(
        "hold_max_waiting",
        "BETTER_CCFLARE_HOLD_MAX_WAITING",
        "hold_max_waiting",
        _int_in(1, 100_000),
        lambda _: 100,
    ),
)

_SECRET_SETTINGS = frozenset({"secret_key", "metrics_token"})
_MASK = "<redacted>"
# Shown, but with the password of the URL they hold masked.
_URL_SETTINGS = frozenset({"database_url"})


def load_config(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Config:
    """Build the configuration from defaults, the config file, ``.env`` and the environment.

    Args:
        environ: The environment to read; ``os.environ`` when omitted.
        cwd: Where to look for ``.env``; the working directory when omitted.

    Raises:
        ConfigError: A value is invalid, or the config file is not a JSON object. The message
            names the variable or key, where it came from, and what is accepted.
    """
    process_env = dict(os.environ if environ is None else environ)
    dotenv = read_dotenv((cwd or Path.cwd()) / ".env")
    env_view = {**dotenv, **process_env}

    config_dir = default_config_dir(env_view)
    config_path_setting = next(s for s in _SETTINGS if s.name == "config_path")
    config_path = _from_env(config_path_setting, env_view, process_env)
    file_path = config_dir / CONFIG_FILE_NAME
    if config_path is not None and isinstance(config_path[0], Path):
        file_path = config_path[0]
    file_values = _read_config_file(file_path)

    values: dict[str, object] = {}
    sources: dict[str, SettingSource] = {}
    for setting in _SETTINGS:
        value, source = setting.default(config_dir), SettingSource(SourceKind.DEFAULT)
        if setting.file_key is not None and setting.file_key in file_values:
            raw = file_values[setting.file_key]
            value = _parse(setting, setting.file_key, raw, str(file_path))
            source = SettingSource(SourceKind.FILE, str(file_path))
        from_env = _from_env(setting, env_view, process_env)
        if from_env is not None:
            value, source = from_env
        values[setting.name] = value
        sources[setting.name] = source

    if (values["ssl_key_path"] is None) != (values["ssl_cert_path"] is None):
        missing = "SSL_CERT_PATH" if values["ssl_cert_path"] is None else "SSL_KEY_PATH"
        given = "SSL_KEY_PATH" if missing == "SSL_CERT_PATH" else "SSL_CERT_PATH"
        raise ConfigError(
            missing,
            None,
            f"a path, because {given} is set (TLS needs both key and certificate)",
            str(sources[given.lower()]),
        )
    return Config(**values, sources=sources)  # pyright: ignore[reportArgumentType]


def _from_env(
    setting: _Setting, env_view: Mapping[str, str], process_env: Mapping[str, str]
) -> tuple[object, SettingSource] | None:
    if setting.env is None or setting.env not in env_view:
        return None
    raw = env_view[setting.env]
    kind = SourceKind.ENVIRONMENT if setting.env in process_env else SourceKind.DOTENV
    if raw == "" and kind is SourceKind.ENVIRONMENT:
        # An exported-but-empty variable means "not set", as most shells and tools treat it.
        return None
    return _parse(setting, setting.env, raw, str(kind)), SettingSource(kind, setting.env)


def _parse(setting: _Setting, label: str, raw: object, source: str) -> object:
    parse, expected = setting.parser
    try:
        return parse(raw)
    except ValueError as exc:
        # A parser may say more precisely what is wrong (which key of a nested value).
        raise ConfigError(label, raw, str(exc) or expected, source) from None


def _read_config_file(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(
            "config file", str(path), f"a readable file ({exc.strerror})", str(path)
        ) from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            "config file",
            str(path),
            f"valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            str(path),
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("config file", str(path), "a JSON object at the top level", str(path))
    items: dict[object, object] = data  # pyright: ignore[reportUnknownVariableType]
    return {str(k): v for k, v in items.items()}


def update_config_file(path: Path, updates: Mapping[str, object]) -> None:
    """Set keys in the JSON config file, keeping every other key, atomically.

    The file is written to a temporary sibling and renamed over the original, so a crash never
    leaves a half-written config. A missing file (and its directory) is created.
    """
    current = _read_config_file(path)
    current.update(updates)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(current, handle, indent=2, sort_keys=True)
            handle.write("\n")
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


_OVERRIDING = frozenset({SourceKind.ENVIRONMENT, SourceKind.DOTENV, SourceKind.COMMAND_LINE})


def reload_file_settings(config: Config) -> Config:
    """``config`` with every setting the file decides re-read from ``config.config_path``.

    Settings taken from the environment, ``.env`` or the command line stay as they are; the
    others take the file's current value, or their default when the file no longer has them.
    A running server calls this when the file changes, so ``better-ccflare strategy set`` (or an
    edit by hand) applies without a restart. Blocking file I/O: call it off the event loop.

    Raises:
        ConfigError: The file is unreadable, or one of its values is invalid.
    """
    file_values = _read_config_file(config.config_path)
    values: dict[str, object] = {}
    sources = dict(config.sources)
    for setting in _SETTINGS:
        if setting.file_key is None or sources[setting.name].kind in _OVERRIDING:
            continue
        if setting.file_key in file_values:
            raw = file_values[setting.file_key]
            values[setting.name] = _parse(setting, setting.file_key, raw, str(config.config_path))
            sources[setting.name] = SettingSource(SourceKind.FILE, str(config.config_path))
        else:
            values[setting.name] = setting.default(config.config_dir)
            sources[setting.name] = SettingSource(SourceKind.DEFAULT)
    return msgspec.structs.replace(config, **values, sources=sources)


def write_file_settings(config: Config, changes: Mapping[str, object]) -> Config:
    """Validate ``changes`` (setting names to values), write them to the config file, and
    return the configuration with them applied.

    Blocking file I/O: call it off the event loop.

    Raises:
        ConfigError: A name is not a file setting, a value is invalid, or the environment (or
            ``.env``, or a command-line flag) sets the value, so the file's would be ignored.
    """
    by_name = {s.name: s for s in _SETTINGS}
    updates: dict[str, object] = {}
    for name, raw in changes.items():
        setting = by_name.get(name)
        if setting is None or setting.file_key is None:
            settable = ", ".join(sorted(s.name for s in _SETTINGS if s.file_key is not None))
            raise ConfigError(name, raw, f"one of the config-file settings: {settable}", "request")
        source = config.source_of(name)
        if source.kind in _OVERRIDING:
            raise ConfigError(
                name,
                raw,
                f"no change here while {source} sets it; change or unset it there",
                str(source),
            )
        value = _parse(setting, setting.file_key, raw, "request")
        updates[setting.file_key] = value.value if isinstance(value, StrEnum) else value
    update_config_file(config.config_path, updates)
    return reload_file_settings(config)
