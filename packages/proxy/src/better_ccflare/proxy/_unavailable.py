"""The reply when no account can serve a request.

Clients must be able to act on it: the body says why the pool is out and when it will be back,
and ``Retry-After`` gives the wait. When the pool is out because usage windows are used up
(every account in rotation is out on a window: the upstream answered ``rejected`` for it, or
the usage poll reads 100 %, however soon it resets; paused accounts and those awaiting a
re-login change nothing), the reply is the one Anthropic gives a subscription at its limit: a
429 ``rate_limit_error`` with ``anthropic-ratelimit-unified-status: rejected``, the soonest
``anthropic-ratelimit-unified-reset`` (epoch seconds), and, when the usage poll knows them, the
``representative-claim`` (``five_hour``, ``seven_day``, ...) and the ``5h``/``7d`` windows of
the account that frees up first. Claude Code reads exactly these to say "limit reached, resets
at ..." instead of reporting a server error. Anything else (only paused accounts, an overload,
dead connections, refused credentials, no credit) is a 503 ``overloaded_error`` without those
headers, which clients retry.

How much the body says depends on who asks. An operator (a client with an admin key) gets each
account's name, why it is out and until when. Anyone else gets only the kinds of
unavailability and the first time an account is back: the accounts' names and states are the
operator's business, not every API client's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from ._anthropic_errors import ErrorReply
from ._capacity import AccountCapacity, UnavailableReason, pool_capacity

__all__ = ["describe_unavailable", "unavailable_reply"]

_RETRY_AFTER_UNKNOWN_S = 60
_RETRY_AFTER_MAX_S = 3600
_UNIFIED = "anthropic-ratelimit-unified-"
_WINDOW_HEADER_NAMES = {"five_hour": "5h", "seven_day": "7d"}
"""The per-window headers Anthropic sends (``…-unified-5h-status`` and so on), by window."""


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


_Status = tuple[str, UnavailableReason, int | None]


def unavailable_reply(
    accounts: Sequence[AccountCapacity], now_ms: int, *, detailed: bool
) -> ErrorReply:
    """Build the reply for a request that none of ``accounts`` can serve.

    Args:
        accounts: The capacity of each account the request may use.
        now_ms: The current time.
        detailed: Name each account with its reason (for admins); otherwise say only the kinds.
    """
    statuses = _statuses(accounts)
    pool = pool_capacity(accounts)
    next_ms = pool.available_at_ms
    windowed = pool.windows_exhausted
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
    ]
    if windowed:
        headers += _limit_headers(accounts, next_ms, now_ms)
    return ErrorReply(
        status=429 if windowed else 503,
        headers=tuple(headers),
        body=msgspec.json.encode(_ErrorBody(error=detail)),
    )


def describe_unavailable(accounts: Sequence[AccountCapacity]) -> str:
    """Each account's name and why it is out, until when: the detailed reply's message."""
    return _message(_statuses(accounts))


def _statuses(accounts: Sequence[AccountCapacity]) -> list[_Status]:
    return [
        (a.name, a.reason or UnavailableReason.UNAVAILABLE, a.available_at_ms) for a in accounts
    ]


def _limit_headers(
    accounts: Sequence[AccountCapacity], next_ms: int | None, now_ms: int
) -> list[tuple[str, str]]:
    """Anthropic's headers for a subscription at its limit, from the account that frees first."""
    headers = [(_UNIFIED + "status", "rejected")]
    if next_ms is not None:
        headers.append((_UNIFIED + "reset", str(_epoch_s(next_ms))))
    limited = [a for a in accounts if a.in_rotation and a.window_limited]
    first = min(limited, key=lambda a: (a.available_at_ms is None, a.available_at_ms or 0))
    if first.limiting_window is not None:
        headers.append((_UNIFIED + "representative-claim", first.limiting_window))
    for window in first.windows:
        short = _WINDOW_HEADER_NAMES.get(window.key)
        if short is None:
            continue
        prefix = f"{_UNIFIED}{short}-"
        headers.append((prefix + "status", "rejected" if window.exhausted else "allowed"))
        if window.resets_at_ms is not None and window.resets_at_ms > now_ms:
            headers.append((prefix + "reset", str(_epoch_s(window.resets_at_ms))))
        headers.append((prefix + "utilization", f"{window.utilization / 100:.4g}"))
    return headers


def _epoch_s(ms: int) -> int:
    """Epoch seconds, rounded up: a client told to come back then finds the window reset."""
    return -(-ms // 1000)


def _message(statuses: Sequence[_Status]) -> str:
    if not statuses:
        return "No accounts are configured. Add one with `better-ccflare account add`."
    parts = [
        f"{name} ({reason.value}{f' until {_iso(at)}' if at is not None else ''})"
        for name, reason, at in statuses
    ]
    return f"All {len(statuses)} account(s) are unavailable: " + ", ".join(parts) + "."


def _plain_message(statuses: Sequence[_Status], next_ms: int | None) -> str:
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
