"""The reply when no account can serve a request.

Clients must be able to act on it: the body says why the pool is out and when it will be back;
``Retry-After`` gives the wait; and the ``anthropic-ratelimit-unified-*`` headers are the ones
Claude Code reads from Anthropic itself, so it shows the user the real reset time instead of a
generic error. When every account is out because of a usage window or quota the status is 429,
as Anthropic would answer; otherwise (paused, awaiting re-login, overloaded, refused
credentials, no credit, unreachable) it is 503.

How much the body says depends on who asks. An operator (a client with an admin key) gets each
account's name, why it is out and until when. Anyone else gets only the kinds of
unavailability and the first time an account is back: the accounts' names and states are the
operator's business, not every API client's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum

import msgspec

from better_ccflare.core import Account, RateLimitReason
from better_ccflare.load_balancer import AccountUsage, is_usage_exhausted

from ._anthropic_errors import ErrorReply
from ._cooldowns import QUOTA_REASONS, UNREACHABLE_REASONS

__all__ = ["UnavailableReason", "describe_unavailable", "unavailable_reply"]

_RETRY_AFTER_UNKNOWN_S = 60
_RETRY_AFTER_MAX_S = 3600


class UnavailableReason(StrEnum):
    """Why one account cannot serve, in the order they take precedence."""

    REQUIRES_REAUTH = "requires_reauth"
    PAUSED = "paused"
    USAGE_EXHAUSTED = "usage_exhausted"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    CREDENTIALS_REJECTED = "credentials_rejected"
    OUT_OF_CREDITS = "out_of_credits"
    UNREACHABLE = "unreachable"
    """Failed connections or timeouts: the circuit breaker's short cooldown."""
    UNAVAILABLE = "unavailable"


class _AccountStatus(msgspec.Struct, frozen=True):
    name: str
    reason: UnavailableReason
    available_at: str | None


class _ErrorDetail(msgspec.Struct, frozen=True):
    type: str
    message: str
    next_available_at: str | None


class _DetailedErrorDetail(_ErrorDetail, frozen=True):
    accounts: tuple[_AccountStatus, ...]


class _ErrorBody(msgspec.Struct, frozen=True):
    error: _ErrorDetail
    type: str = "error"


def unavailable_reply(
    accounts: Sequence[Account],
    usage: Mapping[str, AccountUsage],
    now_ms: int,
    *,
    detailed: bool,
) -> ErrorReply:
    """Build the reply for a request that no account in ``accounts`` can serve.

    Args:
        accounts: The pool.
        usage: The accounts' usage windows, by account id.
        now_ms: The current time.
        detailed: Name each account with its reason (for admins); otherwise say only the kinds.
    """
    statuses = [_status_of(account, usage.get(account.id), now_ms) for account in accounts]
    known = [at for _, _, at in statuses if at is not None]
    next_ms = min(known) if known else None
    windowed = bool(statuses) and all(
        reason in (UnavailableReason.USAGE_EXHAUSTED, UnavailableReason.RATE_LIMITED)
        for _, reason, _ in statuses
    )
    status = 429 if windowed else 503
    error_type = "rate_limit_error" if windowed else "overloaded_error"
    detail = (
        _DetailedErrorDetail(
            type=error_type,
            message=_message(statuses),
            next_available_at=_iso(next_ms),
            accounts=tuple(_AccountStatus(n, reason, _iso(at)) for n, reason, at in statuses),
        )
        if detailed
        else _ErrorDetail(
            type=error_type,
            message=_plain_message(statuses, next_ms),
            next_available_at=_iso(next_ms),
        )
    )
    wait_s = _RETRY_AFTER_UNKNOWN_S
    if next_ms is not None:
        wait_s = min(max(1, -(-(next_ms - now_ms) // 1000)), _RETRY_AFTER_MAX_S)
    headers = [
        ("content-type", "application/json"),
        ("retry-after", str(wait_s)),
        ("x-better-ccflare-pool-status", "exhausted"),
        ("anthropic-ratelimit-unified-status", "rejected"),
    ]
    if next_ms is not None:
        headers.append(("anthropic-ratelimit-unified-reset", str(-(-next_ms // 1000))))
    return ErrorReply(
        status=status,
        headers=tuple(headers),
        body=msgspec.json.encode(_ErrorBody(error=detail)),
    )


def describe_unavailable(
    accounts: Sequence[Account], usage: Mapping[str, AccountUsage], now_ms: int
) -> str:
    """Each account's name and why it is out, until when: the detailed reply's message."""
    return _message([_status_of(account, usage.get(account.id), now_ms) for account in accounts])


def _status_of(
    account: Account, usage: AccountUsage | None, now_ms: int
) -> tuple[str, UnavailableReason, int | None]:
    limit = account.rate_limit
    if account.requires_reauth:
        return account.name, UnavailableReason.REQUIRES_REAUTH, None
    if account.paused:
        return account.name, UnavailableReason.PAUSED, None
    if is_usage_exhausted(usage, now_ms):
        return (
            account.name,
            UnavailableReason.USAGE_EXHAUSTED,
            usage.resets_at_ms if usage else None,
        )
    if limit.cooling_down(now_ms):
        return account.name, _cooldown_reason(limit.reason), limit.limited_until_ms
    return account.name, UnavailableReason.UNAVAILABLE, None


def _cooldown_reason(reason: RateLimitReason | None) -> UnavailableReason:
    if reason is None or reason in QUOTA_REASONS:
        return UnavailableReason.RATE_LIMITED
    if reason is RateLimitReason.CREDENTIALS_REJECTED:
        return UnavailableReason.CREDENTIALS_REJECTED
    if reason is RateLimitReason.OUT_OF_CREDITS:
        return UnavailableReason.OUT_OF_CREDITS
    if reason in UNREACHABLE_REASONS:
        return UnavailableReason.UNREACHABLE
    return UnavailableReason.OVERLOADED


def _message(statuses: Sequence[tuple[str, UnavailableReason, int | None]]) -> str:
    if not statuses:
        return "No accounts are configured. Add one with `better-ccflare account add`."
    parts = [
        f"{name} ({reason.value}{f' until {_iso(at)}' if at is not None else ''})"
        for name, reason, at in statuses
    ]
    return f"All {len(statuses)} account(s) are unavailable: " + ", ".join(parts) + "."


def _plain_message(
    statuses: Sequence[tuple[str, UnavailableReason, int | None]], next_ms: int | None
) -> str:
    if not statuses:
        return _message(statuses)
    present = {reason for _, reason, _ in statuses}
    kinds = ", ".join(r.value.replace("_", " ") for r in UnavailableReason if r in present)
    when = (
        f"the first is available again at {_iso(next_ms)}."
        if next_ms is not None
        else "retry later."
    )
    return f"No account can serve this request now ({kinds}); {when}"


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )
