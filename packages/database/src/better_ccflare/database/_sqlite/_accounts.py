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
    ProviderKind,
    RateLimitReason,
    RateLimitState,
    SessionState,
)
from better_ccflare.database._crypto import SecretKey

from ._connection import Runner
from ._values import (
    enum_or_none,
    mappings_from_json,
    mappings_to_json,
    open_secret,
    same_secret,
    seal_secret,
)
from ._writer import Writer

__all__ = ["SqliteAccounts"]

_INSERT_COLUMNS = (
    "id",
    "name",
    "provider",
    "api_key",
    "access_token",
    "refresh_token",
    "expires_at",
    "refresh_token_issued_at",
    "created_at",
    "last_used",
    "request_count",
    "total_requests",
    "priority",
    "paused",
    "pause_reason",
    "requires_reauth",
    "rate_limit_status",
    "rate_limit_reset",
    "rate_limit_remaining",
    "rate_limited_until",
    "rate_limited_reason",
    "rate_limited_at",
    "consecutive_rate_limits",
    "consecutive_failures",
    "session_start",
    "session_request_count",
    "auto_fallback_enabled",
    "auto_refresh_enabled",
    "auto_pause_on_overage_enabled",
    "peak_hours_pause_enabled",
    "custom_endpoint",
    "model_mappings",
    "billing_type",
)
_INSERT_SQL = (
    f"INSERT INTO accounts ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"
)
_SET_CREDENTIALS = (
    "api_key = ?, access_token = ?, refresh_token = ?, expires_at = ?, refresh_token_issued_at = ?"
)
# New credentials answer a rejection of the old ones: the bench ends and the streak starts over.
_CLEAR_REJECTION = (
    "rate_limited_until = CASE WHEN rate_limited_reason = 'credentials_rejected' "
    "THEN NULL ELSE rate_limited_until END, "
    "consecutive_failures = CASE WHEN rate_limited_reason = 'credentials_rejected' "
    "THEN 0 ELSE consecutive_failures END"
)
_RECORD_USE_SQL = """
UPDATE accounts SET
  last_used = :now,
  request_count = COALESCE(request_count, 0) + 1,
  total_requests = COALESCE(total_requests, 0) + 1,
  session_request_count = CASE
    WHEN session_start IS NULL OR :now - session_start >= :duration THEN 1
    ELSE COALESCE(session_request_count, 0) + 1 END,
  session_start = CASE
    WHEN session_start IS NULL OR :now - session_start >= :duration THEN :now
    ELSE session_start END
WHERE id = :id
"""
_RATE_LIMIT_READING_SQL = (
    "UPDATE accounts SET rate_limit_status = ?, rate_limit_reset = ?, rate_limit_remaining = ? "
    "WHERE id = ?"
)
# Lowest priority number first, then oldest: the order the strategies and the dashboard expect.
_ORDER = "ORDER BY priority, created_at, id"


def _account_values(account: Account, key: SecretKey) -> tuple[object, ...]:
    credentials = account.credentials
    rate_limit = account.rate_limit
    return (
        account.id,
        account.name,
        account.provider,
        seal_secret(credentials.api_key, key),
        seal_secret(credentials.access_token, key),
        seal_secret(credentials.refresh_token, key),
        credentials.expires_at_ms,
        credentials.refresh_token_issued_at_ms,
        account.created_at_ms,
        account.last_used_ms,
        account.request_count,
        account.total_requests,
        account.priority,
        account.paused,
        account.pause_reason,
        account.requires_reauth,
        rate_limit.status,
        rate_limit.reset_at_ms,
        rate_limit.remaining,
        rate_limit.limited_until_ms,
        rate_limit.reason,
        rate_limit.limited_at_ms,
        rate_limit.consecutive,
        rate_limit.failures,
        account.session.started_at_ms,
        account.session.request_count,
        account.auto_fallback_enabled,
        account.auto_refresh_enabled,
        account.auto_pause_on_overage_enabled,
        account.peak_hours_pause_enabled,
        account.custom_endpoint,
        mappings_to_json(account.model_mappings),
        account.billing_type,
    )


def _credential_values(credentials: Credentials, key: SecretKey) -> tuple[object, ...]:
    return (
        seal_secret(credentials.api_key, key),
        seal_secret(credentials.access_token, key),
        seal_secret(credentials.refresh_token, key),
        credentials.expires_at_ms,
        credentials.refresh_token_issued_at_ms,
    )


