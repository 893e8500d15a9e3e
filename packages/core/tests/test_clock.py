"""The injectable clocks."""

from __future__ import annotations

import time

import pytest

from better_ccflare.core import Clock, FakeClock, SystemClock


def test_system_clock_reads_wall_time() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock)
    assert abs(clock.now_ms() - time.time() * 1000) < 1000


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(now_ms=1_000)
    assert clock.now_ms() == 1_000
    clock.advance(250)
    assert clock.now_ms() == 1_250
    assert clock.monotonic() == pytest.approx(0.25)
    clock.set(2_000)
    assert clock.now_ms() == 2_000


def test_fake_clock_refuses_to_go_back() -> None:
    clock = FakeClock(now_ms=1_000)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(999)
