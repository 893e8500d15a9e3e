"""The ``accounts`` table: mapping to :class:`~better_ccflare.core.Account` and its repository.

Credentials are encrypted on their way in and decrypted on their way out, on the database
threads. Because AES-GCM is randomized, equal tokens do not have equal ciphertexts, so the
refresh-token compare-and-swap cannot be a ``WHERE refresh_token = ?``: it reads, decrypts,
compares and updates inside one ``BEGIN IMMEDIATE`` transaction on the writer thread.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database

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

from ._connection import Runner
from ._writer import Writer

__all__ = ["SqliteAccounts"]

_INSERT_SQL = insert_sql("accounts", ACCOUNT_COLUMNS, "qmark")
_SET_CREDENTIALS = ", ".join(f"{column} = ?" for column in CREDENTIAL_COLUMNS)
# ?1 now, ?2 session duration, ?3 account id (numbered: a tuple binds them, queued or not)
_RECORD_USE_SQL = """
UPDATE accounts SET
  last_used = ?1,
  request_count = COALESCE(request_count, 0) + 1,
  total_requests = COALESCE(total_requests, 0) + 1,
  session_request_count = CASE
    WHEN session_start IS NULL OR ?1 - session_start >= ?2 THEN 1
    ELSE COALESCE(session_request_count, 0) + 1 END,
  session_start = CASE
    WHEN session_start IS NULL OR ?1 - session_start >= ?2 THEN ?1
    ELSE session_start END
