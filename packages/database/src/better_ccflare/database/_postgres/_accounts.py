"""The ``accounts`` table on PostgreSQL.

As on SQLite, credentials are sealed on the way in and opened on the way out, and because the
ciphertext is randomized the refresh-token compare-and-swap cannot be a ``WHERE refresh_token =
$1``: it locks the row (``SELECT ... FOR UPDATE``), decrypts, compares and updates in one
transaction, so of two instances refreshing the same account at once only the first wins.
"""

from __future__ import annotations

from better_ccflare.core import (
    Account,
    BillingType,
    ConflictError,
    Credentials,
    ModelMappings,
    NotFoundError,
    PauseReason,
    RateLimitState,
)
from better_ccflare.database._crypto import SecretKey
from better_ccflare.database._rows import (
    ACCOUNT_COLUMNS,
    ACCOUNT_ORDER,
    CLEAR_REJECTION,
    CREDENTIAL_COLUMNS,
    account_conflict,
    account_from_row,
    account_values,
    credential_values,
    insert_sql,
)
from better_ccflare.database._values import mappings_to_json, open_secret, same_secret

from ._connection import Connection, Reader, affected, unless_taken
from ._writer import Writer

__all__ = ["PostgresAccounts"]

_INSERT_SQL = insert_sql("accounts", ACCOUNT_COLUMNS, "numeric")
_SET_CREDENTIALS = ", ".join(
    f"{column} = ${number}" for number, column in enumerate(CREDENTIAL_COLUMNS, start=1)
)
_RECORD_USE_SQL = """
UPDATE accounts SET
  last_used = $1,
  request_count = COALESCE(request_count, 0) + 1,
  total_requests = COALESCE(total_requests, 0) + 1,
  session_request_count = CASE
    WHEN session_start IS NULL OR $1 - session_start >= $2 THEN 1
    ELSE COALESCE(session_request_count, 0) + 1 END,
  session_start = CASE
    WHEN session_start IS NULL OR $1 - session_start >= $2 THEN $1
    ELSE session_start END
WHERE id = $3
"""
_RATE_LIMIT_READING_SQL = (
    "UPDATE accounts SET rate_limit_status = $1, rate_limit_reset = $2, "
    "rate_limit_remaining = $3 WHERE id = $4"
)


