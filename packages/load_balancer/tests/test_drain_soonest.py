"""The ``session-drain-soonest`` strategy: spend the quota that expires first."""

from __future__ import annotations

from better_ccflare.core import PauseReason
from better_ccflare.load_balancer import AccountUsage, SessionDrainSoonestStrategy

from .builders import HOUR, NOW, account, ids, request


def weekly(reset_at_ms: int | None, utilization: float | None = None) -> AccountUsage:
    return AccountUsage(utilization=utilization, weekly_resets_at_ms=reset_at_ms)


def test_the_soonest_weekly_reset_comes_first_and_unknown_last() -> None:
    pool = [account("unknown"), account("late"), account("soon"), account("past")]
    usage = {
        "late": weekly(NOW + 48 * HOUR),
        "soon": weekly(NOW + 2 * HOUR),
        "past": weekly(NOW - HOUR),
    }
    selection = SessionDrainSoonestStrategy().select(pool, request(usage=usage))
    assert ids(selection) == ["soon", "late", "past", "unknown"]
    assert selection.start_session == {"soon"}


def test_the_weekly_reset_outranks_priority() -> None:
    pool = [account("main"), account("backup", priority=5)]
    usage = {"backup": weekly(NOW + HOUR), "main": weekly(NOW + 2 * HOUR)}
    assert ids(SessionDrainSoonestStrategy().select(pool, request(usage=usage))) == [
        "backup",
        "main",
    ]


def test_equal_resets_fall_back_to_priority_then_utilization() -> None:
    reset = NOW + HOUR
    pool = [account("backup", priority=1), account("busy"), account("idle")]
    usage = {
        "backup": weekly(reset, 0),
        "busy": weekly(reset, 60),
        "idle": weekly(reset, 10),
    }
    selection = SessionDrainSoonestStrategy().select(pool, request(usage=usage))
    assert ids(selection) == ["idle", "busy", "backup"]


def test_an_open_session_is_never_preempted_by_priority() -> None:
    pool = [account("open", priority=9, session_started_at_ms=NOW - HOUR), account("main")]
    selection = SessionDrainSoonestStrategy().select(pool, request())
    assert ids(selection) == ["open", "main"]
    assert selection.start_session == frozenset()


def test_an_open_session_is_not_preempted_by_a_sooner_weekly_reset() -> None:
    pool = [account("open", session_started_at_ms=NOW - HOUR), account("soon")]
    usage = {"soon": weekly(NOW + HOUR), "open": weekly(NOW + 100 * HOUR)}
    assert ids(SessionDrainSoonestStrategy().select(pool, request(usage=usage)))[0] == "open"


def test_an_auto_fallback_account_whose_window_reset_leads_over_the_session() -> None:
    main = account(
        "main",
        priority=3,
        paused=True,
        pause_reason=PauseReason.RATE_LIMIT_WINDOW,
        auto_fallback=True,
        reset_at_ms=NOW - 5000,
    )
    pool = [account("open", session_started_at_ms=NOW - HOUR), main]
    selection = SessionDrainSoonestStrategy().select(pool, request())
    assert ids(selection) == ["main", "open"]
    assert selection.unpause == {"main"}
    assert selection.start_session == {"main"}


def test_a_fallback_account_used_since_its_reset_keeps_its_session() -> None:
    main = account(
        "main", auto_fallback=True, reset_at_ms=NOW - 2 * HOUR, session_started_at_ms=NOW - HOUR
    )
    selection = SessionDrainSoonestStrategy().select([main], request())
    assert selection.start_session == frozenset()
