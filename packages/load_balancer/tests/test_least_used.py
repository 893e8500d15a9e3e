"""The ``least-used`` strategy: preferred first, then most quota left, with a recency penalty."""

from __future__ import annotations

from better_ccflare.load_balancer import LeastUsedStrategy

from .builders import NOW, account, ids, request


def test_priority_comes_before_utilization() -> None:
    pool = [account("backup", priority=1), account("busy"), account("idle")]
    selection = LeastUsedStrategy().select(
        pool, request(utilization={"busy": 70, "idle": 20, "backup": 0})
    )
    assert ids(selection) == ["idle", "busy", "backup"]


def test_unknown_utilization_counts_as_unused() -> None:
    pool = [account("known"), account("unknown")]
    selection = LeastUsedStrategy().select(pool, request(utilization={"known": 1}))
    assert ids(selection)[0] == "unknown"


def test_the_second_request_of_a_burst_goes_to_the_other_equal_account() -> None:
    strategy = LeastUsedStrategy()
    pool = [account("a"), account("b")]
    picks = [ids(strategy.select(pool, request(NOW + step)))[0] for step in range(2)]
    assert picks == ["a", "b"]


def test_a_burst_spreads_over_equal_accounts() -> None:
    strategy = LeastUsedStrategy()
    pool = [account("a"), account("b"), account("c")]
    picks = [ids(strategy.select(pool, request(NOW + 100 * step)))[0] for step in range(3)]
    assert picks == ["a", "b", "c"]


def test_the_recency_penalty_outweighs_a_utilization_gap_below_100_points() -> None:
    strategy = LeastUsedStrategy()
    pool = [account("fresh"), account("used")]
    usage = {"fresh": 0.0, "used": 99.0}
    assert ids(strategy.select(pool, request(NOW, utilization=usage)))[0] == "fresh"
    assert ids(strategy.select(pool, request(NOW + 100, utilization=usage)))[0] == "used"


def test_the_recency_penalty_lasts_500_ms() -> None:
    strategy = LeastUsedStrategy()
    pool = [account("a"), account("b")]
    strategy.select(pool, request(NOW))
    assert ids(strategy.select(pool, request(NOW + 499)))[0] == "b"
    assert ids(strategy.select(pool, request(NOW + 999)))[0] == "a"


def test_peek_does_not_count_as_a_pick() -> None:
    strategy = LeastUsedStrategy()
    pool = [account("a"), account("b")]
    assert strategy.peek(pool, request()) == "a"
    assert strategy.peek(pool, request()) == "a"
    assert ids(strategy.select(pool, request()))[0] == "a"
    assert strategy.peek(pool, request()) == "b"


def test_least_used_never_starts_sessions() -> None:
    assert LeastUsedStrategy().select([account("a")], request()).start_session == frozenset()
