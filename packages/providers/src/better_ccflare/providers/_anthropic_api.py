"""The Anthropic API as an upstream: its address, and what its responses say about capacity.

Claude OAuth and console accounts both talk to :data:`ANTHROPIC_API`, and every Anthropic-shaped
upstream (z.ai, Minimax, NanoGPT, Anthropic-compatible gateways, plugins) reports rate limits in
Anthropic's ``anthropic-ratelimit-*`` headers, so :func:`classify_anthropic_rate_limit` is the
:class:`~._contract.Provider` default and the fallback of the providers that read more.

The reading is a pure function of status, headers and body. The proxy acts on the
:class:`~._readings.RateLimitKind`: it benches an account only for an account-wide quota, and
fails over without benching for everything else. Benching on a request-scoped 429 once drained
whole pools in the reference, so a 429 counts as a quota only when the upstream says something
account-wide about it.

Anthropic table (the first matching row wins; "signals" are defined below):

=============================================================  ==============
Response                                                       Kind
=============================================================  ==============
429 and ``…-unified-overage-disabled-reason: out_of_credits``  OUT_OF_CREDITS
400, 402, 403 or 429 whose error body says ``billing_error``   OUT_OF_CREDITS
or that the credit balance is too low
529                                                            OVERLOADED
``…-unified-status`` in HARD_STATUSES (any HTTP status)        ACCOUNT_QUOTA
429 with an account-wide signal                                ACCOUNT_QUOTA
any other 429 (e.g. ``x-should-retry: true`` alone)            REQUEST_SCOPED
anything else                                                  NONE
=============================================================  ==============

* ``…-unified-`` abbreviates ``anthropic-ratelimit-unified-``.
* HARD_STATUSES: ``rate_limited``, ``blocked``, ``queueing_hard``, ``payment_required``, and
  ``rejected`` (what the Anthropic API actually sends on a plan 429). ``allowed``,
  ``allowed_warning`` and ``queueing_soft`` are soft.
* Account-wide signals: any ``anthropic-ratelimit-unified-*`` header, ``retry-after``,
  ``x-ratelimit-reset``, or ``anthropic-ratelimit-{requests,tokens,input-tokens,
  output-tokens}-reset``.

Every row carries what the headers say, so the proxy can store it even when not limited:
``status`` from ``…-unified-status``; ``remaining`` from ``…-unified-remaining``; ``window``
from ``…-unified-representative-claim`` (``five_hour``, ``seven_day``, ...); ``reset_at_ms``
from the first usable of ``…-unified-reset`` (epoch seconds), ``retry-after`` (seconds or an
HTTP date), ``x-ratelimit-reset`` (epoch seconds, epoch milliseconds, or seconds from now when
below 10^9), then the latest ``anthropic-ratelimit-*-reset`` (RFC 3339). REQUEST_SCOPED never
carries a reset, since by definition it had none.

Resets are sanity-clamped: one at or before now is ignored (the next source is tried), one more
than :data:`MAX_RESET_AHEAD_MS` away is pulled in to that, and for OVERLOADED to
:data:`MAX_OVERLOAD_RESET_AHEAD_MS`. No header value, however malformed, raises.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ._endpoint import Endpoint
from ._readings import RateLimitInfo, RateLimitKind

__all__ = [
    "ANTHROPIC_API",
    "HARD_STATUSES",
    "MAX_OVERLOAD_RESET_AHEAD_MS",
    "MAX_RESET_AHEAD_MS",
    "clamp_reset_ms",
    "classify_anthropic_rate_limit",
]

ANTHROPIC_API = Endpoint(
    ("BETTER_CCFLARE_ANTHROPIC_API_URL",),
    "https://api.anthropic.com",
    "Anthropic API for Claude OAuth and console accounts, and the OAuth usage endpoint.",
)

_UNIFIED = "anthropic-ratelimit-unified-"
HARD_STATUSES = frozenset(
    {"rate_limited", "blocked", "queueing_hard", "payment_required", "rejected"}
)
"""``anthropic-ratelimit-unified-status`` values meaning the account cannot be used now."""
MAX_RESET_AHEAD_MS = 8 * 24 * 3600 * 1000
"""No window is longer than a week; a reset further out than this is a bad header."""
MAX_OVERLOAD_RESET_AHEAD_MS = 24 * 3600 * 1000
"""An overload is transient; never trust a 529 to say so for more than a day."""

_STANDARD_RESETS = tuple(
    f"anthropic-ratelimit-{kind}-reset"
    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
)
_EPOCH_S_THRESHOLD = 1_000_000_000
_EPOCH_MS_THRESHOLD = 1_000_000_000_000
_NUMBER_LIMIT = 1e15


def classify_anthropic_rate_limit(
    *, status: int, headers: Mapping[str, str], body: bytes | None = None, now_ms: int
) -> RateLimitInfo:
    """Classify a response from an Anthropic-shaped upstream; see the module's table.

    Args:
        status: HTTP status code.
        headers: Response headers with lower-case names.
        body: The body or a prefix of it; only an error's is read, for lack of credit.
        now_ms: The current time, for relative and sanity-checked resets.
    """
    unified_status = _text(headers, _UNIFIED + "status")
    remaining = _non_negative_int(headers.get(_UNIFIED + "remaining"))
    window = _text(headers, _UNIFIED + "representative-claim")

    if (
        status == 429 and _text(headers, _UNIFIED + "overage-disabled-reason") == "out_of_credits"
    ) or (status in _BILLING_STATUSES and _says_no_credit(body)):
        kind = RateLimitKind.OUT_OF_CREDITS
    elif status == 529:
        kind = RateLimitKind.OVERLOADED
    elif unified_status in HARD_STATUSES or (status == 429 and _has_account_signal(headers)):
        kind = RateLimitKind.ACCOUNT_QUOTA
    elif status == 429:
        return RateLimitInfo(
            kind=RateLimitKind.REQUEST_SCOPED,
            status=unified_status,
            remaining=remaining,
            window=window,
        )
    else:
        kind = RateLimitKind.NONE

    limit = MAX_OVERLOAD_RESET_AHEAD_MS if kind is RateLimitKind.OVERLOADED else MAX_RESET_AHEAD_MS
    return RateLimitInfo(
        kind=kind,
        status=unified_status,
        reset_at_ms=_reset_at_ms(headers, now_ms, limit),
        remaining=remaining,
        window=window,
    )


_BILLING_STATUSES = frozenset({400, 402, 403, 429})
_NO_CREDIT_MARKERS = (b'"billing_error"', b"credit balance is too low", b"out of credits")
"""What Anthropic's error bodies say when an account cannot pay: the ``billing_error`` type,
or an ``invalid_request_error`` telling a console key its credit balance is too low."""


def _says_no_credit(body: bytes | None) -> bool:
    if not body:
        return False
    lowered = body.lower()
    return any(marker in lowered for marker in _NO_CREDIT_MARKERS)


def _has_account_signal(headers: Mapping[str, str]) -> bool:
    return any(
        name.startswith(_UNIFIED)
        or name in ("retry-after", "x-ratelimit-reset")
        or name in _STANDARD_RESETS
        for name in headers
    )


def _reset_at_ms(headers: Mapping[str, str], now_ms: int, limit_ms: int) -> int | None:
    """The first usable reset among the sources, in the module docstring's order."""
    for candidate in _reset_candidates(headers, now_ms):
        clamped = clamp_reset_ms(candidate, now_ms, limit_ms)
        if clamped is not None:
            return clamped
    return None


