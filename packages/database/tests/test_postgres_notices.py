"""Change notices on PostgreSQL: an instance hears another's change as it commits, never its own
writes nor every request's use counts, and catches up after its listening connection drops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from better_ccflare.core import KeyLimits, PauseReason, RateLimitState, SessionPin
from better_ccflare.database import SecretKey, Store

from .builders import T0, account, api_key
from .postgres_support import create_database, drop_database

NOTICE_WAIT_S = 1.0
"""A change must reach every instance within a second."""


class Notices:
    """What a store's listener told: ``True`` for a catch-up, ``False`` for a change."""

    def __init__(self) -> None:
        self.told: list[bool] = []
        self._read = 0
        self._arrived = asyncio.Event()

    def __call__(self, caught_up: bool) -> None:
        self.told.append(caught_up)
        self._arrived.set()

    async def next(self) -> bool:
        """The notice after the one read last, waiting at most :data:`NOTICE_WAIT_S` for it."""
        while len(self.told) == self._read:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), NOTICE_WAIT_S)
        self._read += 1
        return self.told[self._read - 1]


@pytest.fixture
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    url = await asyncio.to_thread(create_database, postgres_server_url)
    try:
        yield url
    finally:
        await asyncio.to_thread(drop_database, postgres_server_url, url)


async def listening(store: Store) -> Notices:
    notices = Notices()
    assert store.listen(notices)
    assert await notices.next() is True  # connected: catch up on whatever came before
    return notices


async def test_another_instances_change_is_heard_within_a_second(
    database_url: str, key: SecretKey
) -> None:
    async with (
        await Store.open(database_url, key=key) as server,
        await Store.open(database_url, key=key) as cli,
    ):
        notices = await listening(server)

        await cli.accounts.add(account("added-by-the-cli"))

        assert await notices.next() is False
        assert (await server.accounts.get("added-by-the-cli")) is not None


async def test_its_own_writes_and_use_counts_are_not_notices_but_a_new_session_is(
    database_url: str, key: SecretKey
) -> None:
    async with (
        await Store.open(database_url, key=key) as server,
        await Store.open(database_url, key=key) as other,
    ):
        await other.accounts.add(account("a1"))
        await other.api_keys.add(api_key("k1"))
        other.accounts.record_use_nowait("a1", T0, 3_600_000)  # starts a session: a change
        await other.flush()
        notices = await listening(server)

        await server.accounts.pause("a1", PauseReason.MANUAL)  # its own
        for n in range(1, 6):
            other.accounts.record_use_nowait("a1", T0 + n, 3_600_000)
            other.api_keys.touch("k1", T0 + n)
        await other.flush()
        other.accounts.record_use_nowait("a1", T0 + 3_600_000, 3_600_000)  # a new session
        await other.flush()

        assert await notices.next() is False
        await asyncio.sleep(0.2)  # nothing else is on its way
        assert notices.told == [True, False]


async def test_a_cooldown_written_by_one_instance_is_heard_by_the_other(
    database_url: str, key: SecretKey
) -> None:
    async with (
        await Store.open(database_url, key=key) as first,
        await Store.open(database_url, key=key) as second,
    ):
        await first.accounts.add(account("a1"))
        notices = await listening(second)
        limited = RateLimitState(limited_until_ms=T0 + 60_000, limited_at_ms=T0)

        await first.accounts.update_rate_limit("a1", limited)

        assert await notices.next() is False
        seen = await second.accounts.get("a1")
        assert seen is not None
        assert seen.rate_limit.limited_until_ms == T0 + 60_000


async def test_a_change_of_a_keys_limits_is_heard_like_any_other_key_change(
    database_url: str, key: SecretKey
) -> None:
    async with (
        await Store.open(database_url, key=key) as server,
        await Store.open(database_url, key=key) as cli,
    ):
        await cli.api_keys.add(api_key("k1"))
        notices = await listening(server)

        await cli.api_keys.set_limits("k1", KeyLimits(rpm=5))

        assert await notices.next() is False
        seen = await server.api_keys.get("k1")
        assert seen is not None
        assert seen.limits == KeyLimits(rpm=5)
        cli.api_keys.touch("k1", T0 + 1)  # a use still is no notice
        await cli.flush()
        await asyncio.sleep(0.2)
        assert notices.told == [True, False]


async def test_after_its_connection_drops_the_listener_reconnects_and_asks_for_a_catch_up(
    database_url: str, key: SecretKey
) -> None:
    async with (
        await Store.open(database_url, key=key) as server,
        await Store.open(database_url, key=key) as cli,
    ):
        notices = await listening(server)
        admin = await asyncpg.connect(database_url)
        try:
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name LIKE '%-listen' AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert terminated == 1

        await cli.accounts.add(account("added-while-it-reconnected"))

        # Whether the change's notice beat the termination or not, a catch-up follows.
        while not await notices.next():
            pass
        await cli.accounts.pause("added-while-it-reconnected", PauseReason.MANUAL)
        assert await notices.next() is False  # listening again


async def test_a_pin_stored_by_one_instance_reaches_the_other_with_its_values(
    database_url: str, key: SecretKey
) -> None:
    async with (
        await Store.open(database_url, key=key) as first,
        await Store.open(database_url, key=key) as second,
    ):
        pins: list[SessionPin] = []
        arrived = asyncio.Event()

        def on_pin(pin: SessionPin) -> None:
            pins.append(pin)
            arrived.set()

        notices = Notices()
        assert second.listen(notices, on_pin)
        assert await notices.next() is True
        first_pins: list[SessionPin] = []
        assert first.listen(Notices(), first_pins.append)
        pinned = SessionPin(session_id="s\x00 1", account_id="a1", expires_at_ms=T0 + 60_000)

        first.session_pins.save_nowait(pinned, T0)
        await first.flush()
        await asyncio.wait_for(arrived.wait(), NOTICE_WAIT_S)

        assert pins == [pinned]
        assert first_pins == []  # its own pin
        assert notices.told == [True]  # a pin is no reason to reload the accounts


async def test_sqlite_does_not_push_changes(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("sqlite") / "better-ccflare.db"
    async with await Store.open(path, key=SecretKey.generate()) as store:
        assert store.listen(Notices()) is False
