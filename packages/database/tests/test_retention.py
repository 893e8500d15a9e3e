"""Retention: old history goes, recent history stays, and deletion runs in bounded batches."""

from __future__ import annotations

import asyncio
from pathlib import Path

from better_ccflare.core import FakeClock, UsageSnapshot, UsageWindow
from better_ccflare.database import RetentionResult, Store

from . import rawdb
from .builders import DAY_MS, T0, oauth_session, request


async def record_at(store: Store, clock: FakeClock, request_id: str, at_ms: int) -> None:
    """Record a request and its payload as if it happened at ``at_ms``."""
    clock.set(at_ms)
    store.requests.record(request(request_id, timestamp_ms=at_ms))
    store.requests.record_payload(request_id, '{"meta":{}}')
    await store.flush()


async def test_old_payloads_and_requests_go_and_recent_ones_stay(
    store: Store, clock: FakeClock
) -> None:
    await record_at(store, clock, "100-days", T0)
    await record_at(store, clock, "10-days", T0 + 90 * DAY_MS)
    await record_at(store, clock, "1-hour", T0 + 100 * DAY_MS - 3_600_000)
    clock.set(T0 + 100 * DAY_MS)

    result = await store.run_retention(payload_days=1, request_days=90)

    assert (result.payloads_deleted, result.requests_deleted) == (2, 1)
    assert await store.requests.get("100-days") is None
    assert await store.requests.get("10-days") is not None
    assert await store.requests.get_payload("10-days") is None
    assert await store.requests.get_payload("1-hour") is not None


async def test_a_row_exactly_at_the_cutoff_is_kept(store: Store) -> None:
    store.requests.record(request("edge", timestamp_ms=T0))
    await store.flush()

    result = await store.run_retention(payload_days=1, request_days=90, now_ms=T0 + 90 * DAY_MS)

    assert result.requests_deleted == 0
    assert await store.requests.count() == 1


async def test_deletion_runs_in_batches_of_the_given_size(store: Store) -> None:
    for i in range(25):
        store.requests.record(request(f"old-{i}", timestamp_ms=T0))
    store.requests.record(request("new", timestamp_ms=T0 + 100 * DAY_MS))
    await store.flush()

    result = await store.run_retention(
        payload_days=1, request_days=90, now_ms=T0 + 100 * DAY_MS, batch_size=10
    )

    assert result.requests_deleted == 25
    # Requests took 10 + 10 + 5; each of the other four kinds one (short) batch.
    assert result.batches == 3 + 4
    assert [r.id for r in await store.requests.list_recent(100)] == ["new"]


async def test_orphaned_payloads_are_removed(store: Store, db_path: Path) -> None:
    store.requests.record(request("kept"))
    store.requests.record_payload("kept", "{}")
    await store.flush()
    # The reference could leave payloads without a request (written with foreign keys off).
    await asyncio.to_thread(
        rawdb.execute,
        db_path,
        "INSERT INTO request_payloads (id, json, timestamp) VALUES ('orphan', '{}', NULL)",
    )

    result = await store.run_retention(payload_days=1, request_days=90, now_ms=T0)

    assert result.orphan_payloads_deleted == 1
    assert await store.requests.get_payload("kept") == "{}"


async def test_expired_oauth_sessions_and_old_usage_snapshots_are_removed(store: Store) -> None:
    now = T0 + 90 * DAY_MS + 1
    await store.oauth_sessions.create(oauth_session("expired", expires_at_ms=now))
    await store.oauth_sessions.create(oauth_session("live", expires_at_ms=now + 1))
    windows = (UsageWindow(key="five_hour", utilization=1.0),)
    await store.usage.record(UsageSnapshot(account_id="a", timestamp_ms=T0, windows=windows))
    await store.usage.record(UsageSnapshot(account_id="a", timestamp_ms=T0 + 1, windows=windows))

    result = await store.run_retention(payload_days=1, request_days=90, now_ms=now)

    assert (result.oauth_sessions_deleted, result.usage_snapshots_deleted) == (1, 1)
    assert await store.oauth_sessions.get("live", now_ms=now) is not None
    assert [s.timestamp_ms for s in await store.usage.series("a", since_ms=0)] == [T0 + 1]


async def test_retention_of_an_empty_database_deletes_nothing(store: Store) -> None:
    result = await store.run_retention(payload_days=1, request_days=90)

    assert result == RetentionResult(batches=5)


async def test_writes_queued_during_retention_are_kept(store: Store, clock: FakeClock) -> None:
    for i in range(50):
        store.requests.record(request(f"old-{i}", timestamp_ms=T0))
    await store.flush()
    clock.set(T0 + 100 * DAY_MS)

    retention = asyncio.ensure_future(
        store.run_retention(payload_days=1, request_days=90, batch_size=5)
    )
    await asyncio.sleep(0)
    store.requests.record(request("live", timestamp_ms=clock.now_ms()))
    result = await retention
    await store.flush()

    assert result.requests_deleted == 50
    assert [r.id for r in await store.requests.list_recent(100)] == ["live"]
