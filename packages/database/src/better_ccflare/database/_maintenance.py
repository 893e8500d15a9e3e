"""Housekeeping the store offers besides its tables: retention, compaction, status, shutdown.

Like the repositories, :class:`StoreMaintenance` is a backend-neutral protocol; the results are
plain value types that a health endpoint or a ``doctor`` command can show as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol

import msgspec

from better_ccflare.core import SessionPin

__all__ = ["RetentionResult", "SchemaStatus", "StoreMaintenance", "StoreStats"]


class RetentionResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one retention run deleted."""

    # The descriptions are what the management API's schema shows for each count.
    payloads_deleted: Annotated[
        int,
        msgspec.Meta(description="Payloads older than the payload retention (requests stay)"),
    ] = 0
    requests_deleted: Annotated[
        int,
        msgspec.Meta(description="Requests older than the request retention, with their payloads"),
    ] = 0
    orphan_payloads_deleted: Annotated[
        int, msgspec.Meta(description="Payloads whose request no longer existed")
    ] = 0
    oauth_sessions_deleted: Annotated[int, msgspec.Meta(description="Expired pending logins")] = 0
    usage_snapshots_deleted: Annotated[
        int, msgspec.Meta(description="Usage readings older than the request retention")
    ] = 0
    batches: Annotated[
        int,
        msgspec.Meta(description="Short transactions used; live writes ran between them"),
    ] = 0


class SchemaStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Which migrations the database has and lacks."""

    applied: tuple[str, ...]
    pending: tuple[str, ...]
    backend: str
    """For example ``SQLite 3.45.1``."""

    @property
    def version(self) -> int:
        """The number of applied migrations."""
        return len(self.applied)


class StoreStats(msgspec.Struct, frozen=True, kw_only=True):
    """The writer's counters, read from memory (cheap enough for a health endpoint)."""

    queued_ops: int
    """Writes accepted but not yet committed."""
    queued_payload_bytes: int
    payloads_dropped: int
    """Payloads refused because the payload budget was full."""
    transactions: int
    """Transactions committed by the writer since the store opened."""
    ops_committed: int
    ops_failed: int
    batches: int = 0
    """Batches the writer ran (a batch is one transaction, or one op at a time after an error)."""
    write_seconds: float = 0.0
    """Time spent running those batches in the backend (SQLite: on the writer thread, waiting for
    it included; PostgreSQL: the batch's round trips and commit)."""


class StoreMaintenance(Protocol):
    """The store's lifecycle and housekeeping, implemented once per backend."""

    async def flush(self) -> None:
        """Return once every write queued before the call is committed (or has failed)."""
        ...

    async def close(self) -> None:
        """Flush every queued write, then release connections and threads."""
        ...

    def stats(self) -> StoreStats: ...

    async def schema_status(self) -> SchemaStatus: ...

    async def check_integrity(self) -> tuple[str, ...]:
        """The problems the backend finds in the stored data; empty when it is sound."""
        ...

    async def changed_elsewhere(self) -> bool:
        """Whether another connection (the CLI, another process) committed a change since the
        previous call (or since opening); the store's own writes do not count.

        Cheap enough to ask several times a second: the server reloads its accounts and keys
        only when this says so.
        """
        ...

    def listen(
        self,
        on_change: Callable[[bool], None],
        on_pin: Callable[[SessionPin], None] | None = None,
    ) -> bool:
        """Tell ``on_change`` of other writers' changes as they commit, until :meth:`close`.

        ``on_change(False)`` follows a change; ``on_change(True)`` follows each (re)connection
        of the listener, when changes may have been missed and everything must be reloaded.
        ``on_pin`` gets each session pin another writer stored. Returns ``False`` when the
        backend cannot push changes (SQLite), and then the caller asks
        :meth:`changed_elsewhere` instead.
        """
        ...

    async def compact(self) -> None:
        """Give free space back to the file system (checkpoint and vacuum for SQLite)."""
        ...

    async def run_retention(
        self, payload_days: int, request_days: int, *, now_ms: int, batch_size: int
    ) -> RetentionResult:
        """Delete old rows in batches of at most ``batch_size``; one run at a time."""
        ...
