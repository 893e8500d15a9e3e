"""The ``session-affinity`` strategy: each client session keeps to its account."""

from __future__ import annotations

from better_ccflare.load_balancer import SessionAffinityStrategy

from .builders import HOUR, NOW, SESSION, account, ids, request


def test_a_new_session_is_pinned_to_the_least_used_account() -> None:
    strategy = SessionAffinityStrategy()
    pool = [account("a"), account("b")]
    selection = strategy.select(pool, request(session_id="s", utilization={"a": 50}))
    assert ids(selection) == ["b", "a"]
    later = strategy.select(pool, request(NOW + HOUR, session_id="s", utilization={"b": 90}))
    assert ids(later) == ["b", "a"]


def test_new_sessions_spread_across_the_pool() -> None:
    strategy = SessionAffinityStrategy()
    pool = [account("a"), account("b")]
    one = strategy.select(pool, request(session_id="one"))
    two = strategy.select(pool, request(NOW + 1, session_id="two"))
    assert (ids(one)[0], ids(two)[0]) == ("a", "b")


def test_a_session_moves_while_its_account_cools_down_and_snaps_back() -> None:
    strategy = SessionAffinityStrategy()
    home, other = account("home"), account("other")
    assert ids(strategy.select([home, other], request(session_id="s")))[0] == "home"

    cooling = account("home", limited_until_ms=NOW + 2 * HOUR)
    moved = strategy.select([cooling, other], request(NOW + HOUR, session_id="s"))
    assert ids(moved) == ["other"]

    back = strategy.select([cooling, other], request(NOW + 2 * HOUR, session_id="s"))
    assert ids(back) == ["home", "other"]


def test_a_session_snaps_back_after_its_account_left_the_pool_for_a_while() -> None:
    strategy = SessionAffinityStrategy()
    pool = [account("home"), account("other")]
    strategy.select(pool, request(session_id="s"))
    strategy.select(pool[1:], request(NOW + 1000, session_id="s"))
    assert ids(strategy.select(pool, request(NOW + 2000, session_id="s")))[0] == "home"


def test_each_request_extends_the_pin() -> None:
    strategy = SessionAffinityStrategy()
    pool = [account("a"), account("b")]
    strategy.select(pool, request(session_id="s"))
    strategy.select(pool, request(NOW + SESSION - 1, session_id="s"))
    selection = strategy.select(
        pool, request(NOW + 2 * SESSION - 2, session_id="s", utilization={"a": 90})
    )
    assert ids(selection)[0] == "a"


def test_a_pin_expires_after_a_session_duration_without_requests() -> None:
    strategy = SessionAffinityStrategy()
    pool = [account("a"), account("b")]
    strategy.select(pool, request(session_id="s"))
    selection = strategy.select(pool, request(NOW + SESSION, session_id="s", utilization={"a": 90}))
    assert ids(selection)[0] == "b"


def test_requests_without_a_session_id_get_least_used() -> None:
    strategy = SessionAffinityStrategy()
    pool = [account("a"), account("b")]
    assert ids(strategy.select(pool, request(utilization={"a": 10})))[0] == "b"
    assert ids(strategy.select(pool, request(NOW + 1, utilization={"a": 10})))[0] == "a"


def test_the_least_recently_used_pin_is_evicted_first() -> None:
    strategy = SessionAffinityStrategy(max_sessions=2)
    for step, session_id in enumerate(["old", "kept", "old", "new"]):
        strategy.select([account("a")], request(NOW + step * 1000, session_id=session_id))
    # "old" was used again after "kept", so "kept" lost its pin to "a" and is placed afresh.
    pool, usage = [account("a"), account("b")], {"a": 50.0}
    old = strategy.select(pool, request(NOW + 9000, session_id="old", utilization=usage))
    kept = strategy.select(pool, request(NOW + 9001, session_id="kept", utilization=usage))
    assert (ids(old)[0], ids(kept)[0]) == ("a", "b")


def test_peek_does_not_pin_a_session() -> None:
    strategy = SessionAffinityStrategy()
    pool = [account("a"), account("b")]
    assert strategy.peek(pool, request(session_id="s")) == "a"
    strategy.select(pool, request(NOW + 1000, session_id="other"))
    assert ids(strategy.select(pool, request(NOW + 1001, session_id="s")))[0] == "b"


def test_affinity_never_starts_sessions() -> None:
    selection = SessionAffinityStrategy().select([account("a")], request(session_id="s"))
    assert selection.start_session == frozenset()
