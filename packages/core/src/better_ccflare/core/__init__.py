"""Domain types, configuration, errors and the clock shared by every better-ccflare package.

This package has no I/O of its own beyond reading the config and ``.env`` files; everything
else builds on these types.
"""

from ._accounts import (
    Account,
    AccountState,
    BillingType,
    Credentials,
    ModelMappings,
    PauseReason,
    ProviderKind,
    RateLimitReason,
    RateLimitState,
    SessionState,
    UsageSnapshot,
    UsageWindow,
)
from ._api_keys import ApiKey, ApiKeyRole, KeyLimits, KeyUsageTotals
from ._clock import Clock, FakeClock, SystemClock, Timer
from ._config import (
    DEFAULT_CLIENT_ID,
    Config,
    LogFormat,
    LogLevel,
    ModelPriceConfig,
    SettingSource,
    SourceKind,
    default_config_dir,
    load_config,
    redacted_url,
    reload_file_settings,
    update_config_file,
    write_file_settings,
)
from ._dotenv import parse_dotenv, read_dotenv
from ._errors import (
    BetterCcflareError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ._oauth import OAuthMode, OAuthSession
from ._requests import AgentAttributionSource, RequestRecord, StreamTerminalState, TokenUsage
from ._strategy import AgentPreference, SessionPin, StrategyName, StrategySettings

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CLIENT_ID",
    "Account",
    "AccountState",
    "AgentAttributionSource",
    "AgentPreference",
    "ApiKey",
    "ApiKeyRole",
    "BetterCcflareError",
    "BillingType",
    "Clock",
    "Config",
    "ConfigError",
    "ConflictError",
    "Credentials",
    "FakeClock",
    "InvalidInputError",
    "KeyLimits",
    "KeyUsageTotals",
    "LogFormat",
    "LogLevel",
    "ModelMappings",
    "ModelPriceConfig",
    "NotFoundError",
    "OAuthMode",
    "OAuthSession",
    "PauseReason",
    "ProviderKind",
    "RateLimitReason",
    "RateLimitState",
    "RequestRecord",
    "SessionPin",
    "SessionState",
    "SettingSource",
    "SourceKind",
    "StrategyName",
    "StrategySettings",
    "StreamTerminalState",
    "SystemClock",
    "Timer",
    "TokenUsage",
    "UsageSnapshot",
    "UsageWindow",
    "default_config_dir",
    "load_config",
    "parse_dotenv",
    "read_dotenv",
    "redacted_url",
    "reload_file_settings",
    "update_config_file",
    "write_file_settings",
]
