"""The ``session`` strategy: one account per usage window, priority preempts."""

from __future__ import annotations

from better_ccflare.core import PauseReason
from better_ccflare.load_balancer import SessionStrategy

from .builders import HOUR, NOW, SESSION, account, apply, ids, request


def test_a_fresh_pool_starts_a_session_on_the_preferred_least_used_account() -> None:
    pool = [account("busy"), account("idle"), account("backup", priority=1)]
    selection = SessionStrategy().select(pool, request(utilization={"busy": 40, "idle": 10}))
    assert ids(selection) == ["idle", "busy", "backup"]
    assert selection.start_session == {"idle"}


def test_equal_accounts_are_ordered_by_name() -> None:
    selection = SessionStrategy().select([account("b"), account("a")], request())
    assert ids(selection) == ["a", "b"]


def test_an_open_session_wins_over_a_less_used_account() -> None:
    pool = [account("open", session_started_at_ms=NOW - HOUR), account("idle")]
    selection = SessionStrategy().select(pool, request(utilization={"open": 80}))
    assert ids(selection) == ["open", "idle"]
    assert selection.start_session == frozenset()


def test_consecutive_requests_stay_on_the_session_account() -> None:
    strategy = SessionStrategy()
    pool = [account("a"), account("b")]
    picks: list[str] = []
    for step in range(6):
        now = NOW + step * HOUR // 2
        # The usage flips every request, so a fresh pick would flip too.
        usage = {"a": 90.0, "b": 0.0} if step % 2 else {"a": 0.0, "b": 90.0}
        selection = strategy.select(pool, request(now, utilization=usage))
        pool = apply(pool, selection, now)
        picks.append(ids(selection)[0])
    assert picks == ["a"] * 6


def test_a_strictly_preferred_account_preempts_the_session() -> None:
    pool = [account("open", priority=1, session_started_at_ms=NOW - HOUR), account("main")]
    selection = SessionStrategy().select(pool, request())
    assert ids(selection) == ["main", "open"]
    assert selection.start_session == {"main"}


def test_an_equally_preferred_account_does_not_preempt() -> None:
    pool = [account("open", priority=1, session_started_at_ms=NOW - HOUR), account("b", priority=1)]
    assert ids(SessionStrategy().select(pool, request()))[0] == "open"


def test_an_expired_session_is_replaced_by_a_fresh_pick() -> None:
    pool = [account("old", session_started_at_ms=NOW - SESSION), account("idle")]
    selection = SessionStrategy().select(pool, request(utilization={"old": 50}))
    assert ids(selection) == ["idle", "old"]
    assert selection.start_session == {"idle"}


def test_a_stale_session_restarts_when_its_account_is_picked_again() -> None:
    pool = [account("old", session_started_at_ms=NOW - SESSION)]
    assert SessionStrategy().select(pool, request()).start_session == {"old"}


def test_a_session_restarts_when_the_upstream_window_reset_after_it_began() -> None:
    pool = [account("a", session_started_at_ms=NOW - 2 * HOUR, reset_at_ms=NOW - HOUR)]
    assert SessionStrategy().select(pool, request()).start_session == {"a"}


def test_a_session_begun_after_the_last_reset_is_left_alone() -> None:
    pool = [account("a", session_started_at_ms=NOW - HOUR, reset_at_ms=NOW - 2 * HOUR)]
    assert SessionStrategy().select(pool, request()).start_session == frozenset()


def test_the_most_recent_session_is_the_active_one() -> None:
    pool = [
        account("earlier", session_started_at_ms=NOW - 2 * HOUR),
        account("later", session_started_at_ms=NOW - HOUR),
    ]
    assert ids(SessionStrategy().select(pool, request()))[0] == "later"


def test_when_the_session_account_is_ineligible_an_older_open_session_continues() -> None:
    pool = [
        account("earlier", session_started_at_ms=NOW - 2 * HOUR),
        account("later", session_started_at_ms=NOW - HOUR, limited_until_ms=NOW + HOUR),
        account("idle"),
    ]
    selection = SessionStrategy().select(pool, request())
    assert ids(selection) == ["earlier", "idle"]
    assert selection.start_session == frozenset()


def test_accounts_without_usage_windows_never_hold_a_session() -> None:
    pool = [
        account("key", provider="claude-console-api", session_started_at_ms=NOW - HOUR),
        account("plan"),
    ]
    selection = SessionStrategy().select(pool, request(utilization={"plan": 5}))
    assert ids(selection) == ["key", "plan"]
    assert selection.start_session == frozenset()


def test_auto_fallback_returns_to_the_preferred_account_once_its_window_resets() -> None:
    main = account(
        "main",
        paused=True,
        pause_reason=PauseReason.RATE_LIMIT_WINDOW,
        auto_fallback=True,
        reset_at_ms=NOW - 2000,
        session_started_at_ms=NOW - SESSION - HOUR,
    )
    backup = account("backup", priority=1, session_started_at_ms=NOW - HOUR)
    selection = SessionStrategy().select([backup, main], request())
    assert ids(selection) == ["main", "backup"]
    assert selection.unpause == {"main"}
    assert selection.start_session == {"main"}


def test_auto_fallback_to_an_equally_preferred_account_keeps_the_session() -> None:
    other = account(
        "other",
        paused=True,
        pause_reason=PauseReason.OVERAGE,
        auto_fallback=True,
        reset_at_ms=NOW - 2000,
    )
    current = account("current", session_started_at_ms=NOW - HOUR)
    selection = SessionStrategy().select([other, current], request())
    assert ids(selection) == ["current", "other"]
    assert selection.unpause == {"other"}


def test_peek_names_the_account_select_puts_first() -> None:
    pool = [account("open", session_started_at_ms=NOW - HOUR), account("idle")]
    strategy = SessionStrategy()
    assert strategy.peek(pool, request()) == "open"
    assert ids(strategy.select(pool, request()))[0] == "open"
