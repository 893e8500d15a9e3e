"""Retention: delete old history in bounded batches, each its own short transaction.

Every batch is a separate operation on the writer queue, so request records queued meanwhile
are written between batches instead of waiting for the whole clean-up.
"""

from __future__ import annotations

from better_ccflare.database._maintenance import RetentionResult

from ._writer import Writer

__all__ = ["delete_in_batches", "run_retention_batches"]

_DAY_MS = 86_400_000

_OLD_PAYLOADS = (
    "DELETE FROM request_payloads WHERE rowid IN "
    "(SELECT rowid FROM request_payloads WHERE timestamp < ? LIMIT ?)"
)
# Deleting a request cascades to its payload (foreign key ON DELETE CASCADE).
_OLD_REQUESTS = (
    "DELETE FROM requests WHERE rowid IN (SELECT rowid FROM requests WHERE timestamp < ? LIMIT ?)"
)
_ORPHAN_PAYLOADS = (
    "DELETE FROM request_payloads WHERE rowid IN (SELECT rowid FROM request_payloads AS p "
    "WHERE NOT EXISTS (SELECT 1 FROM requests AS r WHERE r.id = p.id) LIMIT ?)"
)
_EXPIRED_SESSIONS = (
    "DELETE FROM oauth_sessions WHERE rowid IN "
    "(SELECT rowid FROM oauth_sessions WHERE expires_at <= ? LIMIT ?)"
)
_OLD_USAGE = (
    "DELETE FROM usage_snapshots WHERE rowid IN "
    "(SELECT rowid FROM usage_snapshots WHERE timestamp < ? LIMIT ?)"
)


async def delete_in_batches(
    writer: Writer, sql: str, params: tuple[object, ...], batch_size: int
) -> tuple[int, int]:
    """Run ``sql`` (whose last parameter is the batch size) until a batch comes back short.

    Returns:
        (rows deleted, batches run).
    """
    deleted = batches = 0
    while True:
        count: int = await writer.submit(
            lambda db: db.conn.execute(sql, (*params, batch_size)).rowcount, label="retention"
        )
        deleted += count
        batches += 1
        if count < batch_size:
            return deleted, batches


async def run_retention_batches(
    writer: Writer, payload_days: int, request_days: int, *, now_ms: int, batch_size: int
) -> RetentionResult:
    """Delete payloads older than ``payload_days``; requests, and usage snapshots, older than
    ``request_days``; orphaned payloads; and OAuth sessions expired at ``now_ms``."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    payload_cutoff = now_ms - payload_days * _DAY_MS
    request_cutoff = now_ms - request_days * _DAY_MS
    payloads, b1 = await delete_in_batches(writer, _OLD_PAYLOADS, (payload_cutoff,), batch_size)
    requests, b2 = await delete_in_batches(writer, _OLD_REQUESTS, (request_cutoff,), batch_size)
    orphans, b3 = await delete_in_batches(writer, _ORPHAN_PAYLOADS, (), batch_size)
    sessions, b4 = await delete_in_batches(writer, _EXPIRED_SESSIONS, (now_ms,), batch_size)
    usage, b5 = await delete_in_batches(writer, _OLD_USAGE, (request_cutoff,), batch_size)
    return RetentionResult(
        payloads_deleted=payloads,
        requests_deleted=requests,
        orphan_payloads_deleted=orphans,
        oauth_sessions_deleted=sessions,
        usage_snapshots_deleted=usage,
        batches=b1 + b2 + b3 + b4 + b5,
    )