def _reset_candidates(headers: Mapping[str, str], now_ms: int) -> Iterator[int | None]:
    """The resets the headers name, best source first, each read only when the ones before it
    gave nothing usable: every response passes here, and Anthropic's name a unified reset, so
    the four RFC 3339 resets after it are seldom parsed."""
    yield _epoch_seconds_ms(headers.get(_UNIFIED + "reset"))
    yield _retry_after_ms(headers.get("retry-after"), now_ms)
    yield _flexible_reset_ms(headers.get("x-ratelimit-reset"), now_ms)
    yield _latest_rfc3339_ms(map(headers.get, _STANDARD_RESETS))


def clamp_reset_ms(reset_at_ms: int | None, now_ms: int, limit_ms: int) -> int | None:
    """``reset_at_ms`` if it is after now, pulled in to ``now_ms + limit_ms``; else ``None``."""
    if reset_at_ms is None or reset_at_ms <= now_ms:
        return None
    return min(reset_at_ms, now_ms + limit_ms)


def _text(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    return value.strip().lower() or None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    # Beyond this no header value means anything, and the ms arithmetic could overflow.
    return number if math.isfinite(number) and abs(number) < _NUMBER_LIMIT else None


def _non_negative_int(value: str | None) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 0 else None


def _epoch_seconds_ms(value: str | None) -> int | None:
    number = _number(value)
    return int(number * 1000) if number is not None else None


def _retry_after_ms(value: str | None, now_ms: int) -> int | None:
    """``Retry-After`` is delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return now_ms + int(seconds * 1000)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _datetime_ms(when)


def _flexible_reset_ms(value: str | None, now_ms: int) -> int | None:
    """Upstreams disagree on ``x-ratelimit-reset``; the magnitude tells the unit apart."""
    number = _number(value)
    if number is None:
        return None
    if number >= _EPOCH_MS_THRESHOLD:
        return int(number)
    if number >= _EPOCH_S_THRESHOLD:
        return int(number * 1000)
    return now_ms + int(number * 1000)


def _latest_rfc3339_ms(values: Iterable[str | None]) -> int | None:
    """The latest of the RFC 3339 times among ``values`` (absent and unreadable ones skipped)."""
    return max(filter(None, map(_rfc3339_ms, filter(None, values))), default=None)


@functools.lru_cache(maxsize=256)
def _rfc3339_ms(value: str) -> int | None:
    """One RFC 3339 time in epoch ms, or ``None``. Remembered: an API key's four reset headers
    repeat the same few instants across many responses, and parsing is the costly part."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _datetime_ms(when)


def _datetime_ms(when: datetime) -> int | None:
    try:
        return int(when.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        return None
