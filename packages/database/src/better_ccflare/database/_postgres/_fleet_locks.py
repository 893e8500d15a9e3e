"""The fleet's locks on PostgreSQL: advisory locks, which the server drops with the session.

* A token refresh holds ``pg_advisory_xact_lock(REFRESH_LOCKS, hash(account id))`` in a
  transaction on a connection of a small pool of its own (not the store's, whose connections
  the refresh's own reads and compare-and-swap write need meanwhile). The transaction ends
  with the block, or with the connection if the instance dies, and the lock goes with it. The
  wait is bounded by ``lock_timeout``.
* The scheduled jobs' leader holds the session lock ``(JOB_LEADER, 0)`` on a dedicated
  connection. Every instance keeps one such connection and asks, every few seconds, "do I
  hold it? if not, try to take it" in one statement. When the leader dies its connection
  closes, the server releases the lock, and the next follower to ask takes it.

Both kinds of connection ask the server for TCP keepalives of a few seconds (while a lock is
held), so that an instance whose machine vanishes (no FIN, no RST) loses its locks within half
a minute instead of the operating system's two hours. The advisory-lock keys use the
two-``int4`` form, a key space apart from the migrations' ``bigint``
:data:`~._migrations.MIGRATION_LOCK`.
"""

from __future__ import annotations

import hashlib
import logging
from types import TracebackType

import asyncpg
from asyncpg import Pool
from asyncpg.transaction import Transaction

from better_ccflare.database._coordination import REFRESH_LOCK_TIMEOUT_S, FleetLockError

from ._connection import Connection

__all__ = ["JOB_LEADER", "REFRESH_LOCKS", "PostgresJobLease", "PostgresLocks"]

REFRESH_LOCKS = 0x62_63_63_72  # "bccr"
"""First key of every account's refresh lock; the second is a hash of the account id."""
JOB_LEADER = 0x62_63_63_6A  # "bccj"
"""First key of the scheduled jobs' leadership lock (the second is 0)."""
LOCK_POOL_MAX = 4
"""Refreshes of different accounts an instance runs at once; more wait for a connection."""
_CHECK_TIMEOUT_S = 5.0
"""A leader whose database does not answer within this long steps down."""
_CONNECT_TIMEOUT_S = 10.0
_KEEPALIVES_SQL = (
    "SELECT set_config('tcp_keepalives_idle', '10', {local}), "
    "set_config('tcp_keepalives_interval', '5', {local}), "
    "set_config('tcp_keepalives_count', '3', {local})"
)
"""Set after connecting rather than as startup parameters, which a connection pooler such as
PgBouncer would refuse."""
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection the server ended while a keepalive or query was under way is left in a state
    # asyncpg refuses to use ("another operation is in progress"): as gone as a closed one.
    asyncpg.InternalClientError,
)

_HOLD_SQL = """
SELECT CASE WHEN EXISTS (
  SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
    AND classid::bigint = $1::integer AND objid::bigint = 0 AND objsubid = 2 AND granted
) THEN true ELSE pg_try_advisory_lock($1::integer, 0) END
"""

_log = logging.getLogger("better_ccflare.database")


def refresh_lock_key(account_id: str) -> int:
    """The second key of ``account_id``'s refresh lock: 32 bits of a hash of the id (two
    accounts that collide merely refresh one after the other)."""
    digest = hashlib.blake2b(account_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresLocks:
    """:class:`~better_ccflare.database._coordination.Coordination` on PostgreSQL."""

    __slots__ = ("_leases", "_name", "_pool", "_url")

    def __init__(self, url: str, *, name: str) -> None:
        self._url = url
        self._name = name
        self._pool: Pool | None = None
        self._leases: list[PostgresJobLease] = []

    async def open(self) -> None:
        """Create the refresh locks' pool (it connects on first use)."""
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=0,
            max_size=LOCK_POOL_MAX,
            timeout=_CONNECT_TIMEOUT_S,
            server_settings={"application_name": f"{self._name}:locks"},
        )

    async def close(self) -> None:
        """Release every lease and close the pool (releasing any lock still held)."""
        for lease in self._leases:
            await lease.release()
        self._leases.clear()
        if self._pool is not None:
            await self._pool.close()

    def refresh_lock(
        self, account_id: str, *, timeout_s: float = REFRESH_LOCK_TIMEOUT_S
    ) -> _RefreshLock:
        assert self._pool is not None, "PostgresLocks.open() was not awaited"
        return _RefreshLock(self._pool, account_id, timeout_s)

    def job_lease(self) -> PostgresJobLease:
        lease = PostgresJobLease(self._url, name=self._name)
        self._leases.append(lease)
        return lease


