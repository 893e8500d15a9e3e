"""The requests repository: recording history and payloads, reading it back, resetting it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from better_ccflare.core import (
    BillingType,
    FakeClock,
    StreamTerminalState,
    TokenUsage,
)
from better_ccflare.database import Store

from . import rawdb
from .builders import T0, account, request


async def test_a_recorded_request_reads_back_equal_after_a_flush(store: Store) -> None:
    recorded = request(
        "r1",
        usage=TokenUsage(
            input_tokens=5,
            output_tokens=7,
            cache_read_input_tokens=11,
            cache_write_5m_input_tokens=13,
            cache_write_1h_input_tokens=17,
        ),
        cost_usd=0.0123,
        output_tokens_per_second=88.5,
        billing_type=BillingType.PLAN,
        stream_terminal_state=StreamTerminalState.COMPLETED,
        client_session_id="session-9",
    )

    store.requests.record(recorded)
    await store.flush()

    assert await store.requests.get("r1") == recorded


async def test_the_reference_derived_token_columns_are_written(store: Store, db_path: Path) -> None:
    usage = TokenUsage(
        input_tokens=5,
        output_tokens=7,
        cache_read_input_tokens=11,
        cache_write_5m_input_tokens=13,
        cache_write_1h_input_tokens=17,
    )
    store.requests.record(request("r1", usage=usage))
    await store.flush()

    rows = await asyncio.to_thread(rawdb.query, db_path, "SELECT * FROM requests")

    expected = {
        "prompt_tokens": 5 + 11 + 30,
        "completion_tokens": 7,
        "total_tokens": 5 + 11 + 30 + 7,
        "cache_creation_input_tokens": 30,
        "cache_creation_1h_input_tokens": 17,
        "account_used": "acc-1",
    }
    assert expected.items() <= rows[0].items()


async def test_recording_the_same_id_again_completes_the_row(store: Store) -> None:
    store.requests.record(request("r1", model="claude-opus-4-1", status_code=None, success=False))
    store.requests.record(
        request(
            "r1",
            model=None,
            status_code=200,
            success=True,
            usage=TokenUsage(input_tokens=1, output_tokens=2),
        )
    )
    await store.flush()

    completed = await store.requests.get("r1")

    assert completed is not None
    assert completed.model == "claude-opus-4-1"  # a later None does not erase it
    assert (completed.status_code, completed.success) == (200, True)
    assert completed.usage == TokenUsage(input_tokens=1, output_tokens=2)


async def test_get_of_an_unknown_request_is_none(store: Store) -> None:
    assert await store.requests.get("nope") is None


async def test_list_recent_is_newest_first_and_limited(store: Store) -> None:
    for i in range(5):
        store.requests.record(request(f"r{i}", timestamp_ms=T0 + i))
    await store.flush()

    recent = await store.requests.list_recent(3)

    assert [r.id for r in recent] == ["r4", "r3", "r2"]


async def test_list_recent_filters_by_account_and_pages_backwards(store: Store) -> None:
    for i in range(6):
        store.requests.record(
            request(f"r{i}", timestamp_ms=T0 + i, account_id="even" if i % 2 == 0 else "odd")
        )
    await store.flush()

    first_page = await store.requests.list_recent(2, account_id="even")
    second_page = await store.requests.list_recent(
        2, account_id="even", before_ms=first_page[-1].timestamp_ms
    )

    assert [r.id for r in first_page] == ["r4", "r2"]
    assert [r.id for r in second_page] == ["r0"]


async def test_a_payload_is_stored_as_text_from_bytes_or_str(store: Store) -> None:
    store.requests.record(request("r1"))
    store.requests.record(request("r2"))

    accepted = [
        store.requests.record_payload("r1", b'{"request":{"body":"\xc3\xa9"}}'),
        store.requests.record_payload("r2", '{"response":{"status":200}}'),
    ]
    await store.flush()

    assert accepted == [True, True]
    assert await store.requests.get_payload("r1") == '{"request":{"body":"\u00e9"}}'
    assert await store.requests.get_payload("r2") == '{"response":{"status":200}}'
    assert await store.requests.get_payload("r3") is None


async def test_a_payload_is_stamped_with_the_clock(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    store.requests.record(request("r1"))
    store.requests.record_payload("r1", "{}")
    await store.flush()

    rows = await asyncio.to_thread(rawdb.query, db_path, "SELECT timestamp FROM request_payloads")
    assert rows == [{"timestamp": clock.now_ms()}]


async def test_count(store: Store) -> None:
    for i in range(3):
        store.requests.record(request(f"r{i}"))
    await store.flush()

    assert await store.requests.count() == 3


async def test_delete_all_resets_history_and_account_counters(store: Store) -> None:
    await store.accounts.add(account("acc-1"))
    await store.accounts.record_use("acc-1", T0, 3_600_000)
    store.requests.record(request("r1"))
    store.requests.record_payload("r1", "{}")
    await store.flush()

    deleted = await store.requests.delete_all()

    reset = await store.accounts.get("acc-1")
    assert deleted == 1
    assert await store.requests.count() == 0
    assert await store.requests.get_payload("r1") is None
    assert reset is not None
    assert (reset.request_count, reset.session.request_count, reset.total_requests) == (0, 0, 1)


async def test_an_unknown_cost_reads_back_unknown_not_zero(store: Store) -> None:
    recorded = request("r-unpriced", model="house-model", cost_usd=None)
    store.requests.record(recorded)
    await store.flush()

    assert (await store.requests.get("r-unpriced")) == recorded
