"""The injectable clocks."""

from __future__ import annotations

import asyncio
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


def test_fake_clock_runs_scheduled_calls_in_order_once_time_passes_them() -> None:
    clock = FakeClock(now_ms=1_000)
    calls: list[str] = []
    clock.call_later(0.5, lambda: calls.append("late"))
    clock.call_later(0.2, lambda: calls.append("early"))
    clock.call_later(0.3, lambda: calls.append("cancelled")).cancel()
    clock.advance(199)
    assert calls == []
    clock.advance(1)
    assert calls == ["early"]
    clock.set(2_000)
    assert calls == ["early", "late"]


async def test_system_clock_schedules_on_the_running_loop() -> None:
    fired = asyncio.Event()
    SystemClock().call_later(0.01, fired.set)
    await asyncio.wait_for(fired.wait(), timeout=5)
