"""Retention's statements on PostgreSQL: each deletes a bounded batch, picked by primary key."""

from __future__ import annotations

from better_ccflare.database._maintenance import RetentionResult
from better_ccflare.database._retention import RetentionStatements, run_retention_batches

from ._connection import Connection, affected
from ._writer import Writer

__all__ = ["delete_old_history"]

_STATEMENTS = RetentionStatements(
    old_payloads=(
        "DELETE FROM request_payloads WHERE id IN "
        "(SELECT id FROM request_payloads WHERE timestamp < $1 LIMIT $2)"
    ),
    # Deleting a request cascades to its payload (foreign key ON DELETE CASCADE).
    old_requests=(
        "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE timestamp < $1 LIMIT $2)"
    ),
    orphan_payloads=(
        "DELETE FROM request_payloads WHERE id IN (SELECT id FROM request_payloads AS p "
        "WHERE NOT EXISTS (SELECT 1 FROM requests AS r WHERE r.id = p.id) LIMIT $1)"
    ),
    expired_sessions=(
        "DELETE FROM oauth_sessions WHERE id IN "
        "(SELECT id FROM oauth_sessions WHERE expires_at <= $1 LIMIT $2)"
    ),
    old_usage=(
        "DELETE FROM usage_snapshots WHERE seq IN "
        "(SELECT seq FROM usage_snapshots WHERE timestamp < $1 LIMIT $2)"
    ),
)


async def delete_old_history(
    writer: Writer, payload_days: int, request_days: int, *, now_ms: int, batch_size: int
) -> RetentionResult:
    async def delete(sql: str, args: tuple[object, ...]) -> int:
        async def run(connection: Connection) -> int:
            return affected(await connection.execute(sql, *args))

        return await writer.submit(run, label="retention")

    return await run_retention_batches(
        delete, _STATEMENTS, payload_days, request_days, now_ms=now_ms, batch_size=batch_size
    )
