"""Upstream accounts and the state the proxy keeps about them.

Field meanings follow the reference better-ccflare ``accounts`` table so that an existing
database maps onto these types one to one; times are integer epoch milliseconds (``*_ms``).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = [
    "Account",
    "AccountState",
    "BillingType",
    "Credentials",
    "ModelMappings",
    "PauseReason",
    "ProviderKind",
    "RateLimitReason",
    "RateLimitState",
    "SessionState",
    "UsageSnapshot",
    "UsageWindow",
]


class ProviderKind(StrEnum):
    """The built-in account types, by the provider id stored in the database.

    Third-party providers register their own ids, so :attr:`Account.provider` is a plain
    ``str``: one of these values or a plugin's id.
    """

    CLAUDE_OAUTH = "anthropic"
    """A Claude subscription reached with OAuth tokens (the reference calls it ``anthropic``)."""
    CONSOLE = "claude-console-api"
    """An Anthropic console API key."""
    ZAI = "zai"
    MINIMAX = "minimax"
    NANOGPT = "nanogpt"
    VERTEX_AI = "vertex-ai"
    OPENAI_COMPATIBLE = "openai-compatible"
    ANTHROPIC_COMPATIBLE = "anthropic-compatible"


class PauseReason(StrEnum):
    """Why an account is paused; only some reasons may be lifted automatically."""

    MANUAL = "manual"
    OVERAGE = "overage"
    FAILURE_THRESHOLD = "failure_threshold"
    PEAK_HOURS = "peak_hours"
    RATE_LIMIT_WINDOW = "rate_limit_window"


class BillingType(StrEnum):
    """How a request on the account is paid for."""

    PLAN = "plan"
    API = "api"
    OVERAGE = "overage"


class RateLimitReason(StrEnum):
    """Why the proxy benched (or deliberately did not bench) an account."""

    UPSTREAM_429_WITH_RESET = "upstream_429_with_reset"
    UPSTREAM_429_NO_RESET_DEFAULT_5H = "upstream_429_no_reset_default_5h"
    UPSTREAM_429_NO_RESET_PROBE_COOLDOWN = "upstream_429_no_reset_probe_cooldown"
    MODEL_FALLBACK_429 = "model_fallback_429"
    ALL_MODELS_EXHAUSTED_429 = "all_models_exhausted_429"
    UPSTREAM_529_OVERLOADED_WITH_RESET = "upstream_529_overloaded_with_reset"
    UPSTREAM_529_OVERLOADED_NO_RESET = "upstream_529_overloaded_no_reset"
    OUT_OF_CREDITS = "out_of_credits"
    EXTRA_USAGE_EXHAUSTED = "extra_usage_exhausted"
    WINDOWLESS_429 = "windowless_429"
    CREDENTIALS_REJECTED = "credentials_rejected"
    """The upstream refused the account's credentials (401, or 403 for authentication or
    permission); for a refreshing provider, even after a forced refresh."""
    UPSTREAM_TIMEOUT = "upstream_timeout"
    """No response headers within the first-byte (or connect) deadline."""
    CONNECT_FAILED = "connect_failed"
    """The connection to the upstream could not be made."""


class AccountState(StrEnum):
    """What an account is doing, in one word, for ``/health``, the API, the CLI and metrics.

    ``requires_reauth``, ``credentials_rejected`` and ``out_of_credits`` need an operator (or
    a successful probe); ``paused`` and ``cooling_down`` end by themselves or by a resume.
    """

    READY = "ready"
    COOLING_DOWN = "cooling_down"
    PAUSED = "paused"
    REQUIRES_REAUTH = "requires_reauth"
    """The refresh token is dead: log in again."""
    CREDENTIALS_REJECTED = "credentials_rejected"
    """The upstream refused the credentials: replace them (or wait for a probe to pass)."""
    OUT_OF_CREDITS = "out_of_credits"
    """The upstream said the account has no credit: top it up (or wait for a probe)."""


ModelMappings = dict[str, tuple[str, ...]]
"""Model id or family (``opus``, ``sonnet``, ``haiku``, ``fable``) to an ordered list of models.