def account_from_row(row: sqlite3.Row, key: SecretKey) -> Account:
    """Build an :class:`Account` from a row, tolerating NULLs and unknown values."""
    return Account(
        id=row["id"],
        name=row["name"],
        provider=ProviderKind.CLAUDE_OAUTH.value if row["provider"] is None else row["provider"],
        created_at_ms=row["created_at"],
        credentials=Credentials(
            api_key=open_secret(row["api_key"], key),
            access_token=open_secret(row["access_token"], key),
            refresh_token=open_secret(row["refresh_token"], key),
            expires_at_ms=row["expires_at"],
            refresh_token_issued_at_ms=row["refresh_token_issued_at"],
        ),
        priority=row["priority"] or 0,
        paused=bool(row["paused"]),
        pause_reason=enum_or_none(PauseReason, row["pause_reason"]),
        requires_reauth=bool(row["requires_reauth"]),
        rate_limit=RateLimitState(
            status=row["rate_limit_status"],
            reset_at_ms=row["rate_limit_reset"],
            remaining=row["rate_limit_remaining"],
            limited_until_ms=row["rate_limited_until"],
            reason=enum_or_none(RateLimitReason, row["rate_limited_reason"]),
            limited_at_ms=row["rate_limited_at"],
            consecutive=row["consecutive_rate_limits"] or 0,
            failures=row["consecutive_failures"] or 0,
        ),
        session=SessionState(
            started_at_ms=row["session_start"],
            request_count=row["session_request_count"] or 0,
        ),
        last_used_ms=row["last_used"],
        request_count=row["request_count"] or 0,
        total_requests=row["total_requests"] or 0,
        auto_fallback_enabled=bool(row["auto_fallback_enabled"]),
        auto_refresh_enabled=bool(row["auto_refresh_enabled"]),
        auto_pause_on_overage_enabled=bool(row["auto_pause_on_overage_enabled"]),
        peak_hours_pause_enabled=bool(row["peak_hours_pause_enabled"]),
        custom_endpoint=row["custom_endpoint"],
        model_mappings=mappings_from_json(row["model_mappings"]),
        billing_type=enum_or_none(BillingType, row["billing_type"]),
    )


def _conflict(what: str) -> ConflictError:
    return ConflictError(
        f"{what}: another account already has this id, or this name for the same provider and "
        "custom endpoint. Choose another name."
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
                db.conn.execute(_INSERT_SQL, _account_values(account, self._key))
            except sqlite3.IntegrityError:
                return False
            return True

        if not await self._writer.submit(insert, label=f"accounts.add({account.id})"):
            raise _conflict(f"Cannot add account {account.name!r} ({account.provider})")

    async def get(self, account_id: str) -> Account | None:
        accounts = await self._select("WHERE id = ?", (account_id,))
        return accounts[0] if accounts else None

    async def get_by_name(self, name: str) -> Account | None:
        accounts = await self._select(f"WHERE name = ? {_ORDER}", (name,))
        if len(accounts) > 1:
            providers = ", ".join(account.provider for account in accounts)
            raise ConflictError(
                f"{len(accounts)} accounts are named {name!r} (providers: {providers}); "
                "refer to the account by its id instead."
            )
        return accounts[0] if accounts else None

    async def list_all(self) -> list[Account]:
        return await self._select(_ORDER, ())

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
        params = (state.status, state.reset_at_ms, state.remaining, account_id)
        self._writer.enqueue(
            lambda db: db.conn.execute(_RATE_LIMIT_READING_SQL, params),
            label=f"accounts.record_rate_limit_reading({account_id})",
        )

    async def record_use(self, account_id: str, now_ms: int, session_duration_ms: int) -> None:
        params = {"now": now_ms, "duration": session_duration_ms, "id": account_id}
        changed = await self._writer.submit(
            lambda db: db.conn.execute(_RECORD_USE_SQL, params).rowcount,
            label=f"accounts.record_use({account_id})",
        )
        if not changed:
            raise NotFoundError("account", account_id)

    def record_use_nowait(self, account_id: str, now_ms: int, session_duration_ms: int) -> None:
        params = {"now": now_ms, "duration": session_duration_ms, "id": account_id}
        self._writer.enqueue(
            lambda db: db.conn.execute(_RECORD_USE_SQL, params),
            label=f"accounts.record_use({account_id})",
        )

    async def reset_session(self, account_id: str, now_ms: int) -> None:
        await self._update(account_id, "session_start = ?, session_request_count = 0", (now_ms,))

    async def set_credentials(self, account_id: str, credentials: Credentials) -> None:
        await self._update(
            account_id,
            f"{_SET_CREDENTIALS}, requires_reauth = 0, {_CLEAR_REJECTION}",
            _credential_values(credentials, self._key),
        )

    async def update_credentials_if_refresh_token_matches(
        self, account_id: str, expected_refresh_token: str | None, credentials: Credentials
    ) -> bool:
        def swap(db: Database) -> bool:
            if not self._refresh_token_matches(db, account_id, expected_refresh_token):
                return False
            db.conn.execute(
                f"UPDATE accounts SET {_SET_CREDENTIALS} WHERE id = ?",  # noqa: S608 (fixed names)
                (*_credential_values(credentials, self._key), account_id),
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
            raise _conflict(what)
        if changed == 0:
            raise NotFoundError("account", account_id)