class PostgresAccounts:
    """:class:`~better_ccflare.database.AccountRepository` on PostgreSQL."""

    __slots__ = ("_key", "_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer, key: SecretKey) -> None:
        self._reader = reader
        self._writer = writer
        self._key = key

    async def add(self, account: Account) -> None:
        values = account_values(account, self._key)

        insert = unless_taken(_INSERT_SQL, *values)
        if await self._writer.submit(insert, label=f"accounts.add({account.id})") is None:
            raise account_conflict(f"Cannot add account {account.name!r} ({account.provider})")

    async def get(self, account_id: str) -> Account | None:
        accounts = await self._select("WHERE id = $1", account_id)
        return accounts[0] if accounts else None

    async def get_by_name(self, name: str) -> Account | None:
        accounts = await self._select(f"WHERE name = $1 {ACCOUNT_ORDER}", name)
        if len(accounts) > 1:
            providers = ", ".join(account.provider for account in accounts)
            raise ConflictError(
                f"{len(accounts)} accounts are named {name!r} (providers: {providers}); "
                "refer to the account by its id instead."
            )
        return accounts[0] if accounts else None

    async def list_all(self) -> list[Account]:
        return await self._select(ACCOUNT_ORDER)

    async def delete(self, account_id: str) -> None:
        async def delete(connection: Connection) -> int:
            return affected(
                await connection.execute("DELETE FROM accounts WHERE id = $1", account_id)
            )

        if not await self._writer.submit(delete, label=f"accounts.delete({account_id})"):
            raise NotFoundError("account", account_id)

    async def rename(self, account_id: str, name: str) -> None:
        await self._update(account_id, {"name": name}, what=f"Cannot rename to {name!r}")

    async def set_priority(self, account_id: str, priority: int) -> None:
        await self._update(account_id, {"priority": priority})

    async def pause(self, account_id: str, reason: PauseReason) -> None:
        await self._update(account_id, {"paused": True, "pause_reason": str(reason)})

    async def resume(self, account_id: str) -> None:
        await self._update(account_id, {"paused": False, "pause_reason": None})

    async def set_flags(
        self,
        account_id: str,
        *,
        auto_fallback: bool | None = None,
        auto_refresh: bool | None = None,
        auto_pause_on_overage: bool | None = None,
        peak_hours_pause: bool | None = None,
    ) -> None:
        flags = {
            "auto_fallback_enabled": auto_fallback,
            "auto_refresh_enabled": auto_refresh,
            "auto_pause_on_overage_enabled": auto_pause_on_overage,
            "peak_hours_pause_enabled": peak_hours_pause,
        }
        chosen: dict[str, object] = {
            column: value for column, value in flags.items() if value is not None
        }
        if chosen:
            await self._update(account_id, chosen)

    async def set_custom_endpoint(self, account_id: str, endpoint: str | None) -> None:
        await self._update(
            account_id, {"custom_endpoint": endpoint}, what="Cannot change the endpoint"
        )

    async def set_model_mappings(self, account_id: str, mappings: ModelMappings) -> None:
        await self._update(account_id, {"model_mappings": mappings_to_json(mappings)})

    async def set_billing_type(self, account_id: str, billing_type: BillingType | None) -> None:
        await self._update(
            account_id, {"billing_type": None if billing_type is None else str(billing_type)}
        )

    async def update_rate_limit(self, account_id: str, state: RateLimitState) -> None:
        await self._update(
            account_id,
            {
                "rate_limit_status": state.status,
                "rate_limit_reset": state.reset_at_ms,
                "rate_limit_remaining": state.remaining,
                "rate_limited_until": state.limited_until_ms,
                "rate_limited_reason": None if state.reason is None else str(state.reason),
                "rate_limited_at": state.limited_at_ms,
                "consecutive_rate_limits": state.consecutive,
                "consecutive_failures": state.failures,
            },
        )

    def record_rate_limit_reading_nowait(self, account_id: str, state: RateLimitState) -> None:
        self._writer.enqueue_statement(
            _RATE_LIMIT_READING_SQL,
            (state.status, state.reset_at_ms, state.remaining, account_id),
            label=f"accounts.record_rate_limit_reading({account_id})",
        )

    async def record_use(self, account_id: str, now_ms: int, session_duration_ms: int) -> None:
        async def record(connection: Connection) -> int:
            return affected(
                await connection.execute(_RECORD_USE_SQL, now_ms, session_duration_ms, account_id)
            )

        if not await self._writer.submit(record, label=f"accounts.record_use({account_id})"):
            raise NotFoundError("account", account_id)

    def record_use_nowait(self, account_id: str, now_ms: int, session_duration_ms: int) -> None:
        self._writer.enqueue_statement(
            _RECORD_USE_SQL,
            (now_ms, session_duration_ms, account_id),
            label=f"accounts.record_use({account_id})",
        )

    async def reset_session(self, account_id: str, now_ms: int) -> None:
        await self._update(account_id, {"session_start": now_ms, "session_request_count": 0})

    async def set_credentials(self, account_id: str, credentials: Credentials) -> None:
        sealed = credential_values(credentials, self._key)
        await self._update(
            account_id,
            {**dict(zip(CREDENTIAL_COLUMNS, sealed, strict=True)), "requires_reauth": False},
            also=CLEAR_REJECTION,
        )

    async def update_credentials_if_refresh_token_matches(
        self, account_id: str, expected_refresh_token: str | None, credentials: Credentials
    ) -> bool:
        sealed = credential_values(credentials, self._key)

        async def swap(connection: Connection) -> bool:
            if not await self._refresh_token_matches(
                connection, account_id, expected_refresh_token
            ):
                return False
            await connection.execute(
                f"UPDATE accounts SET {_SET_CREDENTIALS} WHERE id = ${len(sealed) + 1}",  # noqa: S608 (fixed names)
                *sealed,
                account_id,
            )
            return True

        return await self._writer.submit(swap, label=f"accounts.swap_credentials({account_id})")

    async def mark_requires_reauth_if_refresh_token_matches(
        self, account_id: str, refresh_token: str | None
    ) -> bool:
        async def mark(connection: Connection) -> bool:
            if not await self._refresh_token_matches(connection, account_id, refresh_token):
                return False
            await connection.execute(
                "UPDATE accounts SET requires_reauth = TRUE WHERE id = $1", account_id
            )
            return True

        return await self._writer.submit(mark, label=f"accounts.mark_reauth({account_id})")

    async def clear_expired_rate_limits(self, now_ms: int) -> int:
        async def clear(connection: Connection) -> int:
            return affected(
                await connection.execute(
                    "UPDATE accounts SET rate_limited_until = NULL "
                    "WHERE rate_limited_until IS NOT NULL AND rate_limited_until <= $1",
                    now_ms,
                )
            )

        return await self._writer.submit(clear, label="accounts.clear_expired_rate_limits")

    async def _refresh_token_matches(
        self, connection: Connection, account_id: str, expected: str | None
    ) -> bool:
        """Inside the caller's transaction: lock the row, then compare its refresh token."""
        row = await connection.fetchrow(
            "SELECT refresh_token FROM accounts WHERE id = $1 FOR UPDATE", account_id
        )
        return row is not None and same_secret(open_secret(row[0], self._key), expected)

    async def _select(self, clause: str, *args: object) -> list[Account]:
        rows = await self._reader.fetch(f"SELECT * FROM accounts {clause}", *args)  # noqa: S608 (fixed clauses)
        return [account_from_row(row, self._key) for row in rows]

    async def _update(
        self,
        account_id: str,
        changes: dict[str, object],
        *,
        what: str = "Cannot update the account",
        also: str | None = None,
    ) -> None:
        """``UPDATE accounts SET`` the ``changes`` (and the assignments ``also`` holds, which
        bind nothing) on one account; map the outcomes to errors."""
        assignments = ", ".join(
            [
                *(f"{column} = ${number}" for number, column in enumerate(changes, start=1)),
                *([also] if also else []),
            ]
        )
        sql = f"UPDATE accounts SET {assignments} WHERE id = ${len(changes) + 1}"  # noqa: S608 (fixed names)

        update = unless_taken(sql, *changes.values(), account_id)
        status = await self._writer.submit(update, label=f"accounts.update({account_id})")
        if status is None:
            raise account_conflict(what)
        if affected(status) == 0:
            raise NotFoundError("account", account_id)
