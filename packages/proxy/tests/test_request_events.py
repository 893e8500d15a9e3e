"""RequestEvents: every subscriber sees every record; a slow one loses its oldest, never blocks."""

from __future__ import annotations

from better_ccflare.core import RequestRecord
from better_ccflare.proxy import RequestEvents, RequestStart


def record(n: int) -> RequestRecord:
    return RequestRecord(id=f"r{n}", timestamp_ms=n, method="POST", path="/v1/messages")


async def test_each_subscriber_gets_each_record_and_leaving_stops_delivery() -> None:
    events = RequestEvents()
    events.publish(record(0))  # nobody listening: dropped, no error
    async with events.subscribe() as first, events.subscribe() as second:
        assert events.subscriber_count == 2
        events.publish(record(1))
        assert (await first.get()).id == "r1"
        assert (await second.get()).id == "r1"
    assert events.subscriber_count == 0
    events.publish(record(2))


async def test_a_full_queue_drops_its_oldest_record() -> None:
    events = RequestEvents(queue_size=3)
    async with events.subscribe() as queue:
        for n in range(5):
            events.publish(record(n))
        assert [queue.get_nowait().id for _ in range(queue.qsize())] == ["r2", "r3", "r4"]


async def test_a_start_reaches_subscribers_but_not_listeners() -> None:
    events = RequestEvents()
    heard: list[RequestRecord] = []
    events.add_listener(lambda record, _timings: heard.append(record))
    start = RequestStart(
        id="r1", timestamp_ms=1, method="POST", path="/v1/messages", model=None, account_id="a"
    )
    async with events.subscribe() as queue:
        events.publish_start(start)
        events.publish(record(1))
        assert [queue.get_nowait(), queue.get_nowait()] == [start, record(1)]
    assert [r.id for r in heard] == ["r1"]
