from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from better_ccflare.core import LogFormat, LogLevel
from better_ccflare.logger import LogBus, LogEvent, LogSubscription, configure_logging

TIMEOUT = 5.0


def _event(i: int) -> LogEvent:
    return LogEvent(ts_ms=i, level=LogLevel.INFO, logger="better_ccflare.test", msg=f"event {i}")


async def _next(subscription: LogSubscription) -> LogEvent:
    return await asyncio.wait_for(anext(subscription), TIMEOUT)


async def test_subscriber_receives_records_logged_on_the_event_loop(log: logging.Logger) -> None:
    bus = configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=None, console=False)
    async with bus.subscribe() as events:
        log.warning("quota at %d%%", 90, extra={"data": {"account": "work"}})
        event = await _next(events)
    assert (event.level, event.logger, event.msg, event.data) == (
        LogLevel.WARN,
        "better_ccflare.test",
        "quota at 90%",
        {"account": "work"},
    )


async def test_subscriber_receives_records_logged_from_another_thread(
    log: logging.Logger,
) -> None:
    bus = configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=None, console=False)
    async with bus.subscribe() as events:
        await asyncio.to_thread(log.info, "from %s", "a worker")
        event = await _next(events)
    assert event.msg == "from a worker"


async def test_bus_events_are_redacted(log: logging.Logger) -> None:
    bus = configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=None, console=False)
    async with bus.subscribe() as events:
        log.info("auth Bearer abcdefgh12345678", extra={"data": {"x-api-key": "k"}})
        event = await _next(events)
    assert event.msg == "auth Bearer [REDACTED]"
    assert event.data == {"x-api-key": "[REDACTED]"}


async def test_bus_events_carry_the_traceback(log: logging.Logger) -> None:
    bus = configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=None, console=False)
    async with bus.subscribe() as events:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
        event = await _next(events)
    assert event.level is LogLevel.ERROR
    assert event.exc is not None
    assert event.exc.endswith("RuntimeError: boom")


async def test_slow_subscriber_loses_its_oldest_events_and_counts_them() -> None:
    bus = LogBus()
    events = bus.subscribe(maxsize=3)
    for i in range(10):
        bus.publish(_event(i))
    events.close()
    assert [event.msg async for event in events] == ["event 7", "event 8", "event 9"]
    assert events.dropped == 7


async def test_slow_subscriber_does_not_hold_back_a_fast_one() -> None:
    bus = LogBus()
    slow = bus.subscribe(maxsize=1)
    fast = bus.subscribe(maxsize=100)
    for i in range(5):
        bus.publish(_event(i))
    fast.close()
    assert [event.msg async for event in fast] == [f"event {i}" for i in range(5)]
    assert slow.dropped == 4
    slow.close()


async def test_waiting_reader_wakes_for_an_event_published_later() -> None:
    bus = LogBus()
    async with bus.subscribe() as events:
        reader = asyncio.create_task(_next(events))
        await asyncio.sleep(0)
        bus.publish(_event(1))
        assert (await reader).msg == "event 1"


async def test_events_from_many_threads_are_all_delivered_or_counted() -> None:
    bus = LogBus()
    threads_count, per_thread = 8, 500
    async with bus.subscribe(maxsize=100) as events:

        def publish_many(offset: int) -> None:
            for i in range(per_thread):
                bus.publish(_event(offset + i))

        threads = [
            threading.Thread(target=publish_many, args=(n * per_thread,))
            for n in range(threads_count)
        ]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        events.close()
        received = [event async for event in events]
    assert len(received) + events.dropped == threads_count * per_thread
    assert len(received) == 100


async def test_leaving_the_context_stops_delivery() -> None:
    bus = LogBus()
    async with bus.subscribe() as events:
        pass
    bus.publish(_event(1))
    assert [event async for event in events] == []


async def test_closing_wakes_a_waiting_reader() -> None:
    bus = LogBus()
    events = bus.subscribe()

    async def drain() -> list[LogEvent]:
        return [event async for event in events]

    reader = asyncio.create_task(drain())
    await asyncio.sleep(0)
    events.close()
    assert await asyncio.wait_for(reader, TIMEOUT) == []


def test_publishing_survives_a_subscriber_whose_loop_has_closed() -> None:
    bus = LogBus()

    async def subscribe() -> LogSubscription:
        return bus.subscribe()

    loop = asyncio.new_event_loop()
    try:
        orphan = loop.run_until_complete(subscribe())
    finally:
        loop.close()
    bus.publish(_event(1))
    bus.publish(_event(2))
    assert [event.msg for event in bus.recent()] == ["event 1", "event 2"]

    async def drain() -> list[LogEvent]:
        return [event async for event in orphan]

    # The orphan was dropped on its first failed wake-up: it saw event 1, never event 2.
    assert [event.msg for event in asyncio.run(drain())] == ["event 1"]


def test_subscribing_outside_an_event_loop_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        LogBus().subscribe()


def test_recent_keeps_only_the_latest_events() -> None:
    bus = LogBus(history=3)
    for i in range(5):
        bus.publish(_event(i))
    assert [event.ts_ms for event in bus.recent()] == [2, 3, 4]


def test_recent_includes_records_logged_before_anyone_subscribed(log: logging.Logger) -> None:
    bus = configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=None, console=False)
    log.info("early")
    assert [event.msg for event in bus.recent()] == ["early"]