WHERE id = ?3
"""
_RATE_LIMIT_READING_SQL = (
    "UPDATE accounts SET rate_limit_status = ?, rate_limit_reset = ?, rate_limit_remaining = ? "
    "WHERE id = ?"
)


class SqliteAccounts:
    """:class:`~better_ccflare.database.AccountRepository` on SQLite."""

    __slots__ = ("_key", "_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer, key: SecretKey) -> None:
        self._reader = reader
        self._writer = writer
        self._key = key

    async def add(self, account: Account) -> None:
        def insert(db: Database) -> bool:
            try:
                db.conn.execute(_INSERT_SQL, account_values(account, self._key))
            except sqlite3.IntegrityError:
                return False
            return True

        if not await self._writer.submit(insert, label=f"accounts.add({account.id})"):
            raise account_conflict(f"Cannot add account {account.name!r} ({account.provider})")

    async def get(self, account_id: str) -> Account | None:
        accounts = await self._select("WHERE id = ?", (account_id,))
        return accounts[0] if accounts else None

    async def get_by_name(self, name: str) -> Account | None:
        accounts = await self._select(f"WHERE name = ? {ACCOUNT_ORDER}", (name,))
        if len(accounts) > 1:
            providers = ", ".join(account.provider for account in accounts)
            raise ConflictError(
                f"{len(accounts)} accounts are named {name!r} (providers: {providers}); "
                "refer to the account by its id instead."
            )
        return accounts[0] if accounts else None

    async def list_all(self) -> list[Account]:
        return await self._select(ACCOUNT_ORDER, ())

    async def delete(self, account_id: str) -> None:
        deleted = await self._writer.submit(
            lambda db: db.conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,)).rowcount,
            label=f"accounts.delete({account_id})",
        )
        if not deleted:
            raise NotFoundError("account", account_id)

    async def rename(self, account_id: str, name: str) -> None:
        await self._update(account_id, "name = ?", (name,), what=f"Cannot rename to {name!r}")

    async def set_priority(self, account_id: str, priority: int) -> None:
        await self._update(account_id, "priority = ?", (priority,))

    async def pause(self, account_id: str, reason: PauseReason) -> None:
        await self._update(account_id, "paused = 1, pause_reason = ?", (reason,))

    async def resume(self, account_id: str) -> None:
        await self._update(account_id, "paused = 0, pause_reason = NULL", ())

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
        chosen = {column: value for column, value in flags.items() if value is not None}
        if chosen:
            assignments = ", ".join(f"{column} = ?" for column in chosen)
            await self._update(account_id, assignments, tuple(chosen.values()))

    async def set_custom_endpoint(self, account_id: str, endpoint: str | None) -> None:
        await self._update(
            account_id, "custom_endpoint = ?", (endpoint,), what="Cannot change the endpoint"
        )

    async def set_model_mappings(self, account_id: str, mappings: ModelMappings) -> None:
        await self._update(account_id, "model_mappings = ?", (mappings_to_json(mappings),))

    async def set_billing_type(self, account_id: str, billing_type: BillingType | None) -> None:
        await self._update(account_id, "billing_type = ?", (billing_type,))

    async def update_rate_limit(self, account_id: str, state: RateLimitState) -> None:
        await self._update(
            account_id,
            "rate_limit_status = ?, rate_limit_reset = ?, rate_limit_remaining = ?, "
            "rate_limited_until = ?, rate_limited_reason = ?, rate_limited_at = ?, "
            "consecutive_rate_limits = ?, consecutive_failures = ?",
            (
                state.status,
                state.reset_at_ms,
                state.remaining,
                state.limited_until_ms,
                state.reason,
                state.limited_at_ms,
                state.consecutive,
                state.failures,
            ),
        )

    def record_rate_limit_reading_nowait(self, account_id: str, state: RateLimitState) -> None:
        self._writer.enqueue_statement(
            _RATE_LIMIT_READING_SQL,
            (state.status, state.reset_at_ms, state.remaining, account_id),
            label=f"accounts.record_rate_limit_reading({account_id})",
        )

    async def record_use(self, account_id: str, now_ms: int, session_duration_ms: int) -> None:
        params = (now_ms, session_duration_ms, account_id)
        changed = await self._writer.submit(
            lambda db: db.conn.execute(_RECORD_USE_SQL, params).rowcount,
            label=f"accounts.record_use({account_id})",
        )
        if not changed:
            raise NotFoundError("account", account_id)

    def record_use_nowait(self, account_id: str, now_ms: int, session_duration_ms: int) -> None:
        self._writer.enqueue_statement(
            _RECORD_USE_SQL,
            (now_ms, session_duration_ms, account_id),
            label=f"accounts.record_use({account_id})",
        )

    async def reset_session(self, account_id: str, now_ms: int) -> None:
        await self._update(account_id, "session_start = ?, session_request_count = 0", (now_ms,))

    async def set_credentials(self, account_id: str, credentials: Credentials) -> None:
        await self._update(
            account_id,
            f"{_SET_CREDENTIALS}, requires_reauth = 0, {CLEAR_REJECTION}",
            credential_values(credentials, self._key),
        )

    async def update_credentials_if_refresh_token_matches(
        self, account_id: str, expected_refresh_token: str | None, credentials: Credentials
    ) -> bool:
        def swap(db: Database) -> bool:
            if not self._refresh_token_matches(db, account_id, expected_refresh_token):
                return False
            db.conn.execute(
                f"UPDATE accounts SET {_SET_CREDENTIALS} WHERE id = ?",  # noqa: S608 (fixed names)
                (*credential_values(credentials, self._key), account_id),
            )
            return True

        return await self._writer.submit(swap, label=f"accounts.swap_credentials({account_id})")

    async def mark_requires_reauth_if_refresh_token_matches(
        self, account_id: str, refresh_token: str | None
    ) -> bool:
        def mark(db: Database) -> bool:
            if not self._refresh_token_matches(db, account_id, refresh_token):
                return False
            db.conn.execute("UPDATE accounts SET requires_reauth = 1 WHERE id = ?", (account_id,))
            return True

        return await self._writer.submit(mark, label=f"accounts.mark_reauth({account_id})")

    async def clear_expired_rate_limits(self, now_ms: int) -> int:
        return await self._writer.submit(
            lambda db: (
                db.conn.execute(
                    "UPDATE accounts SET rate_limited_until = NULL "
                    "WHERE rate_limited_until IS NOT NULL AND rate_limited_until <= ?",
                    (now_ms,),
                ).rowcount
            ),
            label="accounts.clear_expired_rate_limits",
        )

    def _refresh_token_matches(self, db: Database, account_id: str, expected: str | None) -> bool:
        row = db.conn.execute(
            "SELECT refresh_token FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        return row is not None and same_secret(open_secret(row[0], self._key), expected)

    async def _select(self, clause: str, params: tuple[object, ...]) -> list[Account]:
        def select(db: Database) -> list[Account]:
            rows = db.conn.execute(f"SELECT * FROM accounts {clause}", params).fetchall()  # noqa: S608 (fixed clauses)
            return [account_from_row(row, self._key) for row in rows]

        return await self._reader.run(select)

    async def _update(
        self,
        account_id: str,
        assignments: str,
        params: tuple[object, ...],
        *,
        what: str = "Cannot update the account",
    ) -> None:
        """Run ``UPDATE accounts SET <assignments>`` on one account; map the outcomes to errors."""

        def update(db: Database) -> int | None:
            try:
                return db.conn.execute(
                    f"UPDATE accounts SET {assignments} WHERE id = ?",  # noqa: S608 (fixed clauses)
                    (*params, account_id),
                ).rowcount
            except sqlite3.IntegrityError:
                return None

        changed = await self._writer.submit(update, label=f"accounts.update({account_id})")
        if changed is None:
            raise account_conflict(what)
        if changed == 0:
            raise NotFoundError("account", account_id)
