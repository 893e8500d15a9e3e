"""Usage windows from the providers' own quota endpoints: Claude OAuth, z.ai, Minimax, NanoGPT.

Each provider has a fetcher (one GET with a 5 s timeout) and a pure parser of the response bytes,
so the parsers can be tested on recorded payloads. None of these endpoints is documented as a
public API; the shapes below are the ones observed in the wild, parsed defensively: unknown
fields are ignored, missing ones leave a window out rather than inventing a number.

Every window is reported as percent used, 0 to 100, with its reset time in epoch milliseconds.
Failures raise :class:`UsageFetchError`; on a 429 it carries the server's ``retry-after`` so the
poller can wait exactly that long.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import httpx2
import msgspec

from better_ccflare.core import BetterCcflareError, SystemClock, UsageWindow

from ._endpoints import ANTHROPIC_API, MINIMAX_USAGE, NANOGPT_API, ZAI_USAGE
from ._oauth import parse_retry_after_ms

__all__ = [
    "HARD_WINDOWS",
    "ClaudeUsage",
    "ExtraUsage",
    "Money",
    "Spend",
    "UsageFetchError",
    "fetch_claude_usage",
    "fetch_minimax_usage",
    "fetch_nanogpt_usage",
    "fetch_zai_usage",
    "parse_claude_usage",
    "parse_minimax_usage",
    "parse_nanogpt_usage",
    "parse_zai_usage",
]

_TIMEOUT = httpx2.Timeout(5.0)
"""Polling runs for every account; a stalled endpoint must not pile up requests."""
_CLAUDE_USER_AGENT = "claude-code/2.1.238"
"""Claude Code's own usage poll sends this; anything else stands out (see the ban risk)."""
_CLAUDE_OAUTH_BETA = "oauth-2025-04-20"

HARD_WINDOWS = frozenset({"five_hour", "seven_day", "seven_day_oauth_apps"})
"""Windows that gate the whole account. Per-model weekly caps only gate that model."""


class UsageFetchError(BetterCcflareError):
    """A usage endpoint could not be read or did not say anything usable."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_ms: int | None = None
    ) -> None:
        self.status = status
        self.retry_after_ms = retry_after_ms
        super().__init__(message)


# --------------------------------------------------------------------------- Claude OAuth


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
        "anthropic-beta": _CLAUDE_OAUTH_BETA,
        "user-agent": _CLAUDE_USER_AGENT,
        "accept": "application/json",
        "content-type": "application/json",
    }
    url = f"{ANTHROPIC_API.url()}/api/oauth/usage"
    return parse_claude_usage(await _get(client, url, headers, provider="Claude"))


def parse_claude_usage(payload: bytes) -> ClaudeUsage:
    """Parse ``/api/oauth/usage``: legacy windows, the 2026 ``limits[]``, overage and spend.

    ``limits[]`` maps ``session`` to ``five_hour``, ``weekly_all`` to ``seven_day`` and each
    ``weekly_scoped`` entry to ``seven_day_<model name slug>``. Where both forms describe the
    same window, ``limits[]`` wins: it is the newer source and the only one with every
    per-model cap.
    """
    body = _decode(payload, _ClaudePayload, provider="Claude")
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


# --------------------------------------------------------------------------- z.ai


class _ZaiLimit(msgspec.Struct):
    type: str | None = None
    unit: int | None = None
    number: int | None = None
    percentage: float | None = None
    next_reset_time: int | None = msgspec.field(default=None, name="nextResetTime")


class _ZaiNamedLimit(msgspec.Struct):
    """The reference implementation's normalised form: ``{percentage, resetAt}``."""

    percentage: float | None = None
    reset_at: int | None = msgspec.field(default=None, name="resetAt")


class _ZaiBody(msgspec.Struct):
    limits: list[_ZaiLimit] | None = None
    tokens_limit: _ZaiNamedLimit | None = None
    tokens_limit_weekly: _ZaiNamedLimit | None = None
    time_limit: _ZaiNamedLimit | None = None


class _ZaiEnvelope(_ZaiBody):
    code: int | None = None
    msg: str | None = None
    success: bool | None = None
    data: _ZaiBody | None = None


_ZAI_WEEK_UNIT = 6


