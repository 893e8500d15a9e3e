"""How accounts look in ``account list`` and ``account show``: JSON rows, words and colours.

The JSON rows are for scripts: absolute times in epoch milliseconds, states as their stored
names. The tables are for people at an 80-column terminal: relative times ("in 2h"), a state in
a few words and in colour (green ready, yellow waiting, red needing an operator), and the usage
windows as percentages. Usage comes from the last reading the server's poller stored; a window
whose reset has passed since is shown as ``-``, as the reading no longer describes it.
"""

from __future__ import annotations

from typing import cast

import msgspec
from rich.text import Text

from better_ccflare.core import (
    Account,
    AccountState,
    ModelMappings,
    RateLimitReason,
    UsageSnapshot,
    UsageWindow,
)

from ._output import Col, format_relative, format_time, styled

__all__ = [
    "LIST_COLUMNS",
    "AccountDetail",
    "AccountRow",
    "account_detail",
    "account_row",
    "list_cells",
    "show_rows",
    "shown",
    "state_text",
]


class AccountRow(msgspec.Struct, frozen=True, kw_only=True):
    """What ``account list --json`` prints: no credentials, ever."""

    id: str
    name: str
    provider: str
    priority: int
    paused: bool
    requires_reauth: bool
    account_state: AccountState
    custom_endpoint: str | None
    request_count: int
    rate_limited_until_ms: int | None
    usage: tuple[UsageWindow, ...]
    """The usage windows of the last stored reading (``utilization`` in percent)."""
    usage_read_at_ms: int | None


class AccountDetail(msgspec.Struct, frozen=True, kw_only=True):
    """What ``account show --json`` prints: everything but the credentials themselves."""

    id: str
    name: str
    provider: str
    priority: int
    state: str
    account_state: AccountState
    """``state`` for scripts: ``ready``, ``cooling_down``, ``paused``, ``requires_reauth``,
    ``credentials_rejected`` or ``out_of_credits``."""
    paused: bool
    pause_reason: str | None
    requires_reauth: bool
    consecutive_failures: int
    custom_endpoint: str | None
    model_mappings: ModelMappings
    auto_fallback_enabled: bool
    auto_refresh_enabled: bool
    auto_pause_on_overage_enabled: bool
    peak_hours_pause_enabled: bool
    billing_type: str | None
    credential: str
    """``api-key``, ``oauth`` or ``none``: which kind is stored, not its value."""
    token_expires_at_ms: int | None
    created_at_ms: int
    last_used_ms: int | None
    request_count: int
    total_requests: int
    session_started_at_ms: int | None
    session_request_count: int
    rate_limit_status: str | None
    rate_limit_reason: str | None
    rate_limited_until_ms: int | None
    rate_limit_reset_at_ms: int | None
    usage: tuple[UsageWindow, ...]
    usage_read_at_ms: int | None


def account_row(a: Account, usage: UsageSnapshot | None, now_ms: int) -> AccountRow:
    return AccountRow(
        id=a.id,
        name=a.name,
        provider=a.provider,
        priority=a.priority,
        paused=a.paused,
        requires_reauth=a.requires_reauth,
        account_state=a.state(now_ms),
        custom_endpoint=a.custom_endpoint,
        request_count=a.request_count,
        rate_limited_until_ms=a.rate_limit.limited_until_ms,
        usage=usage.windows if usage else (),
        usage_read_at_ms=usage.timestamp_ms if usage else None,
    )


def account_detail(a: Account, usage: UsageSnapshot | None, now_ms: int) -> AccountDetail:
    held = a.credentials
    credential = "oauth" if held.refresh_token or held.access_token else "none"
    if held.api_key:
        credential = "api-key"
    return AccountDetail(
        id=a.id,
        name=a.name,
        provider=a.provider,
        priority=a.priority,
        state=state_text(a, now_ms, relative=False),
        account_state=a.state(now_ms),
        paused=a.paused,
        pause_reason=a.pause_reason,
        requires_reauth=a.requires_reauth,
        consecutive_failures=a.rate_limit.failures,
        custom_endpoint=a.custom_endpoint,
        model_mappings=a.model_mappings,
        auto_fallback_enabled=a.auto_fallback_enabled,
        auto_refresh_enabled=a.auto_refresh_enabled,
        auto_pause_on_overage_enabled=a.auto_pause_on_overage_enabled,
        peak_hours_pause_enabled=a.peak_hours_pause_enabled,
        billing_type=a.billing_type,
        credential=credential,
        token_expires_at_ms=held.expires_at_ms,
        created_at_ms=a.created_at_ms,
        last_used_ms=a.last_used_ms,
        request_count=a.request_count,
        total_requests=a.total_requests,
        session_started_at_ms=a.session.started_at_ms,
        session_request_count=a.session.request_count,
        rate_limit_status=a.rate_limit.status,
        rate_limit_reason=a.rate_limit.reason,
        rate_limited_until_ms=a.rate_limit.limited_until_ms,
        rate_limit_reset_at_ms=a.rate_limit.reset_at_ms,
        usage=usage.windows if usage else (),
        usage_read_at_ms=usage.timestamp_ms if usage else None,
    )


