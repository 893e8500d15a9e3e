"""Retention's statements on SQLite: each deletes a bounded batch, picked by ``rowid``."""

from __future__ import annotations

from better_ccflare.database._maintenance import RetentionResult
from better_ccflare.database._retention import RetentionStatements, run_retention_batches

from ._writer import Writer

__all__ = ["delete_old_history"]

_STATEMENTS = RetentionStatements(
    old_payloads=(
        "DELETE FROM request_payloads WHERE rowid IN "
        "(SELECT rowid FROM request_payloads WHERE timestamp < ? LIMIT ?)"
    ),
    # Deleting a request cascades to its payload (foreign key ON DELETE CASCADE).
    old_requests=(
        "DELETE FROM requests WHERE rowid IN "
        "(SELECT rowid FROM requests WHERE timestamp < ? LIMIT ?)"
    ),
    orphan_payloads=(
        "DELETE FROM request_payloads WHERE rowid IN (SELECT rowid FROM request_payloads AS p "
        "WHERE NOT EXISTS (SELECT 1 FROM requests AS r WHERE r.id = p.id) LIMIT ?)"
    ),
    expired_sessions=(
        "DELETE FROM oauth_sessions WHERE rowid IN "
        "(SELECT rowid FROM oauth_sessions WHERE expires_at <= ? LIMIT ?)"
    ),
    old_usage=(
        "DELETE FROM usage_snapshots WHERE rowid IN "
        "(SELECT rowid FROM usage_snapshots WHERE timestamp < ? LIMIT ?)"
    ),
)


async def delete_old_history(
    writer: Writer, payload_days: int, request_days: int, *, now_ms: int, batch_size: int
) -> RetentionResult:
    async def delete(sql: str, args: tuple[object, ...]) -> int:
        return await writer.submit(
            lambda db: db.conn.execute(sql, args).rowcount, label="retention"
        )

    return await run_retention_batches(
        delete, _STATEMENTS, payload_days, request_days, now_ms=now_ms, batch_size=batch_size
    )
