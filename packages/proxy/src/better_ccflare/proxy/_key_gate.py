"""Enforcing the per-key limits around each request: the async side of :mod:`._key_limits`.

The pipeline calls :meth:`KeyGate.enter` only for a key that has limits (a key without any
costs one ``None`` check), before any upstream call, and :meth:`KeyGate.leave` when the request
is over, with its record. What :class:`KeyGate` adds to the pure bookkeeping:

* **Seeding.** A key's spend and last minute's tokens before this process saw it come from the
  request history (:meth:`~better_ccflare.database.ApiKeyRepository.usage_since`), read once
  per key, on its first request, after the store's queued writes are flushed.
* **Waiting for a concurrency slot.** A request over its key's ``max_concurrent`` waits, in a
  queue of at most :data:`QUEUE_LIMIT` requests per key, for at most :data:`MAX_WAIT_S` seconds;
  a request finding the queue full, or still waiting then, gets the 429.
* **The fleet.** Where several instances share the store (PostgreSQL), requests per minute and
  requests in flight are counted in the store as well, one statement per request of a key with
  an ``rpm`` or ``max_concurrent`` limit (:class:`~better_ccflare.database.KeyFleetCounters`);
  a request the fleet's count refuses is answered at once rather than queued. :meth:`KeyGate.sync`
  (run every :data:`FLEET_SYNC_INTERVAL_MS`) keeps this instance's in-flight counts alive and
  re-reads every tracked key's spend and tokens from the history, which every instance writes.
  See ``docs/keys.md`` for the bounds this gives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from better_ccflare.core import ApiKey, Clock, KeyLimits, KeyUsageTotals, RequestRecord
from better_ccflare.database import Store

from ._key_limits import KeyLimiter, Limit, Refusal

__all__ = ["FLEET_SYNC_INTERVAL_MS", "MAX_WAIT_S", "QUEUE_LIMIT", "KeyGate", "Ticket"]

_log = logging.getLogger("better_ccflare.proxy")

QUEUE_LIMIT = 16
"""Requests of one key that may wait for a concurrency slot at once."""
MAX_WAIT_S = 30.0
"""How long a request waits for a concurrency slot; well inside Claude Code's own 10 minutes."""
FLEET_SYNC_INTERVAL_MS = 1_000
"""How often an instance sharing its store re-reads the tracked keys' spend and tokens."""
_MINUTE_MS = 60_000
_NO_USAGE = KeyUsageTotals()


class Ticket:
    """An admitted request of a key with limits: hand it back to :meth:`KeyGate.leave`."""

    __slots__ = ("entered", "in_fleet", "key_id")

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        self.entered = False
        """Holding one of the key's concurrency slots in this instance."""
        self.in_fleet = False
        """Counted in the fleet's in-flight counts too."""