async def fetch_zai_usage(client: httpx2.AsyncClient, *, api_key: str) -> tuple[UsageWindow, ...]:
    """Read a z.ai coding plan's quota.

    The key goes in ``Authorization`` without a scheme, as z.ai's own usage plugin sends it,
    and in ``x-api-key``, as the reference sent it; the endpoint accepts either.
    """
    headers = {"authorization": api_key, "x-api-key": api_key, "accept": "application/json"}
    return parse_zai_usage(await _get(client, ZAI_USAGE.url(), headers, provider="z.ai"))


def parse_zai_usage(payload: bytes) -> tuple[UsageWindow, ...]:
    """Parse z.ai's ``/api/monitor/usage/quota/limit``.

    The live shape is ``{code, msg, success, data: {limits: [{type, unit, number, percentage,
    nextResetTime}]}}``. A plan can carry several ``TOKENS_LIMIT`` entries (a 5-hour one and,
    with ``unit`` 6, a weekly one): the one resetting soonest is ``tokens_limit``, the weekly one
    ``tokens_limit_weekly``, any other ``tokens_limit_<n>``. ``TIME_LIMIT`` (the monthly MCP tool
    allowance) is ``time_limit``. The reference's normalised ``{tokens_limit, time_limit:
    {percentage, resetAt}}`` is accepted too. z.ai answers auth failures with HTTP 200 and
    ``{"code": 401, "success": false}``, so the envelope is checked as well as the status.
    """
    envelope = _decode(payload, _ZaiEnvelope, provider="z.ai")
    if envelope.success is False or (envelope.code is not None and envelope.code != 200):
        raise UsageFetchError(
            f"z.ai refused the usage request: {envelope.msg or 'no message'} "
            f"(code {envelope.code}). Check the account's API key.",
            status=envelope.code,
        )
    body = envelope.data or envelope
    windows: list[UsageWindow] = []
    for key in ("tokens_limit", "tokens_limit_weekly", "time_limit"):
        named: _ZaiNamedLimit | None = getattr(body, key)
        if named is not None and named.percentage is not None:
            windows.append(_window(key, named.percentage, named.reset_at))
    readings = [
        (entry.type, entry.unit, _window("", entry.percentage, entry.next_reset_time))
        for entry in body.limits or ()
        if entry.percentage is not None
    ]
    tokens = sorted(
        ((unit, window) for kind, unit, window in readings if kind == "TOKENS_LIMIT"),
        key=lambda reading: (reading[1].resets_at_ms is None, reading[1].resets_at_ms or 0),
    )
    for position, (unit, window) in enumerate(tokens):
        if position == 0:
            key = "tokens_limit"
        elif unit == _ZAI_WEEK_UNIT:
            key = "tokens_limit_weekly"
        else:
            key = f"tokens_limit_{position + 1}"
        windows.append(msgspec.structs.replace(window, key=key))
    windows.extend(
        msgspec.structs.replace(window, key="time_limit")
        for kind, _, window in readings
        if kind == "TIME_LIMIT"
    )
    if not windows:
        raise UsageFetchError("z.ai's usage response had no quota limits in it.")
    return _unique(windows)


# --------------------------------------------------------------------------- Minimax


class _MinimaxRow(msgspec.Struct):
    model_name: str | None = None
    current_interval_remaining_percent: float | None = None
    current_interval_total_count: float | None = None
    current_interval_usage_count: float | None = None
    end_time: int | None = None
    remains_time: int | None = None
    current_weekly_remaining_percent: float | None = None
    current_weekly_total_count: float | None = None
    current_weekly_usage_count: float | None = None
    weekly_end_time: int | None = None
    weekly_remains_time: int | None = None


class _MinimaxStatus(msgspec.Struct):
    status_code: int | None = None
    status_msg: str | None = None


class _MinimaxPayload(msgspec.Struct):
    base_resp: _MinimaxStatus | None = None
    model_remains: list[_MinimaxRow] | None = None


async def fetch_minimax_usage(
    client: httpx2.AsyncClient, *, api_key: str, now_ms: int | None = None
) -> tuple[UsageWindow, ...]:
    """Read a Minimax token plan's quota.

    Args:
        now_ms: The time to add ``remains_time`` durations to when a row has no ``end_time``;
            defaults to the system clock.
    """
    headers = {"authorization": f"Bearer {api_key}", "accept": "application/json"}
    payload = await _get(client, MINIMAX_USAGE.url(), headers, provider="Minimax")
    return parse_minimax_usage(payload, now_ms=SystemClock().now_ms() if now_ms is None else now_ms)


