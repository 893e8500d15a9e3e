"""The usage-history repository: snapshots stored one row per window."""

from __future__ import annotations

from better_ccflare.core import UsageSnapshot, UsageWindow
from better_ccflare.database import Store

from .builders import T0


def snapshot(timestamp_ms: int, five_hour: float, account_id: str = "a1") -> UsageSnapshot:
    return UsageSnapshot(
        account_id=account_id,
        timestamp_ms=timestamp_ms,
        windows=(
            UsageWindow(key="five_hour", utilization=five_hour, resets_at_ms=T0 + 18_000_000),
            UsageWindow(key="seven_day", utilization=12.5),
        ),
    )


async def test_latest_is_the_most_recent_snapshot_of_that_account(store: Store) -> None:
    await store.usage.record(snapshot(T0, 10.0))
    await store.usage.record(snapshot(T0 + 90_000, 11.0))
    await store.usage.record(snapshot(T0 + 180_000, 99.0, account_id="a2"))

    assert await store.usage.latest("a1") == snapshot(T0 + 90_000, 11.0)
    assert await store.usage.latest("nobody") is None


async def test_series_is_oldest_first_from_since(store: Store) -> None:
    for i in range(4):
        await store.usage.record(snapshot(T0 + i * 1000, float(i)))

    series = await store.usage.series("a1", since_ms=T0 + 1000)

    assert series == [snapshot(T0 + i * 1000, float(i)) for i in (1, 2, 3)]


async def test_series_of_one_window(store: Store) -> None:
    await store.usage.record(snapshot(T0, 10.0))
    await store.usage.record(snapshot(T0 + 1, 20.0))

    series = await store.usage.series("a1", since_ms=T0, window_key="seven_day")

    assert [s.windows for s in series] == [(UsageWindow(key="seven_day", utilization=12.5),)] * 2


async def test_delete_older_than(store: Store) -> None:
    await store.usage.record(snapshot(T0, 1.0))
    await store.usage.record(snapshot(T0 + 10, 2.0))

    deleted = await store.usage.delete_older_than(T0 + 10)

    assert deleted == 2  # two windows of the old snapshot
    assert await store.usage.series("a1", since_ms=0) == [snapshot(T0 + 10, 2.0)]
