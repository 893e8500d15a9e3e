"""The API keys repository."""

from __future__ import annotations

import pytest

from better_ccflare.core import (
    ApiKey,
    ApiKeyRole,
    ConflictError,
    KeyLimits,
    KeyUsageTotals,
    NotFoundError,
    TokenUsage,
)
from better_ccflare.database import Store

from .builders import T0, api_key, request


async def test_an_added_key_reads_back_equal_by_id_or_name(store: Store) -> None:
    added = api_key("k1", role=ApiKeyRole.ADMIN, usage_count=3, last_used_ms=T0)

    await store.api_keys.add(added)

    assert await store.api_keys.get("k1") == added
    assert await store.api_keys.get(added.name) == added
    assert await store.api_keys.get("unknown") is None


async def test_get_prefers_an_id_match_over_a_name_match(store: Store) -> None:
    await store.api_keys.add(api_key("k1", name="k2"))
    await store.api_keys.add(api_key("k2", name="second"))

    found = await store.api_keys.get("k2")

    assert found is not None
    assert found.id == "k2"


@pytest.mark.parametrize("clash", ["id", "name", "hashed_key"])
async def test_a_duplicate_id_name_or_hash_is_a_conflict(store: Store, clash: str) -> None:
    await store.api_keys.add(api_key("k1"))
    other = {"id": "k2", "name": "other", "hashed_key": "salt:other"}
    other[clash] = {"id": "k1", "name": "name-k1", "hashed_key": "salt:hash-k1"}[clash]

    with pytest.raises(ConflictError):
        await store.api_keys.add(api_key(other.pop("id"), **other))


async def test_list_all_and_list_active(store: Store) -> None:
    await store.api_keys.add(api_key("k1", created_at_ms=T0))
    await store.api_keys.add(api_key("k2", created_at_ms=T0 + 1, is_active=False))

    assert [k.id for k in await store.api_keys.list_all()] == ["k1", "k2"]
    assert [k.id for k in await store.api_keys.list_active()] == ["k1"]


async def test_set_active(store: Store) -> None:
    await store.api_keys.add(api_key("k1"))

    await store.api_keys.set_active("k1", False)

    changed = await store.api_keys.get("k1")
    assert changed is not None
    assert not changed.is_active


async def test_set_role(store: Store) -> None:
    await store.api_keys.add(api_key("k1"))

    await store.api_keys.set_role("k1", ApiKeyRole.ADMIN)

    changed = await store.api_keys.get("k1")
    assert changed is not None
    assert changed.role is ApiKeyRole.ADMIN


async def test_delete(store: Store) -> None:
    await store.api_keys.add(api_key("k1"))

    await store.api_keys.delete("k1")

    assert await store.api_keys.get("k1") is None


async def test_changing_an_unknown_key_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.api_keys.delete("ghost")
    with pytest.raises(NotFoundError):
        await store.api_keys.set_active("ghost", True)
    with pytest.raises(NotFoundError):
        await store.api_keys.set_role("ghost", ApiKeyRole.ADMIN)


async def test_touch_counts_a_use(store: Store) -> None:
    await store.api_keys.add(api_key("k1"))

    store.api_keys.touch("k1", T0 + 5)
    store.api_keys.touch("k1", T0 + 9)
    await store.flush()

    touched = await store.api_keys.get("k1")
    assert touched is not None
    assert (touched.usage_count, touched.last_used_ms) == (2, T0 + 9)


async def test_count_active_overall_and_by_role(store: Store) -> None:
    await store.api_keys.add(api_key("k1", role=ApiKeyRole.ADMIN))
    await store.api_keys.add(api_key("k2"))
    await store.api_keys.add(api_key("k3", is_active=False, role=ApiKeyRole.ADMIN))

    assert await store.api_keys.count_active() == 2
    assert await store.api_keys.count_active(ApiKeyRole.ADMIN) == 1
    assert await store.api_keys.count_active(ApiKeyRole.API_ONLY) == 1


async def test_limits_round_trip_and_clearing_them_stores_none(store: Store) -> None:
    limits = KeyLimits(
        rpm=10,
        tpm=5_000,
        max_concurrent=2,
        budget_daily_usd=1.5,
        budget_weekly_usd=5.0,
        budget_monthly_usd=20.0,
        models=("claude-sonnet-*", "claude-haiku-*"),
        expires_at_ms=T0 + 86_400_000,
    )
    await store.api_keys.add(api_key("k1", limits=limits))
    assert (await _get(store, "k1")).limits == limits

    await store.api_keys.set_limits("k1", KeyLimits(rpm=3))
    assert (await _get(store, "k1")).limits == KeyLimits(rpm=3)

    await store.api_keys.set_limits("k1", KeyLimits())
    assert (await _get(store, "k1")).limits is None


async def test_set_limits_of_an_unknown_key_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.api_keys.set_limits("nope", KeyLimits(rpm=1))


async def test_usage_since_sums_each_keys_requests_from_the_cut_on(store: Store) -> None:
    usage = TokenUsage(
        input_tokens=10,
        output_tokens=20,
        cache_read_input_tokens=1000,
        cache_write_5m_input_tokens=5,
    )
    store.requests.record(request("r0", timestamp_ms=T0 - 1, api_key_id="a", cost_usd=9.0))
    store.requests.record(
        request("r1", timestamp_ms=T0, api_key_id="a", cost_usd=0.25, usage=usage)
    )
    store.requests.record(request("r2", timestamp_ms=T0 + 5, api_key_id="a", cost_usd=None))
    store.requests.record(request("r3", timestamp_ms=T0 + 9, api_key_id="b", cost_usd=1.0))
    store.requests.record(request("r4", timestamp_ms=T0 + 9, cost_usd=7.0))
    await store.flush()

    totals = await store.api_keys.usage_since(T0)

    assert totals == {
        # Cache reads are not counted (KeyLimits.tpm); a request of unknown cost adds nothing.
        "a": KeyUsageTotals(requests=2, tokens=10 + 20 + 5 + 30, cost_usd=0.25),
        "b": KeyUsageTotals(requests=1, tokens=30, cost_usd=1.0),
    }


async def _get(store: Store, key_id: str) -> ApiKey:
    found = await store.api_keys.get(key_id)
    assert found is not None
    return found
