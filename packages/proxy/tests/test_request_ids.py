"""Request ids: UUIDv7, so that recorded rows are appended at the end of the primary key."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.proxy._request_record import time_ordered_id

_MS = st.integers(min_value=0, max_value=2**48 - 1)


@given(_MS)
def test_a_request_id_is_a_uuid7_carrying_its_millisecond(now_ms: int) -> None:
    request_id = time_ordered_id(now_ms)

    parsed = uuid.UUID(hex=request_id)
    assert len(request_id) == 32
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == now_ms


@given(_MS, _MS)
def test_ids_of_later_milliseconds_sort_later(a_ms: int, b_ms: int) -> None:
    earlier, later = sorted((a_ms, b_ms))
    if earlier < later:
        assert time_ordered_id(earlier) < time_ordered_id(later)


def test_ids_of_the_same_millisecond_differ() -> None:
    assert len({time_ordered_id(1_767_225_600_000) for _ in range(1000)}) == 1000
