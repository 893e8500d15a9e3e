"""The in-memory account pool: changes apply at once and reach the store behind."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncGenerator, Generator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from better_ccflare.core import (
    Account,
    AccountState,
    Credentials,
    FakeClock,
    PauseReason,
    RateLimitReason,
    RateLimitState,
    UsageWindow,
)
from better_ccflare.database import SecretKey, Store
from better_ccflare.load_balancer import Selection
from better_ccflare.proxy import (
    AccountPool,
    CooldownEnded,
    CredentialsRejected,
    PoolEvent,
    UsageCache,
)
from better_ccflare.proxy._account_pool import READING_WRITE_DELAY_S

HOUR = 3_600_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncGenerator[Store]:
    async with await Store.open(tmp_path / "db.sqlite", key=SecretKey.generate()) as opened:
        yield opened


def account(account_id: str, **changes: object) -> Account:
    base = Account(id=account_id, name=account_id, provider="anthropic", created_at_ms=0)
    return msgspec.structs.replace(base, **changes)


@contextmanager
def holding_the_write_lock(path: Path) -> Generator[sqlite3.Connection]:
    """Another process's connection to the store's file, in a transaction that holds the write
    lock until the block ends (and then commits): the store's writes wait meanwhile."""
    # A connection apart from the store's, as another process has: the store's API never holds
    # the write lock open, so the banned raw connection is the only way to hold it.
    other = sqlite3.connect(path, isolation_level=None)  # noqa: TID251 (another process's view)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("COMMIT")
    finally:
        other.close()


async def pool_with(store: Store, clock: FakeClock, *accounts: Account) -> AccountPool:
    for item in accounts:
        await store.accounts.add(item)
    pool = AccountPool(store, clock, session_duration_ms=5 * HOUR)
    await pool.reload()
    return pool


async def test_selection_changes_apply_in_memory_and_persist(store: Store) -> None:
    clock = FakeClock()
    pool = await pool_with(store, clock, account("a", paused=True), account("b"))
    selection = Selection(order=(), start_session=frozenset({"b"}), unpause=frozenset({"a"}))
    pool.apply_selection(selection, clock.now_ms())
    a, b = pool.get("a"), pool.get("b")
    assert a is not None
    assert not a.paused
    assert b is not None
    assert b.session.started_at_ms == clock.now_ms()
    await pool.drain()
    stored = await store.accounts.get("b")
    assert stored is not None
    assert stored.session.started_at_ms == clock.now_ms()
    stored_a = await store.accounts.get("a")
    assert stored_a is not None
    assert not stored_a.paused


async def test_use_counts_and_sessions_roll_after_their_duration(store: Store) -> None:
    clock = FakeClock()
    pool = await pool_with(store, clock, account("a"))
    pool.record_use("a", clock.now_ms())
    pool.record_use("a", clock.now_ms())
    first = pool.get("a")
    assert first is not None
    assert (first.request_count, first.session.request_count) == (2, 2)
    clock.advance(5 * HOUR)
    pool.record_use("a", clock.now_ms())
    rolled = pool.get("a")
    assert rolled is not None
    assert rolled.session == msgspec.structs.replace(rolled.session, request_count=1)
    assert rolled.session.started_at_ms == clock.now_ms()


async def test_a_window_reset_ends_a_quota_cooldown_but_not_an_overload(store: Store) -> None:
    clock = FakeClock()
    now = clock.now_ms()
    quota = RateLimitState(
        limited_until_ms=now + HOUR, reason=RateLimitReason.UPSTREAM_429_WITH_RESET
    )
    busy = RateLimitState(
        limited_until_ms=now + 10_000, reason=RateLimitReason.UPSTREAM_529_OVERLOADED_NO_RESET
    )
    pool = await pool_with(
        store, clock, account("q", rate_limit=quota), account("o", rate_limit=busy)
    )
    pool.window_reset("q")
    pool.window_reset("o")
    q, o = pool.get("q"), pool.get("o")
    assert q is not None
    assert not q.rate_limit.cooling_down(now)
    assert o is not None
    assert o.rate_limit.cooling_down(now)
    await pool.drain()
    stored = await store.accounts.get("q")
    assert stored is not None
    assert stored.rate_limit.limited_until_ms is None


async def test_readings_are_written_behind_once_not_per_response(store: Store) -> None:
    clock = FakeClock()
    now = clock.now_ms()
    pool = await pool_with(store, clock, account("a", rate_limit=RateLimitState(status="allowed")))
    # An API key's reset header names when its allowance refills: new on every response.
    for step in range(50):
        pool.set_rate_limit(
            "a", RateLimitState(status="allowed", reset_at_ms=now + step, remaining=50 - step)
        )
    memory = pool.get("a")
    assert memory is not None
    assert memory.rate_limit.remaining == 1
    await store.flush()
    stored = await store.accounts.get("a")
    assert stored is not None
    assert stored.rate_limit == RateLimitState(status="allowed")
    before = store.stats().ops_committed

    await pool.drain()

    stored = await store.accounts.get("a")
    assert stored is not None
    assert stored.rate_limit == memory.rate_limit
    # One write for fifty readings, plus drain's own flush.
    assert store.stats().ops_committed - before == 2