# --------------------------------------------------------------------------- tables

LIST_COLUMNS = (
    Col("NAME", flex=True),
    Col("TYPE", flex=True),
    Col("PRI", justify="right"),
    Col("STATE"),
    Col("5H", justify="right"),
    Col("7D", justify="right"),
    Col("USED"),
)
"""``account list``'s columns: 5H and 7D are the usage windows Claude subscriptions report,
USED the last use. The state is never cut; counts are in ``show`` and ``--json``."""


def list_cells(a: Account, usage: UsageSnapshot | None, now_ms: int) -> list[object]:
    """One ``account list`` row: what matters at a glance, relative times, colour."""
    windows = {w.key: w for w in usage.windows} if usage else {}
    return [
        a.name,
        a.provider,
        a.priority,
        _coloured_state(a, now_ms),
        _percent(windows.get("five_hour"), now_ms),
        _percent(windows.get("seven_day"), now_ms),
        format_relative(a.last_used_ms, now_ms),
    ]


def show_rows(detail: AccountDetail, now_ms: int) -> list[list[object]]:
    """``account show``'s FIELD/VALUE rows: times relative and in UTC, one row per window."""
    rows: list[list[object]] = []
    for field, value in msgspec.structs.asdict(detail).items():
        if field == "usage":
            continue
        cell = shown(field, value)
        if field == "state":
            cell = styled(str(value), _STYLES[detail.account_state])
        elif field.endswith("_ms") and isinstance(value, int):
            cell = f"{format_relative(value, now_ms)} ({cell})"
        rows.append([field.removesuffix("_ms"), cell])
    for window in detail.usage:
        resets = format_relative(window.resets_at_ms, now_ms)
        rows.append(
            [f"usage {window.key}", Text.assemble(_percent(window, now_ms), f" (resets {resets})")]
        )
    return rows


def shown(field: str, value: object) -> object:
    """One ``account show`` value for people: times in UTC, mappings as FROM=TO, blanks as -."""
    if value is None or value in ("", {}):
        return "-"
    if field.endswith("_ms") and isinstance(value, int):
        return f"{format_time(value)} UTC"
    if isinstance(value, dict):
        mappings = cast("ModelMappings", value)
        return ", ".join(f"{k}={','.join(v)}" for k, v in mappings.items())
    return value


def _percent(window: UsageWindow | None, now_ms: int) -> Text | str:
    """``42%``, yellow from 70 % and red from 90 %; ``-`` for no reading or a stale one."""
    if window is None or (window.resets_at_ms is not None and window.resets_at_ms <= now_ms):
        return "-"
    used = window.utilization
    style = "red" if used >= 90 else "yellow" if used >= 70 else ""
    return styled(f"{used:.0f}%", style)


# --------------------------------------------------------------------------- states


def state_text(account: Account, now_ms: int, *, relative: bool) -> str:
    """The account's state in a few words, with when it ends: ``in 2h`` for the tables,
    ``until 2026-01-02 03:04:05 UTC`` for ``show --json``."""
    limit = account.rate_limit
    state = account.state(now_ms)

    def at(ms: int | None) -> str:
        return format_relative(ms, now_ms) if relative else f"{format_time(ms)} UTC"

    if state is AccountState.PAUSED:
        return f"paused ({account.pause_reason})" if account.pause_reason else "paused"
    if state is AccountState.COOLING_DOWN:
        kind = "unreachable" if limit.reason in _UNREACHABLE else "rate-limited"
        return (
            f"{kind}, ends {at(limit.limited_until_ms)}"
            if relative
            else (f"{kind} until {at(limit.limited_until_ms)}")
        )
    if state in (AccountState.CREDENTIALS_REJECTED, AccountState.OUT_OF_CREDITS):
        if not limit.cooling_down(now_ms):
            return f"{_WORDS[state]} (the next request probes it)"
        probe = (
            f"probe {at(limit.limited_until_ms)}"
            if relative
            else (f"probed after {at(limit.limited_until_ms)}")
        )
        return f"{_WORDS[state]} ({probe})"
    return _WORDS[state]


def _coloured_state(account: Account, now_ms: int) -> Text:
    return styled(state_text(account, now_ms, relative=True), _STYLES[account.state(now_ms)])


_WORDS = {
    AccountState.READY: "active",
    AccountState.REQUIRES_REAUTH: "needs re-login",
    AccountState.CREDENTIALS_REJECTED: "credentials rejected",
    AccountState.OUT_OF_CREDITS: "out of credits",
}
_STYLES = {
    AccountState.READY: "green",
    AccountState.COOLING_DOWN: "yellow",
    AccountState.PAUSED: "yellow",
    AccountState.REQUIRES_REAUTH: "bold red",
    AccountState.CREDENTIALS_REJECTED: "bold red",
    AccountState.OUT_OF_CREDITS: "bold red",
}
"""Green serves, yellow waits (by itself or for a resume), red needs an operator."""
_UNREACHABLE = (RateLimitReason.CONNECT_FAILED, RateLimitReason.UPSTREAM_TIMEOUT)
