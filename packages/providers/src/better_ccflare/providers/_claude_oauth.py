"""Claude subscriptions reached with OAuth tokens (provider id ``anthropic``).

Requests carry ``Authorization: Bearer <access token>`` and the ``oauth-2025-04-20`` beta, which
the API requires for OAuth tokens; every other client header (``anthropic-version``,
``user-agent``, ``x-stainless-*``) is forwarded untouched so traffic looks like the client's
own. Tokens are refreshed with the account's refresh token, and usage windows are polled from
the OAuth usage endpoint (``/api/oauth/usage``), which also reports pay-as-you-go overage and
the per-seat spend cap: see :func:`parse_claude_usage`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import ClassVar

import httpx2
import msgspec

from better_ccflare.core import (
    DEFAULT_CLIENT_ID,
    Account,
    Credentials,
    OAuthMode,
    ProviderKind,
    UsageWindow,
)

from ._account_fields import CUSTOM_ENDPOINT_FIELD, AccountField
from ._anthropic_api import ANTHROPIC_API
from ._anthropic_compatible import EndpointProvider
from ._contract import AccountConfigError
from ._endpoint import Endpoint
from ._headers import append_anthropic_beta
from ._oauth import refresh_access_token
from ._usage_fetch import decode_usage, get_usage
from ._usage_windows import HARD_WINDOWS

__all__ = [
    "OAUTH_BETA",
    "ClaudeOAuthProvider",
    "ClaudeUsage",
    "ExtraUsage",
    "Money",
    "Spend",
    "fetch_claude_usage",
    "parse_claude_usage",
]

OAUTH_BETA = "oauth-2025-04-20"
"""The ``anthropic-beta`` flag that lets the Messages API accept OAuth access tokens."""
_REFRESH_WINDOW_MS = 30 * 60_000
"""Refresh this long before expiry, so a long request never starts on a dying token."""
_USAGE_USER_AGENT = "claude-code/2.1.238"
"""Claude Code's own usage poll sends this; anything else stands out (see the ban risk)."""


class ClaudeOAuthProvider(EndpointProvider):
    """A Claude Pro/Max subscription.

    Args:
        client_id: The OAuth client id refresh tokens were issued to (the config's
            ``client_id``).
    """

    id: ClassVar[str] = ProviderKind.CLAUDE_OAUTH.value
    display_name: ClassVar[str] = "Claude subscription"
    default_endpoint: ClassVar[Endpoint] = ANTHROPIC_API
    refreshes_tokens: ClassVar[bool] = True
    account_fields: ClassVar[tuple[AccountField, ...]] = (CUSTOM_ENDPOINT_FIELD,)
    oauth_login: ClassVar[OAuthMode | None] = OAuthMode.CLAUDE_OAUTH

    type_aliases: ClassVar[tuple[str, ...]] = ("claude-oauth", "max")
    """The names ``--mode`` used before (``max``: the TypeScript original's oldest)."""

    def __init__(self, *, client_id: str = DEFAULT_CLIENT_ID) -> None:
        self.client_id = client_id

    def prepare_headers(
        self, headers: dict[str, str], account: Account, credentials: Credentials
    ) -> None:
        headers["authorization"] = f"Bearer {_access_token(account, credentials)}"
        append_anthropic_beta(headers, OAUTH_BETA)

    def needs_refresh(self, credentials: Credentials, now_ms: int) -> bool:
        return not credentials.access_token or credentials.expires_within(
            now_ms, _REFRESH_WINDOW_MS
        )

    async def refresh_credentials(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> Credentials:
        """Trade the refresh token for a new access token (and usually a new refresh token).

        Raises:
            AccountConfigError: The account has no refresh token.
            ReauthRequiredError: The refresh token is dead; the user must log in again.
            OAuthTransientError: The token endpoint failed in a way worth retrying later.
        """
        current = account.credentials
        if not current.refresh_token:
            raise AccountConfigError(
                account, "no refresh token is stored", "Log in to the account again."
            )
        fresh = await refresh_access_token(
            client, refresh_token=current.refresh_token, client_id=self.client_id, now_ms=now_ms
        )
        # The refresh reports None for an unrotated token's issue time: keep the stored one.
        issued_at = fresh.refresh_token_issued_at_ms or current.refresh_token_issued_at_ms
        return Credentials(
            access_token=fresh.access_token,
            refresh_token=fresh.refresh_token,
            expires_at_ms=fresh.expires_at_ms,
            refresh_token_issued_at_ms=issued_at,
        )

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...]:
        token = _access_token(account, account.credentials)
        return (await fetch_claude_usage(client, access_token=token)).windows


