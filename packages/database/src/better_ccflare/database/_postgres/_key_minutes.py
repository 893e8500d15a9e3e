"""Requests per key and minute, counted in one row that every instance of a fleet updates.

A key's requests-per-minute limit must hold for the fleet, not per instance: each request of a
key with such a limit takes a slot with one atomic statement (an ``INSERT … ON CONFLICT`` that
only increments while under the limit), so two instances can never both take the last slot.
Rows of minutes long past are deleted now and then, by whichever instance passes the minute.
"""

from __future__ import annotations

from ._connection import Reader

__all__ = ["PostgresKeyMinutes"]

_TAKE_SQL = (
    "INSERT INTO api_key_minutes (key_id, minute, requests) VALUES ($1, $2, 1) "
    "ON CONFLICT (key_id, minute) DO UPDATE SET requests = api_key_minutes.requests + 1 "
    "WHERE api_key_minutes.requests < $3 RETURNING requests"
)
_PURGE_SQL = "DELETE FROM api_key_minutes WHERE minute < $1"
_KEEP_MINUTES = 5


class PostgresKeyMinutes:
    """:class:`~better_ccflare.database.KeyMinuteCounter` on PostgreSQL."""

    __slots__ = ("_purged_before", "_reader")

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._purged_before = 0

    async def take(self, key_id: str, minute: int, limit: int) -> bool:
        if limit <= 0:
            return False
        if minute - _KEEP_MINUTES > self._purged_before:
            self._purged_before = minute - _KEEP_MINUTES
            await self._reader.fetch(_PURGE_SQL, self._purged_before)
        return await self._reader.fetchval(_TAKE_SQL, key_id, minute, limit) is not None