async def test_a_reading_is_written_by_itself_after_a_moment(store: Store) -> None:
    clock = FakeClock()
    pool = await pool_with(store, clock, account("a"))
    pool.set_rate_limit("a", RateLimitState(status="allowed_warning", remaining=3))
    stored = await store.accounts.get("a")
    assert stored is not None
    assert stored.rate_limit.status is None
    clock.advance(round(READING_WRITE_DELAY_S * 1000))
    await store.flush()
    stored = await store.accounts.get("a")
    assert stored is not None
    assert (stored.rate_limit.status, stored.rate_limit.remaining) == ("allowed_warning", 3)


async def test_a_cooldown_is_written_through_at_once(store: Store) -> None:
    clock = FakeClock()
    now = clock.now_ms()
    pool = await pool_with(store, clock, account("a"))
    cooling = RateLimitState(
        status="rate_limited",
        limited_until_ms=now + HOUR,
        reason=RateLimitReason.UPSTREAM_429_WITH_RESET,
        limited_at_ms=now,
        consecutive=1,
    )
    pool.set_rate_limit("a", cooling)
    # Not drain(), which also writes pending readings: one turn of the loop lets the write
    # start, and the flush queued behind it returns once it committed.
    await asyncio.sleep(0)
    await store.flush()
    stored = await store.accounts.get("a")
    assert stored is not None
    assert stored.rate_limit == cooling


async def test_reload_keeps_a_pending_reading_but_takes_the_stored_cooldown(store: Store) -> None:
    clock = FakeClock()
    now = clock.now_ms()
    cooling = RateLimitState(
        limited_until_ms=now + HOUR, reason=RateLimitReason.UPSTREAM_429_WITH_RESET
    )
    pool = await pool_with(store, clock, account("a", rate_limit=cooling))
    pool.set_rate_limit("a", msgspec.structs.replace(cooling, status="allowed", remaining=9))
    # Elsewhere (the CLI), the cooldown is cleared; the pending reading must not bring it back.
    await store.accounts.update_rate_limit("a", RateLimitState())
    await pool.reload()
    reloaded = pool.get("a")
    assert reloaded is not None
    assert reloaded.rate_limit == RateLimitState(status="allowed", remaining=9)
    await pool.drain()
    stored = await store.accounts.get("a")
    assert stored is not None
    assert stored.rate_limit == RateLimitState(status="allowed", remaining=9)


async def test_reload_adopts_accounts_added_elsewhere(store: Store) -> None:
    clock = FakeClock()
    pool = await pool_with(store, clock, account("a"))
    await store.accounts.add(account("b"))
    await store.accounts.delete("a")
    await pool.reload()
    assert [a.id for a in pool.accounts()] == ["b"]


async def test_reload_never_undoes_a_change_made_while_it_was_reading(store: Store) -> None:
    clock = FakeClock()
    pool = await pool_with(store, clock, account("a"))
    cooldown = RateLimitState(
        limited_until_ms=clock.now_ms() + HOUR, reason=RateLimitReason.UPSTREAM_429_WITH_RESET
    )
    reloading = asyncio.create_task(pool.reload())
    await asyncio.sleep(0)  # the reload has started reading the store
    pool.set_rate_limit("a", cooldown)
    await reloading
    current = pool.get("a")
    assert current is not None
    assert current.rate_limit == cooldown


