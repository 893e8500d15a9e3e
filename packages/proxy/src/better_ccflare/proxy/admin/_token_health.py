"""Token health: how close each account's OAuth refresh token is to its assumed maximum age.

A pure classification by age (no network), shown by the CLI and the management API and logged
by the ``token-health`` background job, so an operator re-authenticates an account before its
refresh token dies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum

import msgspec

from better_ccflare.core import Account

__all__ = [
    "TokenHealthPolicy",
    "TokenHealthReport",
    "TokenHealthStatus",
    "check_token_health",
    "token_health",
]

_log = logging.getLogger("better_ccflare.proxy")

_DAY_MS = 24 * 3_600_000


class TokenHealthStatus(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"
    EXPIRED = "expired"
    NO_REFRESH_TOKEN = "no-refresh-token"  # noqa: S105 (a status name, not a secret)
    """An API-key account: nothing ages."""


class TokenHealthPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Age limits of an OAuth refresh token, in milliseconds."""

    max_age_ms: int = 90 * _DAY_MS
    critical_left_ms: int = 3 * _DAY_MS
    warning_left_ms: int = 7 * _DAY_MS
    warning_age_ms: int = 60 * _DAY_MS
    """A token older than this is a warning however long the maximum age leaves."""


class TokenHealthReport(msgspec.Struct, frozen=True, kw_only=True):
    """How close one account's refresh token is to its assumed maximum age. No secrets."""

    account_id: str
    account_name: str
    provider: str
    status: TokenHealthStatus
    requires_reauth: bool
    issued_at_ms: int | None = None
    """``refresh_token_issued_at_ms``, else the account's creation; ``None`` without a token."""
    expires_at_ms: int | None = None
    """``issued_at_ms`` plus the maximum age."""
    remaining_ms: int | None = None
    """Time left until ``expires_at_ms`` (negative once past)."""


_DEFAULT_TOKEN_POLICY = TokenHealthPolicy()


def token_health(
    account: Account, now_ms: int, policy: TokenHealthPolicy | None = None
) -> TokenHealthReport:
    """Classify ``account``'s refresh token by age alone (no network).

    Age is measured from ``refresh_token_issued_at_ms``, falling back to ``created_at_ms``. With
    the default policy a token is expired at 90 days, critical with 3 days or less left, a
    warning with 7 days or less left or when older than 60 days, and healthy otherwise.
    """
    policy = policy or _DEFAULT_TOKEN_POLICY
    base = TokenHealthReport(
        account_id=account.id,
        account_name=account.name,
        provider=account.provider,
        status=TokenHealthStatus.NO_REFRESH_TOKEN,
        requires_reauth=account.requires_reauth,
    )
    if account.credentials.refresh_token is None:
        return base
    issued = account.credentials.refresh_token_issued_at_ms or account.created_at_ms
    expires = issued + policy.max_age_ms
    remaining = expires - now_ms
    if remaining <= 0:
        status = TokenHealthStatus.EXPIRED
    elif remaining <= policy.critical_left_ms:
        status = TokenHealthStatus.CRITICAL
    elif remaining <= policy.warning_left_ms or now_ms - issued > policy.warning_age_ms:
        status = TokenHealthStatus.WARNING
    else:
        status = TokenHealthStatus.HEALTHY
    return msgspec.structs.replace(
        base, status=status, issued_at_ms=issued, expires_at_ms=expires, remaining_ms=remaining
    )


def check_token_health(
    accounts: Sequence[Account], now_ms: int, policy: TokenHealthPolicy | None = None
) -> list[TokenHealthReport]:
    """:func:`token_health` of every account, logging the ones that need attention."""
    reports = [token_health(account, now_ms, policy) for account in accounts]
    for report in reports:
        if report.requires_reauth:
            _log.warning(
                "Account %s (%s) needs re-authentication before it can be used again",
                report.account_name,
                report.account_id,
                extra={"data": _report_data(report)},
            )
        elif report.status in (
            TokenHealthStatus.WARNING,
            TokenHealthStatus.CRITICAL,
            TokenHealthStatus.EXPIRED,
        ):
            days_left = (report.remaining_ms or 0) / _DAY_MS
            _log.warning(
                "Account %s (%s): refresh token health is %s (%.1f days left of its assumed "
                "maximum age); re-authenticate the account soon",
                report.account_name,
                report.account_id,
                report.status,
                days_left,
                extra={"data": _report_data(report)},
            )
    return reports


def _report_data(report: TokenHealthReport) -> dict[str, object]:
    return {
        "account": report.account_name,
        "account_id": report.account_id,
        "status": str(report.status),
        "remaining_ms": report.remaining_ms,
    }
