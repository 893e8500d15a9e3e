"""Per-key counts that every instance of a fleet shares: requests per minute, requests in flight.

A key's limits must hold for the fleet, not per instance. Each request of a key with an
``rpm`` limit takes a slot of its minute with one atomic statement (an ``INSERT … ON CONFLICT``
that increments only while under the limit), so two instances never both take the last slot.
Each request of a key with ``max_concurrent`` adds one to its instance's row of
``api_key_inflight`` with one statement that first sums every live instance's rows; two
instances admitting at the very same moment can both see the last slot free, so the cap can be
passed by at most one request per other instance racing for it (``docs/keys.md``). An
instance's rows count while it beats (:meth:`PostgresKeyFleet.heartbeat`, every second from the
server): those of an instance that died stop counting :data:`LIVE_MS` after its last beat.
"""

from __future__ import annotations

from ._connection import Reader
from ._writer import Writer

__all__ = ["LIVE_MS", "PostgresKeyFleet"]

LIVE_MS = 10_000
"""How long an instance's in-flight counts stand without a heartbeat."""

_TAKE_MINUTE_SQL = (
    "INSERT INTO api_key_minutes (key_id, minute, requests) VALUES ($1, $2, 1) "
    "ON CONFLICT (key_id, minute) DO UPDATE SET requests = api_key_minutes.requests + 1 "
    "WHERE api_key_minutes.requests < $3 RETURNING requests"
)
_PURGE_MINUTES_SQL = "DELETE FROM api_key_minutes WHERE minute < $1"
_KEEP_MINUTES = 5
_ENTER_SQL = (
    "INSERT INTO api_key_inflight (key_id, instance, requests, seen_ms) "
    "SELECT $1, $2, 1, $3::BIGINT WHERE (SELECT COALESCE(SUM(requests), 0) FROM api_key_inflight "
    "WHERE key_id = $1 AND seen_ms > $3::BIGINT - $5::BIGINT) < $4::BIGINT "
    "ON CONFLICT (key_id, instance) DO UPDATE "
    "SET requests = api_key_inflight.requests + 1, seen_ms = $3 RETURNING requests"
)
_LEAVE_SQL = (
    "UPDATE api_key_inflight SET requests = GREATEST(requests - 1, 0), seen_ms = $3 "
    "WHERE key_id = $1 AND instance = $2"
)
_HEARTBEAT_SQL = "UPDATE api_key_inflight SET seen_ms = $2 WHERE instance = $1"
_PURGE_INFLIGHT_SQL = "DELETE FROM api_key_inflight WHERE seen_ms < $1"


class PostgresKeyFleet:
    """:class:`~better_ccflare.database.KeyFleetCounters` on PostgreSQL."""

    __slots__ = ("_instance", "_purged_before", "_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer, instance: str) -> None:
        self._reader = reader
        self._writer = writer
        self._instance = instance
        self._purged_before = 0

    async def take_minute(self, key_id: str, minute: int, limit: int) -> bool:
        if minute - _KEEP_MINUTES > self._purged_before:
            self._purged_before = minute - _KEEP_MINUTES
            await self._reader.fetch(_PURGE_MINUTES_SQL, self._purged_before)
        return await self._reader.fetchval(_TAKE_MINUTE_SQL, key_id, minute, limit) is not None

    async def enter(self, key_id: str, limit: int, now_ms: int) -> bool:
        taken = await self._reader.fetchval(
            _ENTER_SQL, key_id, self._instance, now_ms, limit, LIVE_MS
        )
        return taken is not None

    def leave(self, key_id: str, now_ms: int) -> None:
        self._writer.enqueue_statement(
            _LEAVE_SQL, (key_id, self._instance, now_ms), label=f"api_key_inflight.leave({key_id})"
        )

    async def heartbeat(self, now_ms: int) -> None:
        await self._reader.fetch(_HEARTBEAT_SQL, self._instance, now_ms)
        await self._reader.fetch(_PURGE_INFLIGHT_SQL, now_ms - 6 * LIVE_MS)