def _access_token(account: Account, credentials: Credentials) -> str:
    if not credentials.access_token:
        raise AccountConfigError(
            account,
            "no OAuth access token is available",
            "Refresh the account's credentials first, or log in to it again.",
        )
    return credentials.access_token


# --------------------------------------------------------------------------- usage


class ExtraUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Pay-as-you-go overage on a subscription, as the endpoint reports it (credit units)."""

    is_enabled: bool = False
    monthly_limit: float | None = None
    used_credits: float | None = None
    utilization: float | None = None
    """Percent of ``monthly_limit`` used."""
    disabled_reason: str | None = None


class Money(msgspec.Struct, frozen=True, kw_only=True):
    amount_minor: int
    currency: str | None = None
    exponent: int = 2

    @property
    def amount(self) -> float:
        """The amount in major units (dollars, euros)."""
        return self.amount_minor / 10**self.exponent


class Spend(msgspec.Struct, frozen=True, kw_only=True):
    """The per-seat monthly spend cap (2026 format)."""

    enabled: bool | None = None
    used: Money | None = None
    limit: Money | None = None
    percent: float | None = None
    severity: str | None = None
    disabled_reason: str | None = None


class ClaudeUsage(msgspec.Struct, frozen=True, kw_only=True):
    """What ``/api/oauth/usage`` says about a Claude subscription."""

    windows: tuple[UsageWindow, ...] = ()
    extra_usage: ExtraUsage | None = None
    spend: Spend | None = None

    @property
    def representative_utilization(self) -> float | None:
        """The highest use of any account-wide window; ``None`` when the endpoint gave none.

        Per-model weekly caps and overage are left out: they do not stop the account serving
        other models, so they must not take it out of rotation.
        """
        hard = self._hard_windows()
        return max(w.utilization for w in hard) if hard else None

    @property
    def representative_reset_ms(self) -> int | None:
        """When the most used account-wide window resets (the later one on a tie)."""
        hard = self._hard_windows()
        if not hard:
            return None
        top = max(w.utilization for w in hard)
        resets = [w.resets_at_ms for w in hard if w.utilization == top and w.resets_at_ms]
        return max(resets) if resets else None

    def _hard_windows(self) -> list[UsageWindow]:
        return [w for w in self.windows if w.key in HARD_WINDOWS]


class _LegacyWindow(msgspec.Struct):
    utilization: float | None = None
    resets_at: str | None = None


class _ScopeModel(msgspec.Struct):
    id: str | None = None
    display_name: str | None = None


class _Scope(msgspec.Struct):
    model: _ScopeModel | None = None


class _Limit(msgspec.Struct):
    kind: str | None = None
    percent: float | None = None
    resets_at: str | None = None
    scope: _Scope | None = None


class _Money(msgspec.Struct):
    amount_minor: int | None = None
    currency: str | None = None
    exponent: int | None = None


class _Spend(msgspec.Struct):
    enabled: bool | None = None
    used: _Money | None = None
    limit: _Money | None = None
    percent: float | None = None
    severity: str | None = None
    currency: str | None = None
    disabled_reason: str | None = None


class _ExtraUsage(msgspec.Struct):
    is_enabled: bool | None = None
    monthly_limit: float | None = None
    used_credits: float | None = None
    utilization: float | None = None
    disabled_reason: str | None = None


class _ClaudePayload(msgspec.Struct):
    five_hour: _LegacyWindow | None = None
    seven_day: _LegacyWindow | None = None
    seven_day_oauth_apps: _LegacyWindow | None = None
    seven_day_opus: _LegacyWindow | None = None
    seven_day_sonnet: _LegacyWindow | None = None
    seven_day_fable: _LegacyWindow | None = None
    limits: list[_Limit] | None = None
    extra_usage: _ExtraUsage | None = None
    spend: _Spend | None = None


_LEGACY_KEYS = (
    "five_hour",
    "seven_day",
    "seven_day_oauth_apps",
    "seven_day_opus",
    "seven_day_sonnet",
    "seven_day_fable",
)
_LIMIT_KINDS = {"session": "five_hour", "weekly_all": "seven_day"}


async def fetch_claude_usage(client: httpx2.AsyncClient, *, access_token: str) -> ClaudeUsage:
    """Read a Claude OAuth account's usage windows, looking like Claude Code's own poll."""
    headers = {
        "authorization": f"Bearer {access_token}",
        "anthropic-beta": OAUTH_BETA,
        "user-agent": _USAGE_USER_AGENT,
        "accept": "application/json",
        "content-type": "application/json",
    }
    url = f"{ANTHROPIC_API.url()}/api/oauth/usage"
    return parse_claude_usage(await get_usage(client, url, headers, provider="Claude"))


def parse_claude_usage(payload: bytes) -> ClaudeUsage:
    """Parse ``/api/oauth/usage``: legacy windows, the 2026 ``limits[]``, overage and spend.

    ``limits[]`` maps ``session`` to ``five_hour``, ``weekly_all`` to ``seven_day`` and each
    ``weekly_scoped`` entry to ``seven_day_<model name slug>``. Where both forms describe the
    same window, ``limits[]`` wins: it is the newer source and the only one with every
    per-model cap.
    """
    body = decode_usage(payload, _ClaudePayload, provider="Claude")
    windows: dict[str, UsageWindow] = {}
    for key in _LEGACY_KEYS:
        legacy: _LegacyWindow | None = getattr(body, key)
        if legacy is not None and legacy.utilization is not None:
            windows[key] = UsageWindow(
                key=key, utilization=legacy.utilization, resets_at_ms=_iso_ms(legacy.resets_at)
            )
    from_limits: dict[str, UsageWindow] = {}
    for limit in body.limits or ():
        key = _limit_key(limit)
        if key is None or limit.percent is None:
            continue
        known = from_limits.get(key)
        if known is None or limit.percent > known.utilization:
            from_limits[key] = UsageWindow(
                key=key, utilization=limit.percent, resets_at_ms=_iso_ms(limit.resets_at)
            )
    windows.update(from_limits)
    return ClaudeUsage(
        windows=tuple(windows.values()),
        extra_usage=_extra_usage(body.extra_usage),
        spend=_spend(body.spend),
    )


def _limit_key(limit: _Limit) -> str | None:
    if limit.kind in _LIMIT_KINDS:
        return _LIMIT_KINDS[limit.kind]
    if limit.kind != "weekly_scoped":
        return None
    model = limit.scope.model if limit.scope else None
    name = (model.display_name or model.id) if model else None
    slug = re.sub(r"[^a-z0-9]+", "_", (name or "").lower()).strip("_")
    return f"seven_day_{slug or 'scoped'}"


def _extra_usage(raw: _ExtraUsage | None) -> ExtraUsage | None:
    if raw is None:
        return None
    return ExtraUsage(
        is_enabled=bool(raw.is_enabled),
        monthly_limit=raw.monthly_limit,
        used_credits=raw.used_credits,
        utilization=raw.utilization,
        disabled_reason=raw.disabled_reason,
    )


def _spend(raw: _Spend | None) -> Spend | None:
    if raw is None:
        return None

    def money(value: _Money | None) -> Money | None:
        if value is None or value.amount_minor is None:
            return None
        currency = value.currency or raw.currency
        exponent = 2 if value.exponent is None else value.exponent
        return Money(amount_minor=value.amount_minor, currency=currency, exponent=exponent)

    return Spend(
        enabled=raw.enabled,
        used=money(raw.used),
        limit=money(raw.limit),
        percent=raw.percent,
        severity=raw.severity,
        disabled_reason=raw.disabled_reason,
    )


def _iso_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)