class _RefreshLock:
    """One hold of an account's refresh lock (an async context manager)."""

    __slots__ = ("_account_id", "_connection", "_pool", "_timeout_s", "_transaction")

    def __init__(self, pool: Pool, account_id: str, timeout_s: float) -> None:
        self._pool = pool
        self._account_id = account_id
        self._timeout_s = timeout_s
        self._connection: Connection | None = None
        self._transaction: Transaction | None = None

    async def __aenter__(self) -> None:
        try:
            connection = await self._pool.acquire(timeout=self._timeout_s)
        except _UNREACHABLE as exc:
            raise self._error(exc) from exc
        try:
            transaction = connection.transaction()
            await transaction.start()
            await connection.execute(
                "SELECT set_config('lock_timeout', $1, true)", f"{round(self._timeout_s * 1000)}ms"
            )
            await connection.execute(_KEEPALIVES_SQL.format(local="true"))
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1::integer, $2::integer)",
                REFRESH_LOCKS,
                refresh_lock_key(self._account_id),
            )
        except BaseException as exc:
            await self._pool.release(connection)
            if isinstance(exc, _UNREACHABLE):
                raise self._error(exc) from exc
            raise
        self._connection, self._transaction = connection, transaction

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, transaction = self._connection, self._transaction
        self._connection = self._transaction = None
        if connection is None or transaction is None:
            return
        try:
            # Ending the transaction releases the lock. If the connection broke meanwhile, the
            # server ended the session and the lock with it: the block's outcome stands.
            await transaction.rollback()
        except _UNREACHABLE:
            _log.debug("The refresh lock's connection broke; the server released the lock")
        finally:
            await self._pool.release(connection)

    def _error(self, exc: BaseException) -> FleetLockError:
        if isinstance(exc, asyncpg.LockNotAvailableError | TimeoutError):
            problem = f"another instance has been refreshing it for over {self._timeout_s:g} s"
        else:
            problem = f"the database could not be reached ({type(exc).__name__})"
        return FleetLockError(
            f"Cannot take the refresh lock of account {self._account_id}: {problem}."
        )


class PostgresJobLease:
    """The scheduled jobs' leadership, asked for on a dedicated connection."""

    __slots__ = ("_connection", "_name", "_url")

    def __init__(self, url: str, *, name: str) -> None:
        self._url = url
        self._name = name
        self._connection: asyncpg.Connection | None = None

    async def hold(self) -> bool:
        try:
            if self._connection is None or self._connection.is_closed():
                connection = await asyncpg.connect(
                    self._url,
                    timeout=_CONNECT_TIMEOUT_S,
                    server_settings={"application_name": f"{self._name}:leader"},
                )
                self._connection = connection
                await connection.execute(
                    _KEEPALIVES_SQL.format(local="false"), timeout=_CHECK_TIMEOUT_S
                )
            return bool(
                await self._connection.fetchval(_HOLD_SQL, JOB_LEADER, timeout=_CHECK_TIMEOUT_S)
            )
        except _UNREACHABLE as exc:
            _log.debug("Cannot ask for the jobs' leadership: %s", type(exc).__name__)
            self._drop()
            return False

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=_CHECK_TIMEOUT_S)
            except _UNREACHABLE:
                connection.terminate()

    def _drop(self) -> None:
        """Forget a connection that failed: whatever it held, the server releases with it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()