The first entry is used; later ones are in-account fallbacks.
"""


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    """What authenticates the proxy to the upstream on this account's behalf.

    The ``repr`` never shows a secret, so an account can be logged or printed safely.
    """

    api_key: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at_ms: int | None = None
    refresh_token_issued_at_ms: int | None = None

    def __repr__(self) -> str:
        held = [
            name
            for name in ("api_key", "access_token", "refresh_token")
            if getattr(self, name) is not None
        ]
        secrets = ", ".join(held) or "none"
        return f"Credentials(<redacted: {secrets}>, expires_at_ms={self.expires_at_ms})"

    def expires_within(self, now_ms: int, window_ms: int) -> bool:
        """True when an access token exists and expires less than ``window_ms`` from ``now_ms``."""
        return self.expires_at_ms is not None and self.expires_at_ms - now_ms < window_ms


class RateLimitState(msgspec.Struct, frozen=True, kw_only=True):
    """The upstream's last word on the account's limits, and any cooldown the proxy applied."""

    status: str | None = None
    """Last ``anthropic-ratelimit-unified-status`` seen (``allowed``, ``rate_limited``, ...)."""
    reset_at_ms: int | None = None
    """When the upstream said the current window resets."""
    remaining: int | None = None
    limited_until_ms: int | None = None
    """End of the proxy's cooldown; the account is not routed to before this."""
    reason: RateLimitReason | None = None
    limited_at_ms: int | None = None
    consecutive: int = 0
    """Consecutive rate limits, for exponential backoff."""
    failures: int = 0
    """Consecutive failures the circuit breaker counted (timeouts, failed connections,
    rejected credentials, out of credits); the next answer that is none of these resets it."""

    def cooling_down(self, now_ms: int) -> bool:
        """True while a cooldown is in force. A cooldown ends by itself at ``limited_until_ms``."""
        return self.limited_until_ms is not None and now_ms < self.limited_until_ms


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    """The account's current usage session: the window the ``session`` strategy sticks to."""

    started_at_ms: int | None = None
    request_count: int = 0


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """One upstream account in the pool."""

    id: str
    name: str
    provider: str
    """A :class:`ProviderKind` value or the id of a provider plugin."""
    created_at_ms: int
    credentials: Credentials = msgspec.field(default_factory=Credentials)
    priority: int = 0
    """Lower numbers are preferred."""
    paused: bool = False
    pause_reason: PauseReason | None = None
    requires_reauth: bool = False
    rate_limit: RateLimitState = msgspec.field(default_factory=RateLimitState)
    session: SessionState = msgspec.field(default_factory=SessionState)
    last_used_ms: int | None = None
    request_count: int = 0
    total_requests: int = 0
    auto_fallback_enabled: bool = False
    auto_refresh_enabled: bool = False
    auto_pause_on_overage_enabled: bool = False
    peak_hours_pause_enabled: bool = False
    custom_endpoint: str | None = None
    """A base URL, or provider-specific JSON (Vertex AI stores its project and region here)."""
    model_mappings: ModelMappings = msgspec.field(default_factory=dict[str, tuple[str, ...]])
    billing_type: BillingType | None = None

    def state(self, now_ms: int) -> AccountState:
        """The account's state, the most urgent first when several apply.

        Rejected credentials and a lack of credit stay the state after their bench ends (the
        next request is then a probe) until an answer shows otherwise: they need attention.
        """
        limit = self.rate_limit
        breaker = limit.reason if limit.failures else None
        if self.requires_reauth:
            return AccountState.REQUIRES_REAUTH
        if breaker is RateLimitReason.CREDENTIALS_REJECTED:
            return AccountState.CREDENTIALS_REJECTED
        if self.paused:
            return AccountState.PAUSED
        if breaker is RateLimitReason.OUT_OF_CREDITS:
            return AccountState.OUT_OF_CREDITS
        if limit.cooling_down(now_ms):
            return AccountState.COOLING_DOWN
        return AccountState.READY

    def is_available(self, now_ms: int) -> bool:
        """Routable right now: not paused, not awaiting re-login, not cooling down."""
        return (
            not self.paused
            and not self.requires_reauth
            and not self.rate_limit.cooling_down(now_ms)
        )


class UsageWindow(msgspec.Struct, frozen=True, kw_only=True):
    """One usage window as reported by a provider's usage endpoint."""

    key: str
    """``five_hour``, ``seven_day``, ``seven_day_opus``, ... or a provider's own window name."""
    utilization: float
    """Percent used, 0 to 100 (it can exceed 100 with overage)."""
    resets_at_ms: int | None = None


class UsageSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Every window of one account at one moment, as stored in ``usage_snapshots``."""

    account_id: str
    timestamp_ms: int
    windows: tuple[UsageWindow, ...]
