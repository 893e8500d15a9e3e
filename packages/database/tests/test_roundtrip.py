"""Any account or request record the core can express reads back exactly as it was written."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given, settings

from better_ccflare.core import Account, RequestRecord
from better_ccflare.core.testing import accounts, request_records
from better_ccflare.database import SecretKey, Store

EXAMPLES = settings(max_examples=75, deadline=None)


def test_accounts_round_trip_through_the_repository(
    store_target: Path | str, key: SecretKey
) -> None:
    with asyncio.Runner() as runner:
        store = runner.run(Store.open(store_target, key=key))

        async def write_and_read(account: Account) -> Account | None:
            await store.accounts.add(account)
            try:
                return await store.accounts.get(account.id)
            finally:
                await store.accounts.delete(account.id)

        @EXAMPLES
        @given(accounts)
        def round_trip(account: Account) -> None:
            assert runner.run(write_and_read(account)) == account

        try:
            round_trip()
        finally:
            runner.run(store.close())


def test_request_records_round_trip_through_the_repository(
    store_target: Path | str, key: SecretKey
) -> None:
    with asyncio.Runner() as runner:
        store = runner.run(Store.open(store_target, key=key))

        async def write_and_read(record: RequestRecord) -> RequestRecord | None:
            store.requests.record(record)
            await store.flush()
            try:
                return await store.requests.get(record.id)
            finally:
                await store.requests.delete_all()

        @EXAMPLES
        @given(request_records)
        def round_trip(record: RequestRecord) -> None:
            assert runner.run(write_and_read(record)) == record

        try:
            round_trip()
        finally:
            runner.run(store.close())
