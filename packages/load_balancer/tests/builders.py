"""Small constructors that keep the tests about behaviour rather than Struct plumbing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from msgspec.structs import replace

from better_ccflare.core import Account, PauseReason, RateLimitState, SessionState
from better_ccflare.load_balancer import AccountUsage, Selection, SelectionRequest

NOW = 1_767_225_600_000
"""2026-01-01T00:00:00Z."""
HOUR = 3_600_000
SESSION = 5 * HOUR


def account(
    account_id: str,
    *,
    priority: int = 0,
    provider: str = "anthropic",
    session_started_at_ms: int | None = None,
    reset_at_ms: int | None = None,
    limited_until_ms: int | None = None,
    paused: bool = False,
    pause_reason: PauseReason | None = None,
    auto_fallback: bool = False,
    requires_reauth: bool = False,
) -> Account:
    """An account named after its id, created long before :data:`NOW`."""
    return Account(
        id=account_id,
        name=account_id,
        provider=provider,
        created_at_ms=NOW - 1000 * HOUR,
        priority=priority,
        paused=paused,
        pause_reason=pause_reason,
        requires_reauth=requires_reauth,
        auto_fallback_enabled=auto_fallback,
        rate_limit=RateLimitState(reset_at_ms=reset_at_ms, limited_until_ms=limited_until_ms),
        session=SessionState(started_at_ms=session_started_at_ms),
    )


def request(
    now_ms: int = NOW,
    *,
    session_id: str | None = None,
    utilization: Mapping[str, float] | None = None,
    usage: Mapping[str, AccountUsage] | None = None,
) -> SelectionRequest:
    """A request at ``now_ms``; ``utilization`` is shorthand for usage without reset times."""
    merged = {key: AccountUsage(utilization=value) for key, value in (utilization or {}).items()}
    merged.update(usage or {})
    return SelectionRequest(
        now_ms=now_ms, session_id=session_id, usage=merged, session_duration_ms=SESSION
    )


def ids(selection: Selection) -> list[str]:
    return [picked.id for picked in selection.order]


def apply(accounts: Sequence[Account], selection: Selection, now_ms: int) -> list[Account]:
    """What the proxy persists after a selection: started sessions and lifted pauses."""
    updated: list[Account] = []
    for stored in accounts:
        current = stored
        if current.id in selection.start_session:
            current = replace(current, session=SessionState(started_at_ms=now_ms))
        if current.id in selection.unpause:
            current = replace(current, paused=False, pause_reason=None)
        updated.append(current)
    return updated
