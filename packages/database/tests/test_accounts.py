"""The accounts repository: every method, including the token compare-and-swap."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from better_ccflare.core import (
    BillingType,
    ConflictError,
    Credentials,
    NotFoundError,
    PauseReason,
    RateLimitReason,
    RateLimitState,
    SessionState,
)
from better_ccflare.database import Store

from . import rawdb
from .builders import T0, account

HOUR_MS = 3_600_000
FIVE_HOURS_MS = 5 * HOUR_MS


async def test_an_added_account_reads_back_equal(store: Store) -> None:
    added = account(
        "a1",
        priority=3,
        model_mappings={"opus": ("claude-opus-4-1", "claude-sonnet-4-5")},
        billing_type=BillingType.PLAN,
        rate_limit=RateLimitState(reason=RateLimitReason.WINDOWLESS_429, consecutive=2),
    )

    await store.accounts.add(added)

    assert await store.accounts.get("a1") == added


async def test_get_of_an_unknown_account_is_none(store: Store) -> None:
    assert await store.accounts.get("nope") is None


async def test_credentials_are_encrypted_in_the_table(store: Store, db_path: Path) -> None:
    await store.accounts.add(account("a1", credentials=Credentials(api_key="sk-ant-api03-XYZ")))

    rows = await asyncio.to_thread(rawdb.query, db_path, "SELECT api_key FROM accounts")
    assert rows[0]["api_key"].startswith("enc:v1:")
    assert "sk-ant-api03-XYZ" not in rows[0]["api_key"]


async def test_a_duplicate_id_is_a_conflict(store: Store) -> None:
    await store.accounts.add(account("a1"))

    with pytest.raises(ConflictError):
        await store.accounts.add(account("a1", name="other"))


async def test_a_duplicate_name_for_the_same_provider_and_endpoint_is_a_conflict(
    store: Store,
) -> None:
    await store.accounts.add(account("a1", name="work"))

    with pytest.raises(ConflictError, match="'work'"):
        await store.accounts.add(account("a2", name="work"))


async def test_the_same_name_is_allowed_for_another_provider_or_endpoint(store: Store) -> None:
    await store.accounts.add(account("a1", name="work"))
    await store.accounts.add(account("a2", name="work", provider="zai"))
    await store.accounts.add(account("a3", name="work", custom_endpoint="https://proxy.example"))

    assert len(await store.accounts.list_all()) == 3


async def test_get_by_name(store: Store) -> None:
    await store.accounts.add(account("a1", name="work"))

    found = await store.accounts.get_by_name("work")

    assert found is not None
    assert found.id == "a1"
    assert await store.accounts.get_by_name("home") is None


async def test_get_by_an_ambiguous_name_is_a_conflict(store: Store) -> None:
    await store.accounts.add(account("a1", name="work"))
    await store.accounts.add(account("a2", name="work", provider="zai"))

    with pytest.raises(ConflictError, match="by its id"):
        await store.accounts.get_by_name("work")


async def test_list_all_orders_by_priority_then_age(store: Store) -> None:
    await store.accounts.add(account("late-low", priority=0, created_at_ms=T0 + 2))
    await store.accounts.add(account("high", priority=5, created_at_ms=T0))
    await store.accounts.add(account("early-low", priority=0, created_at_ms=T0 + 1))

    assert [a.id for a in await store.accounts.list_all()] == ["early-low", "late-low", "high"]


async def test_delete(store: Store) -> None:
    await store.accounts.add(account("a1"))

    await store.accounts.delete("a1")

    assert await store.accounts.get("a1") is None


UNKNOWN_ACCOUNT_CHANGES: dict[str, Callable[[Store], Awaitable[object]]] = {
    "delete": lambda s: s.accounts.delete("ghost"),
    "rename": lambda s: s.accounts.rename("ghost", "x"),
    "set_priority": lambda s: s.accounts.set_priority("ghost", 1),
    "pause": lambda s: s.accounts.pause("ghost", PauseReason.MANUAL),
    "resume": lambda s: s.accounts.resume("ghost"),
    "set_flags": lambda s: s.accounts.set_flags("ghost", auto_refresh=True),
    "set_custom_endpoint": lambda s: s.accounts.set_custom_endpoint("ghost", None),
    "set_model_mappings": lambda s: s.accounts.set_model_mappings("ghost", {}),
    "set_billing_type": lambda s: s.accounts.set_billing_type("ghost", None),
    "update_rate_limit": lambda s: s.accounts.update_rate_limit("ghost", RateLimitState()),
    "record_use": lambda s: s.accounts.record_use("ghost", T0, FIVE_HOURS_MS),
    "reset_session": lambda s: s.accounts.reset_session("ghost", T0),
    "set_credentials": lambda s: s.accounts.set_credentials("ghost", Credentials()),
}


@pytest.mark.parametrize(
    "change", list(UNKNOWN_ACCOUNT_CHANGES.values()), ids=list(UNKNOWN_ACCOUNT_CHANGES)
)
async def test_changing_an_unknown_account_is_not_found(
    store: Store, change: Callable[[Store], Awaitable[object]]
) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        await change(store)


async def test_rename(store: Store) -> None:
    await store.accounts.add(account("a1", name="old"))

    await store.accounts.rename("a1", "new")

    renamed = await store.accounts.get("a1")
    assert renamed is not None
    assert renamed.name == "new"


async def test_renaming_onto_a_taken_name_is_a_conflict(store: Store) -> None:
    await store.accounts.add(account("a1", name="one"))
    await store.accounts.add(account("a2", name="two"))

    with pytest.raises(ConflictError):
        await store.accounts.rename("a2", "one")


async def test_set_priority(store: Store) -> None:
    await store.accounts.add(account("a1"))

    await store.accounts.set_priority("a1", 7)

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert changed.priority == 7


async def test_pause_records_the_reason_and_resume_clears_it(store: Store) -> None:
    await store.accounts.add(account("a1"))

    await store.accounts.pause("a1", PauseReason.OVERAGE)
    paused = await store.accounts.get("a1")
    await store.accounts.resume("a1")
    resumed = await store.accounts.get("a1")

    assert paused is not None
    assert paused.paused
    assert paused.pause_reason is PauseReason.OVERAGE
    assert resumed is not None
    assert not resumed.paused
    assert resumed.pause_reason is None


async def test_set_flags_changes_only_the_given_toggles(store: Store) -> None:
    await store.accounts.add(account("a1", auto_fallback_enabled=True))

    await store.accounts.set_flags("a1", auto_refresh=True, peak_hours_pause=True)

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert changed.auto_fallback_enabled
    assert changed.auto_refresh_enabled
    assert changed.peak_hours_pause_enabled
    assert not changed.auto_pause_on_overage_enabled


async def test_set_flags_with_no_flags_changes_nothing(store: Store) -> None:
    await store.accounts.add(account("a1"))

    await store.accounts.set_flags("a1")

    assert await store.accounts.get("a1") == account("a1")


async def test_set_custom_endpoint(store: Store) -> None:
    await store.accounts.add(account("a1"))

    await store.accounts.set_custom_endpoint("a1", "https://gateway.example/anthropic")

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert changed.custom_endpoint == "https://gateway.example/anthropic"


async def test_set_model_mappings_stores_the_reference_json_shape(
    store: Store, db_path: Path
) -> None:
    await store.accounts.add(account("a1"))
    mappings = {"opus": ("glm-4.6",), "sonnet": ("glm-4.6", "glm-4.5-air")}

    await store.accounts.set_model_mappings("a1", mappings)

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert changed.model_mappings == mappings
    rows = await asyncio.to_thread(rawdb.query, db_path, "SELECT model_mappings FROM accounts")
    assert msgspec.json.decode(rows[0]["model_mappings"]) == {
        "opus": "glm-4.6",
        "sonnet": ["glm-4.6", "glm-4.5-air"],
    }


async def test_set_billing_type(store: Store) -> None:
    await store.accounts.add(account("a1"))

    await store.accounts.set_billing_type("a1", BillingType.API)

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert changed.billing_type is BillingType.API


async def test_update_rate_limit_replaces_the_whole_state(store: Store) -> None:
    await store.accounts.add(account("a1"))
    state = RateLimitState(
        status="rate_limited",
        reset_at_ms=T0 + HOUR_MS,
        remaining=0,
        limited_until_ms=T0 + HOUR_MS,
        reason=RateLimitReason.UPSTREAM_429_WITH_RESET,
        limited_at_ms=T0,
        consecutive=4,
    )

    await store.accounts.update_rate_limit("a1", state)

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert changed.rate_limit == state


async def test_record_use_counts_and_starts_a_session(store: Store) -> None:
    await store.accounts.add(account("a1"))

    await store.accounts.record_use("a1", T0 + 10, FIVE_HOURS_MS)
    await store.accounts.record_use("a1", T0 + 20, FIVE_HOURS_MS)

    used = await store.accounts.get("a1")
    assert used is not None
    assert (used.request_count, used.total_requests, used.last_used_ms) == (2, 2, T0 + 20)
    assert used.session == SessionState(started_at_ms=T0 + 10, request_count=2)


async def test_record_use_rolls_the_session_once_it_is_older_than_the_duration(
    store: Store,
) -> None:
    await store.accounts.add(account("a1"))
    await store.accounts.record_use("a1", T0, FIVE_HOURS_MS)
    await store.accounts.record_use("a1", T0 + 1, FIVE_HOURS_MS)

    await store.accounts.record_use("a1", T0 + FIVE_HOURS_MS, FIVE_HOURS_MS)

    used = await store.accounts.get("a1")
    assert used is not None
    assert used.session == SessionState(started_at_ms=T0 + FIVE_HOURS_MS, request_count=1)
    assert used.total_requests == 3


async def test_record_use_nowait_is_written_by_the_next_flush(store: Store) -> None:
    await store.accounts.add(account("a1"))

    store.accounts.record_use_nowait("a1", T0, FIVE_HOURS_MS)
    store.accounts.record_use_nowait("a1", T0 + 1, FIVE_HOURS_MS)
    await store.flush()

    used = await store.accounts.get("a1")
    assert used is not None
    assert used.request_count == 2


async def test_a_rate_limit_reading_leaves_the_cooldown_as_stored(store: Store) -> None:
    cooling = RateLimitState(
        status="rate_limited",
        limited_until_ms=T0 + HOUR_MS,
        reason=RateLimitReason.UPSTREAM_429_WITH_RESET,
        limited_at_ms=T0,
        consecutive=2,
    )
    await store.accounts.add(account("a1", rate_limit=cooling))

    # The reading's own cooldown fields are stale: only status, reset and remaining are taken.
    stale = RateLimitState(status="allowed", reset_at_ms=T0 + 5, remaining=7)
    store.accounts.record_rate_limit_reading_nowait("a1", stale)
    store.accounts.record_rate_limit_reading_nowait("ghost", stale)
    await store.flush()

    stored = await store.accounts.get("a1")
    assert stored is not None
    assert stored.rate_limit == msgspec.structs.replace(
        cooling, status="allowed", reset_at_ms=T0 + 5, remaining=7
    )
    assert store.stats().ops_failed == 0


async def test_reset_session(store: Store) -> None:
    await store.accounts.add(account("a1"))
    await store.accounts.record_use("a1", T0, FIVE_HOURS_MS)

    await store.accounts.reset_session("a1", T0 + 99)

    reset = await store.accounts.get("a1")
    assert reset is not None
    assert reset.session == SessionState(started_at_ms=T0 + 99)
    assert reset.total_requests == 1


async def test_set_credentials_replaces_them_and_clears_requires_reauth(store: Store) -> None:
    await store.accounts.add(account("a1", requires_reauth=True))
    fresh = Credentials(access_token="new-access", refresh_token="new-refresh", expires_at_ms=T0)

    await store.accounts.set_credentials("a1", fresh)

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert changed.credentials == fresh
    assert not changed.requires_reauth


async def test_set_credentials_ends_a_bench_for_rejected_credentials(store: Store) -> None:
    rejected = RateLimitState(
        limited_until_ms=T0 + HOUR_MS,
        reason=RateLimitReason.CREDENTIALS_REJECTED,
        limited_at_ms=T0,
        failures=2,
    )
    await store.accounts.add(account("a1", rate_limit=rejected))

    await store.accounts.set_credentials("a1", Credentials(api_key="sk-ant-api03-new"))

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert (changed.rate_limit.limited_until_ms, changed.rate_limit.failures) == (None, 0)


async def test_set_credentials_leaves_a_quota_cooldown_alone(store: Store) -> None:
    quota = RateLimitState(
        limited_until_ms=T0 + HOUR_MS,
        reason=RateLimitReason.UPSTREAM_429_WITH_RESET,
        limited_at_ms=T0,
        consecutive=1,
    )
    await store.accounts.add(account("a1", rate_limit=quota))

    await store.accounts.set_credentials("a1", Credentials(api_key="sk-ant-api03-new"))

    changed = await store.accounts.get("a1")
    assert changed is not None
    assert changed.rate_limit == quota


async def test_the_failure_streak_is_stored_with_the_rate_limit(store: Store) -> None:
    await store.accounts.add(account("a1"))
    state = RateLimitState(
        limited_until_ms=T0 + 5_000,
        reason=RateLimitReason.CONNECT_FAILED,
        limited_at_ms=T0,
        failures=3,
    )

    await store.accounts.update_rate_limit("a1", state)

    stored = await store.accounts.get("a1")
    assert stored is not None
    assert stored.rate_limit == state


async def test_refresh_swap_succeeds_when_the_refresh_token_is_unchanged(store: Store) -> None:
    await store.accounts.add(account("a1"))
    rotated = Credentials(access_token="access-2", refresh_token="refresh-2", expires_at_ms=T0)

    swapped = await store.accounts.update_credentials_if_refresh_token_matches(
        "a1", "refresh-a1", rotated
    )

    changed = await store.accounts.get("a1")
    assert swapped
    assert changed is not None
    assert changed.credentials == rotated


async def test_refresh_swap_fails_when_another_refresh_won(store: Store) -> None:
    await store.accounts.add(account("a1"))
    first = Credentials(access_token="access-2", refresh_token="refresh-2")
    second = Credentials(access_token="access-3", refresh_token="refresh-3")

    results = await asyncio.gather(
        store.accounts.update_credentials_if_refresh_token_matches("a1", "refresh-a1", first),
        store.accounts.update_credentials_if_refresh_token_matches("a1", "refresh-a1", second),
    )

    changed = await store.accounts.get("a1")
    assert results == [True, False]
    assert changed is not None
    assert changed.credentials == first


async def test_refresh_swap_with_none_matches_only_an_account_without_a_refresh_token(
    store: Store,
) -> None:
    await store.accounts.add(account("with", credentials=Credentials(refresh_token="r")))
    await store.accounts.add(account("without", credentials=Credentials(api_key="k")))
    new = Credentials(access_token="a", refresh_token="r2")

    assert not await store.accounts.update_credentials_if_refresh_token_matches("with", None, new)
    assert await store.accounts.update_credentials_if_refresh_token_matches("without", None, new)


async def test_refresh_swap_on_an_unknown_account_is_false(store: Store) -> None:
    assert not await store.accounts.update_credentials_if_refresh_token_matches(
        "ghost", "r", Credentials()
    )


async def test_mark_requires_reauth_only_while_the_refresh_token_matches(store: Store) -> None:
    await store.accounts.add(account("a1"))

    stale = await store.accounts.mark_requires_reauth_if_refresh_token_matches("a1", "old-token")
    unchanged = await store.accounts.get("a1")
    current = await store.accounts.mark_requires_reauth_if_refresh_token_matches("a1", "refresh-a1")
    marked = await store.accounts.get("a1")

    assert not stale
    assert unchanged is not None
    assert not unchanged.requires_reauth
    assert current
    assert marked is not None
    assert marked.requires_reauth


async def test_clear_expired_rate_limits_ends_only_past_cooldowns(store: Store) -> None:
    await store.accounts.add(account("past", rate_limit=RateLimitState(limited_until_ms=T0 - 1)))
    await store.accounts.add(account("due", rate_limit=RateLimitState(limited_until_ms=T0)))
    await store.accounts.add(account("future", rate_limit=RateLimitState(limited_until_ms=T0 + 1)))
    await store.accounts.add(account("never"))

    cleared = await store.accounts.clear_expired_rate_limits(T0)

    limits = {a.id: a.rate_limit.limited_until_ms for a in await store.accounts.list_all()}
    assert cleared == 2
    assert limits == {"past": None, "due": None, "future": T0 + 1, "never": None}