async def test_a_reading_due_after_the_store_closed_is_dropped_quietly(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await Store.open(tmp_path / "closing.sqlite", key=SecretKey.generate())
    pool = await pool_with(store, clock, account("a"))
    pool.set_rate_limit("a", RateLimitState(status="allowed", remaining=1))
    await store.close()
    await pool.drain()  # would raise StoreClosedError from the pending reading


async def test_a_window_reset_ends_a_bench_for_lack_of_credit(store: Store) -> None:
    clock = FakeClock()
    broke = RateLimitState(
        limited_until_ms=clock.now_ms() + HOUR, reason=RateLimitReason.OUT_OF_CREDITS, failures=2
    )
    pool = await pool_with(store, clock, account("a", rate_limit=broke))

    pool.window_reset("a")

    a = pool.get("a")
    assert a is not None
    assert a.state(clock.now_ms()) is AccountState.READY


async def test_a_window_reset_leaves_rejected_credentials_alone(store: Store) -> None:
    clock = FakeClock()
    rejected = RateLimitState(
        limited_until_ms=clock.now_ms() + HOUR,
        reason=RateLimitReason.CREDENTIALS_REJECTED,
        failures=1,
    )
    pool = await pool_with(store, clock, account("a", rate_limit=rejected))

    pool.window_reset("a")

    a = pool.get("a")
    assert a is not None
    assert a.state(clock.now_ms()) is AccountState.CREDENTIALS_REJECTED


async def test_a_bench_cleared_elsewhere_ends_with_one_event_on_reload(store: Store) -> None:
    clock = FakeClock()
    pool = await pool_with(store, clock, account("a"))
    heard: list[PoolEvent] = []
    pool.events.subscribe(heard.append)
    pool.apply_failure("a", RateLimitReason.CREDENTIALS_REJECTED, clock.now_ms(), None)
    await pool.drain()
    await store.accounts.set_credentials("a", Credentials(api_key="sk-ant-api03-new"))

    await pool.reload()
    await pool.reload()
    clock.advance(HOUR)

    assert [type(event) for event in heard] == [CredentialsRejected, CooldownEnded]
    ended = heard[-1]
    assert isinstance(ended, CooldownEnded)
    assert ended.cause == "cleared"
    a = pool.get("a")
    assert a is not None
    assert a.state(clock.now_ms()) is AccountState.READY


async def test_a_usage_reading_with_headroom_ends_a_quota_cooldown(store: Store) -> None:
    clock = FakeClock()
    now = clock.now_ms()
    limited = RateLimitState(
        limited_until_ms=now + HOUR, reason=RateLimitReason.UPSTREAM_429_NO_RESET_PROBE_COOLDOWN
    )
    pool = await pool_with(store, clock, account("a", rate_limit=limited))
    heard: list[PoolEvent] = []
    pool.events.subscribe(heard.append)
    usage = UsageCache(clock=clock, on_headroom=pool.window_reset)

    usage.update("a", [UsageWindow(key="five_hour", utilization=100, resets_at_ms=now + HOUR)])
    a = pool.get("a")
    assert a is not None
    assert a.state(now) is AccountState.COOLING_DOWN
    usage.update("a", [UsageWindow(key="five_hour", utilization=35, resets_at_ms=now + HOUR)])

    a = pool.get("a")
    assert a is not None
    assert a.state(now) is AccountState.READY
    [ended] = heard
    assert isinstance(ended, CooldownEnded)
    assert (ended.reason, ended.cause) == (
        RateLimitReason.UPSTREAM_429_NO_RESET_PROBE_COOLDOWN,
        "window_reset",
    )


async def test_a_reload_during_a_cooldowns_write_keeps_it_and_then_sees_the_other_change(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite"
    async with await Store.open(path, key=SecretKey.generate()) as store:
        clock = FakeClock()
        pool = await pool_with(store, clock, account("a"))
        until = clock.now_ms() + HOUR
        # Another process pauses the account and holds the file's write lock meanwhile, so the
        # pool's cooldown write waits, and a reload reads neither change.
        with holding_the_write_lock(path) as other:
            other.execute("UPDATE accounts SET paused = 1 WHERE id = 'a'")
            pool.set_rate_limit(
                "a", RateLimitState(limited_until_ms=until, reason=RateLimitReason.WINDOWLESS_429)
            )

            await pool.reload()
            a = pool.get("a")
            assert a is not None
            assert a.rate_limit.limited_until_ms == until  # not undone by the read that missed it

        await pool.drain()
        a = pool.get("a")
        assert a is not None
        assert a.paused  # read again once the cooldown landed
        assert a.rate_limit.limited_until_ms == until


async def test_written_returns_once_this_pools_changes_are_in_the_store(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with await Store.open(path, key=SecretKey.generate()) as store:
        clock = FakeClock()
        pool = await pool_with(store, clock, account("a"))
        await pool.written()  # nothing on its way: at once
        until = clock.now_ms() + HOUR
        # Another process holds the file's write lock, so the cooldown's write waits.
        with holding_the_write_lock(path):
            pool.set_rate_limit(
                "a", RateLimitState(limited_until_ms=until, reason=RateLimitReason.WINDOWLESS_429)
            )
            waiting = asyncio.create_task(pool.written())
            await asyncio.sleep(0.3)
            assert not waiting.done()

        async with asyncio.timeout(5):
            await waiting
        stored = await store.accounts.get("a")
        assert stored is not None
        assert stored.rate_limit.limited_until_ms == until


async def test_written_gives_up_waiting_after_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with await Store.open(path, key=SecretKey.generate()) as store:
        clock = FakeClock()
        pool = await pool_with(store, clock, account("a"))
        with holding_the_write_lock(path):
            pool.pause("a", PauseReason.MANUAL)
            async with asyncio.timeout(5):
                await pool.written(timeout_s=0.2)  # the write still waits for the lock
        await pool.drain()
