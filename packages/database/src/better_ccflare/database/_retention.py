"""Retention: delete old history in bounded batches, each its own short transaction.

Every batch is a separate operation on the writer queue, so writes queued meanwhile (the proxy's
records) go in between batches instead of waiting for the whole clean-up. The order and the
cut-offs are the same for every backend; each backend supplies its five statements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from ._maintenance import RetentionResult

__all__ = ["DeleteBatch", "RetentionStatements", "run_retention_batches"]

_DAY_MS = 86_400_000

DeleteBatch = Callable[[str, tuple[object, ...]], Awaitable[int]]
"""Runs one batch's statement with its arguments (the batch size last) as its own transaction on
the writer queue; returns the rows deleted."""


class RetentionStatements(NamedTuple):
    """Each deletes at most its last argument's number of rows."""

    old_payloads: str
    """Payloads older than the first argument."""
    old_requests: str
    """Requests older than the first argument (their payloads go with them)."""
    orphan_payloads: str
    """Payloads whose request row no longer exists."""
    expired_sessions: str
    """OAuth sessions expired at the first argument."""
    old_usage: str
    """Usage snapshots older than the first argument."""


async def _in_batches(
    delete: DeleteBatch, sql: str, args: tuple[object, ...], batch_size: int
) -> tuple[int, int]:
    """Run ``sql`` until a batch comes back short; returns (rows deleted, batches run)."""
    deleted = batches = 0
    while True:
        count = await delete(sql, (*args, batch_size))
        deleted += count
        batches += 1
        if count < batch_size:
            return deleted, batches


async def run_retention_batches(
    delete: DeleteBatch,
    statements: RetentionStatements,
    payload_days: int,
    request_days: int,
    *,
    now_ms: int,
    batch_size: int,
) -> RetentionResult:
    """Delete payloads older than ``payload_days``; requests, and usage snapshots, older than
    ``request_days``; orphaned payloads; and OAuth sessions expired at ``now_ms``."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    payload_cutoff = now_ms - payload_days * _DAY_MS
    request_cutoff = now_ms - request_days * _DAY_MS
    payloads, b1 = await _in_batches(delete, statements.old_payloads, (payload_cutoff,), batch_size)
    requests, b2 = await _in_batches(delete, statements.old_requests, (request_cutoff,), batch_size)
    orphans, b3 = await _in_batches(delete, statements.orphan_payloads, (), batch_size)
    sessions, b4 = await _in_batches(delete, statements.expired_sessions, (now_ms,), batch_size)
    usage, b5 = await _in_batches(delete, statements.old_usage, (request_cutoff,), batch_size)
    return RetentionResult(
        payloads_deleted=payloads,
        requests_deleted=requests,
        orphan_payloads_deleted=orphans,
        oauth_sessions_deleted=sessions,
        usage_snapshots_deleted=usage,
        batches=b1 + b2 + b3 + b4 + b5,
    )
