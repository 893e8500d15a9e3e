"""The fleet-wide locks: one refresh per account across instances, one leader for the jobs, and
nothing left held by an instance that dies. Two stores on one database stand for two instances;
a process killed with SIGKILL stands for an instance that dies."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from better_ccflare.core import Credentials
from better_ccflare.database import FleetLease, FleetLockError, SecretKey, Store
from better_ccflare.database._postgres._fleet_locks import JOB_LEADER

from .builders import account


@pytest.fixture
async def two_stores(database_url: str, key: SecretKey) -> AsyncIterator[tuple[Store, Store]]:
    first = await Store.open(database_url, key=key)
    second = await Store.open(database_url, key=key)
    yield first, second
    await first.close()
    await second.close()


async def terminate_leader(url: str) -> None:
    """End the server session that holds the jobs' leadership (as when the leader's connection
    breaks)."""
    connection = await asyncpg.connect(url)
    try:
        ended = await connection.fetch(
            # pg_locks is server-wide: only this test's database (others run beside it).
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND classid::bigint = $1 AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            JOB_LEADER,
        )
        assert len(ended) == 1
    finally:
        await connection.close()


async def leads_within(lease: FleetLease, seconds: float) -> bool:
    """Whether ``lease`` is held within ``seconds``, asking as a follower does."""
    for _ in range(round(seconds / 0.05)):
        if await lease.hold():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_an_accounts_refresh_lock_makes_another_instance_wait(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    order: list[str] = []

    async def refresh(store: Store, name: str, hold_s: float) -> None:
        async with store.refresh_lock("acc-1"):
            order.append(f"{name} in")
            await asyncio.sleep(hold_s)
            order.append(f"{name} out")

    holder = asyncio.create_task(refresh(first, "first", 0.5))
    await asyncio.sleep(0.1)
    await refresh(second, "second", 0)
    await holder
    assert order == ["first in", "first out", "second in", "second out"]


async def test_refresh_locks_of_different_accounts_do_not_wait_for_each_other(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    async with first.refresh_lock("acc-1"), asyncio.timeout(2), second.refresh_lock("acc-2"):
        pass


async def test_waiting_for_a_refresh_lock_is_bounded_and_says_why(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    async with first.refresh_lock("acc-1"):
        started = asyncio.get_running_loop().time()
        with pytest.raises(FleetLockError, match=r"refreshing it for over 0\.3 s"):
            async with second.refresh_lock("acc-1", timeout_s=0.3):
                pytest.fail("the lock was taken twice")
        assert asyncio.get_running_loop().time() - started < 2
    async with asyncio.timeout(2), second.refresh_lock("acc-1"):
        pass


async def test_a_failed_block_releases_the_refresh_lock(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    with pytest.raises(RuntimeError):
        async with first.refresh_lock("acc-1"):
            raise RuntimeError("the refresh failed")
    async with asyncio.timeout(2), second.refresh_lock("acc-1"):
        pass


async def test_the_lock_holder_rereads_and_swaps_what_the_previous_holder_stored(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    await first.accounts.add(account("acc-1"))
    rotated = Credentials(access_token="at-2", refresh_token="rt-2", expires_at_ms=10**13)

    async def refresh(store: Store) -> bool:
        async with store.refresh_lock("acc-1"):
            stored = await store.accounts.get("acc-1")
            assert stored is not None
            if stored.credentials.refresh_token != "refresh-acc-1":
                return False  # someone refreshed meanwhile: adopt, do not refresh again
            await asyncio.sleep(0.2)  # the token endpoint
            return await store.accounts.update_credentials_if_refresh_token_matches(
                "acc-1", "refresh-acc-1", rotated
            )

    results = await asyncio.gather(refresh(first), refresh(second))
    assert sorted(results) == [False, True]
    for store in two_stores:
        stored = await store.accounts.get("acc-1")
        assert stored is not None
        assert stored.credentials == rotated


async def test_one_instance_leads_and_keeps_leading(two_stores: tuple[Store, Store]) -> None:
    first, second = (store.job_lease() for store in two_stores)
    assert await first.hold()
    assert not await second.hold()
    assert await first.hold()
    assert not await second.hold()


async def test_released_leadership_passes_to_the_next_instance_that_asks(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = (store.job_lease() for store in two_stores)
    assert await first.hold()
    await first.release()
    assert await second.hold()
    assert not await first.hold()


async def test_a_leader_whose_connection_breaks_steps_down_and_another_takes_over(
    two_stores: tuple[Store, Store], database_url: str
) -> None:
    first, second = (store.job_lease() for store in two_stores)
    assert await first.hold()
    assert not await second.hold()
    await terminate_leader(database_url)
    assert await leads_within(second, 5)
    assert not await first.hold()  # the old leader noticed, and leads no more


async def test_closing_the_store_gives_up_its_leadership(database_url: str, key: SecretKey) -> None:
    async with await Store.open(database_url, key=key) as leaving:
        assert await leaving.job_lease().hold()
    async with await Store.open(database_url, key=key) as staying:
        assert await staying.job_lease().hold()


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from better_ccflare.database import SecretKey, Store

    async def main() -> None:
        store = await Store.open(sys.argv[1], key=SecretKey.from_text(sys.argv[2], origin='test'))
        assert await store.job_lease().hold()
        async with store.refresh_lock("acc-1"):
            print("holding", flush=True)
            await asyncio.sleep(600)

    asyncio.run(main())
    """
)


async def test_an_instance_killed_with_sigkill_leaves_no_lock_or_leadership_behind(
    two_stores: tuple[Store, Store], database_url: str, key: SecretKey, tmp_path: Path
) -> None:
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, str(script), database_url, key.to_text(), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), timeout=30) == b"holding\n"
        survivor, _ = two_stores
        lease = survivor.job_lease()
        assert not await lease.hold()
        with pytest.raises(FleetLockError):
            async with survivor.refresh_lock("acc-1", timeout_s=0.2):
                pass
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        assert await leads_within(lease, 5)
        async with asyncio.timeout(5), survivor.refresh_lock("acc-1"):
            pass
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


@pytest.mark.sqlite_only
async def test_on_sqlite_the_one_server_always_leads_and_locks_cost_nothing(
    store: Store,
) -> None:
    first, second = store.job_lease(), store.job_lease()
    assert await first.hold()
    assert await second.hold()
    async with store.refresh_lock("acc-1"), store.refresh_lock("acc-1"):
        pass