class KeyGate:
    """Admits or refuses each request of a key with limits, and counts what it used."""

    __slots__ = ("_clock", "_limiter", "_seeding", "_store", "_waiters")

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._limiter = KeyLimiter(clock.now_ms())
        self._seeding: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def limiter(self) -> KeyLimiter:
        """The counters, for the usage views."""
        return self._limiter

    async def enter(self, key: ApiKey, limits: KeyLimits, model: str | None) -> Ticket | Refusal:
        """Admit one request of ``key`` (whose limits are ``limits``), waiting for a
        concurrency slot if need be, or say which limit refuses it."""
        if not self._limiter.knows(key.id):
            await self._seed_once(key.id, limits)
        limiter = self._limiter
        now = self._clock.now_ms()
        refusal = limiter.admit(key.id, key.name, limits, model, now)
        if refusal is not None:
            return refusal
        fleet = self._store.key_fleet
        if limits.rpm is not None and fleet is not None:
            minute = now // _MINUTE_MS
            if await _shared(fleet.take_minute(key.id, minute, limits.rpm)) is False:
                limiter.unadmit(key.id, now)
                return Refusal(
                    limit=Limit.RPM,
                    message=(
                        f"API key '{key.name}' reached its limit of {limits.rpm} requests per "
                        "minute across this proxy's instances."
                    ),
                    frees_at_ms=(minute + 1) * _MINUTE_MS,
                )
        ticket = Ticket(key.id)
        cap = limits.max_concurrent
        if cap is None:
            return ticket
        refusal = limiter.try_enter(key.id, key.name, now)
        if refusal is not None:
            refusal = await self._wait_for_slot(key, refusal)
        if refusal is not None:
            limiter.unadmit(key.id, now)
            return refusal
        ticket.entered = True
        if fleet is not None:
            counted = await _shared(fleet.enter(key.id, cap, self._clock.now_ms()))
            if counted is False:
                self.leave(ticket, None)
                limiter.unadmit(key.id, now)
                return Refusal(
                    limit=Limit.CONCURRENCY,
                    message=(
                        f"API key '{key.name}' has {cap} requests in flight across this "
                        "proxy's instances, its limit; one frees when one of them finishes."
                    ),
                    frees_at_ms=self._clock.now_ms() + 1_000,
                )
            ticket.in_fleet = counted is True
        return ticket

    def leave(self, ticket: Ticket, record: RequestRecord | None) -> None:
        """The request is over; ``record`` (if it was recorded) says what it used."""
        limiter = self._limiter
        if record is not None:
            usage = record.usage
            tokens = usage.input_tokens + usage.cache_creation_input_tokens + usage.output_tokens
            limiter.finished(ticket.key_id, tokens, record.cost_usd, self._clock.now_ms())
        if ticket.in_fleet and self._store.key_fleet is not None:
            ticket.in_fleet = False
            self._store.key_fleet.leave(ticket.key_id, self._clock.now_ms())
        if ticket.entered:
            ticket.entered = False
            limiter.release(ticket.key_id)
            self._wake_next(ticket.key_id)

    async def sync(self) -> None:
        """Re-read every tracked key's spend and last minute's tokens from the history (which
        every instance writes), replacing the local counts, and keep this instance's in-flight
        counts alive. For instances sharing a store."""
        if self._store.key_fleet is not None:
            await self._store.key_fleet.heartbeat(self._clock.now_ms())
        tracked = self._limiter.tracked()
        if tracked:
            await self._seed(tracked)

    async def _seed_once(self, key_id: str, limits: KeyLimits) -> None:
        """Seed a key on its first request; concurrent first requests share one read."""
        task = self._seeding.get(key_id)
        if task is None:
            task = asyncio.create_task(self._seed({key_id: limits}))
            self._seeding[key_id] = task
            task.add_done_callback(lambda _: self._seeding.pop(key_id, None))
        await asyncio.shield(task)

    async def _seed(self, keys: dict[str, KeyLimits]) -> None:
        try:
            await self._read_usage(keys)
        except Exception:
            # Enforce from what is counted here rather than refuse or fail the request.
            _log.warning("could not read the keys' usage from the store", exc_info=True)
            now = self._clock.now_ms()
            for key_id, limits in keys.items():
                self._limiter.track(key_id, limits, now)

    async def _read_usage(self, keys: dict[str, KeyLimits]) -> None:
        self._limiter.mark()
        await self._store.flush()  # so the history holds every request this process ended
        now = self._clock.now_ms()
        periods = self._limiter.periods
        usage_since = self._store.api_keys.usage_since
        day, week, month, minute = await asyncio.gather(
            usage_since(periods.day_start_ms),
            usage_since(periods.week_start_ms),
            usage_since(periods.month_start_ms),
            usage_since(now - _MINUTE_MS),
        )
        if self._limiter.periods is not periods:
            return  # a period turned meanwhile: the totals are of the old ones; next sync
        none = _NO_USAGE
        for key_id, limits in keys.items():
            self._limiter.seed(
                key_id,
                limits,
                day=day.get(key_id, none),
                week=week.get(key_id, none),
                month=month.get(key_id, none),
                minute_tokens=minute.get(key_id, none).tokens,
                now_ms=now,
            )

    async def _wait_for_slot(self, key: ApiKey, refusal: Refusal) -> Refusal | None:
        """Queue for a concurrency slot; ``None`` once one is taken, else the refusal."""
        waiters = self._waiters.setdefault(key.id, deque())
        if len(waiters) >= QUEUE_LIMIT:
            return refusal
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_WAIT_S
        limiter = self._limiter
        while True:
            waiter: asyncio.Future[None] = loop.create_future()
            waiters.append(waiter)
            woken = False
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
                woken = True
            except TimeoutError:
                pass
            finally:
                if waiter in waiters:
                    waiters.remove(waiter)
                if not woken and waiter.done() and not waiter.cancelled():
                    self._wake_next(key.id)  # woken as we gave up: pass the slot on
            if limiter.try_enter(key.id, key.name, self._clock.now_ms()) is None:
                return None
            if not woken:
                return refusal

    def _wake_next(self, key_id: str) -> None:
        waiters = self._waiters.get(key_id)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


async def _shared(count: Coroutine[Any, Any, bool]) -> bool | None:
    """A fleet-wide count's verdict, or ``None`` when the store cannot be reached: then this
    instance's own counts (already passed) decide, rather than failing the request."""
    try:
        return await count
    except Exception:
        _log.warning("could not count a key's request in the shared store", exc_info=True)
        return None