def parse_minimax_usage(payload: bytes, *, now_ms: int) -> tuple[UsageWindow, ...]:
    """Parse Minimax's ``/v1/token_plan/remains`` (and the older ``coding_plan/remains``).

    Assumed shape: ``{base_resp: {status_code, status_msg}, model_remains: [row]}`` with one
    row per model class. Only the text-inference row counts: ``model_name == "general"``, or
    on the older endpoint the first ``MiniMax-M*`` row; ``video`` and other media pools are
    separate quotas and are never substituted. From that row:

    * ``five_hour`` from ``current_interval_remaining_percent`` (percent *remaining*, so it is
      inverted), else from ``current_interval_total_count`` and
      ``current_interval_usage_count``, which despite its name is the *remaining* count;
    * ``seven_day`` from the ``current_weekly_*`` fields the same way, when present;
    * resets from ``end_time`` / ``weekly_end_time`` (epoch ms), else ``now_ms`` plus
      ``remains_time`` / ``weekly_remains_time`` (ms durations).
    """
    body = _decode(payload, _MinimaxPayload, provider="Minimax")
    status = body.base_resp
    if status is not None and status.status_code not in (None, 0):
        raise UsageFetchError(
            f"Minimax refused the usage request: {status.status_msg or 'no message'} "
            f"(status_code {status.status_code}). Check the account's token plan key.",
            status=status.status_code,
        )
    row = _minimax_text_row(body.model_remains or [])
    if row is None:
        raise UsageFetchError("Minimax's usage response had no text-inference quota row.")
    windows: list[UsageWindow] = []
    five_hour = _remaining_to_used(
        row.current_interval_remaining_percent,
        row.current_interval_total_count,
        row.current_interval_usage_count,
    )
    if five_hour is not None:
        reset = _reset_ms(row.end_time, row.remains_time, now_ms)
        windows.append(UsageWindow(key="five_hour", utilization=five_hour, resets_at_ms=reset))
    seven_day = _remaining_to_used(
        row.current_weekly_remaining_percent,
        row.current_weekly_total_count,
        row.current_weekly_usage_count,
    )
    if seven_day is not None:
        reset = _reset_ms(row.weekly_end_time, row.weekly_remains_time, now_ms)
        windows.append(UsageWindow(key="seven_day", utilization=seven_day, resets_at_ms=reset))
    if not windows:
        raise UsageFetchError("Minimax's text-inference row had neither percentages nor counts.")
    return tuple(windows)


def _minimax_text_row(rows: list[_MinimaxRow]) -> _MinimaxRow | None:
    named = [((row.model_name or "").lower(), row) for row in rows]
    general = next((row for name, row in named if name == "general"), None)
    return general or next((row for name, row in named if name.startswith("minimax-m")), None)


def _remaining_to_used(
    remaining_percent: float | None, total: float | None, remaining: float | None
) -> float | None:
    if remaining_percent is not None:
        return 100.0 - min(max(remaining_percent, 0.0), 100.0)
    if total and remaining is not None:
        return min(max((total - remaining) / total * 100.0, 0.0), 100.0)
    return None


def _reset_ms(end: int | None, remains: int | None, now_ms: int) -> int | None:
    if end:
        return _epoch_ms(end)
    if remains is not None and remains >= 0:
        return now_ms + remains
    return None


# --------------------------------------------------------------------------- NanoGPT


class _NanoWindow(msgspec.Struct):
    used: float | None = None
    remaining: float | None = None
    percent_used: float | None = msgspec.field(default=None, name="percentUsed")
    reset_at: int | None = msgspec.field(default=None, name="resetAt")


class _NanoLimits(msgspec.Struct):
    daily: float | None = None
    monthly: float | None = None


class _NanoPayload(msgspec.Struct):
    active: bool | None = None
    limits: _NanoLimits | None = None
    daily: _NanoWindow | None = None
    monthly: _NanoWindow | None = None


async def fetch_nanogpt_usage(
    client: httpx2.AsyncClient, *, api_key: str, base_url: str | None = None
) -> tuple[UsageWindow, ...]:
    """Read a NanoGPT subscription's daily and monthly usage.

    Args:
        base_url: The account's custom endpoint, if any (same form as the default,
            ``https://nano-gpt.com/api``); the usage path is appended to it.
    """
    base = (base_url or NANOGPT_API.url()).rstrip("/")
    headers = {"x-api-key": api_key, "accept": "application/json"}
    url = f"{base}/subscription/v1/usage"
    return parse_nanogpt_usage(await _get(client, url, headers, provider="NanoGPT"))


def parse_nanogpt_usage(payload: bytes) -> tuple[UsageWindow, ...]:
    """Parse NanoGPT's ``/subscription/v1/usage`` into ``daily`` and ``monthly`` windows.

    Shape: ``{active, limits: {daily, monthly}, daily: {used, remaining, percentUsed, resetAt},
    monthly: {...}}``; ``percentUsed`` is a fraction (0 to 1), ``resetAt`` epoch ms. Without it
    the percentage is ``used`` over the limit (or over ``used + remaining``). An inactive
    subscription (pay-as-you-go) has no windows: the result is empty.
    """
    body = _decode(payload, _NanoPayload, provider="NanoGPT")
    if body.active is False:
        return ()
    limits = body.limits or _NanoLimits()
    windows: list[UsageWindow] = []
    for key, window, limit in (
        ("daily", body.daily, limits.daily),
        ("monthly", body.monthly, limits.monthly),
    ):
        if window is None:
            continue
        used = _nano_percent(window, limit)
        if used is not None:
            windows.append(_window(key, used, window.reset_at))
    return tuple(windows)


def _nano_percent(window: _NanoWindow, limit: float | None) -> float | None:
    if window.percent_used is not None:
        return window.percent_used * 100.0
    if window.used is None:
        return None
    total = limit or ((window.used + window.remaining) if window.remaining is not None else None)
    return window.used / total * 100.0 if total else None


# --------------------------------------------------------------------------- shared

_S = TypeVar("_S")


async def _get(
    client: httpx2.AsyncClient, url: str, headers: Mapping[str, str], *, provider: str
) -> bytes:
    try:
        response = await client.get(url, headers=headers, timeout=_TIMEOUT)
    except httpx2.TimeoutException:
        raise UsageFetchError(
            f"{provider}'s usage endpoint {url} did not answer within {_TIMEOUT.read:g} s."
        ) from None
    except httpx2.TransportError as exc:
        raise UsageFetchError(
            f"Could not reach {provider}'s usage endpoint {url} ({type(exc).__name__})."
        ) from None
    status = response.status_code
    if status == 429:
        raise UsageFetchError(
            f"{provider}'s usage endpoint is rate limiting this account (HTTP 429).",
            status=status,
            retry_after_ms=parse_retry_after_ms(response.headers),
        )
    if not response.is_success:
        raise UsageFetchError(
            f"{provider}'s usage endpoint answered HTTP {status} {response.reason_phrase}.",
            status=status,
        )
    return response.content


def _decode(payload: bytes, kind: type[_S], *, provider: str) -> _S:
    try:
        return msgspec.json.decode(payload, type=kind)
    except msgspec.ValidationError as exc:
        raise UsageFetchError(
            f"{provider}'s usage response had an unexpected shape: {exc}."
        ) from None
    except msgspec.DecodeError:
        raise UsageFetchError(f"{provider}'s usage response was not JSON.") from None


def _window(key: str, utilization: float, reset: int | None) -> UsageWindow:
    return UsageWindow(
        key=key, utilization=utilization, resets_at_ms=_epoch_ms(reset) if reset else None
    )


def _unique(windows: Iterable[UsageWindow]) -> tuple[UsageWindow, ...]:
    """The first window of each key (an explicit named form beats the ``limits`` list)."""
    seen: dict[str, UsageWindow] = {}
    for window in windows:
        seen.setdefault(window.key, window)
    return tuple(seen.values())


def _epoch_ms(value: int) -> int:
    """Epoch milliseconds; values too small to be milliseconds are taken as seconds."""
    return value * 1000 if value < 100_000_000_000 else value


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
