"""Versioned migrations, applied at start under an advisory lock so instances can start together.

Each migration is a plain async function of a connection, applied in order and recorded by name
in ``better_ccflare_migrations``; they are numbered apart from SQLite's (0001 creates what
SQLite's first five built, 0002 is SQLite's 0007), and a released one is never edited, so a
database created by an older version migrates forward. All pending ones run in one transaction
that first takes :data:`MIGRATION_LOCK` with ``pg_advisory_xact_lock``: when several instances
start at once, the first migrates and the others wait, then find nothing pending. PostgreSQL's
DDL is transactional, so a migration that fails leaves no trace, and the lock goes with the
transaction (or with the session, if the instance dies).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from asyncpg import Pool

from better_ccflare.database._crypto import SecretKey
from better_ccflare.database._maintenance import SchemaStatus

from ._connection import Connection
from ._schema import SCHEMA

__all__ = [
    "CHANGE_CHANNEL",
    "CHANGE_WATCHED",
    "MIGRATION_LOCK",
    "PIN_CHANNEL",
    "apply_migrations",
    "schema_status",
    "verify_key",
]

MIGRATION_LOCK = 0x62_63_63_66_6C_61_72_65  # "bccflare"
"""The advisory lock key migrations hold; other fleet-wide locks must use other keys."""

_log = logging.getLogger("better_ccflare.database")


async def _create_schema(connection: Connection) -> None:
    for statement in SCHEMA:
        await connection.execute(statement)


async def _add_failure_streak(connection: Connection) -> None:
    # SQLite's migration 0007: the circuit breaker's streak of consecutive failures.
    await connection.execute(
        "ALTER TABLE accounts "
        "ADD COLUMN IF NOT EXISTS consecutive_failures BIGINT NOT NULL DEFAULT 0"
    )


CHANGE_WATCHED: dict[str, tuple[str, ...]] = {
    "accounts": ("last_used", "request_count", "total_requests"),
    "api_keys": ("last_used", "usage_count"),
    "strategies": (),
    "agent_preferences": (),
}
"""The tables whose changes a running server must pick up, each with the columns every proxied
request updates (those alone do not count as a change)."""


async def _count_changes(connection: Connection) -> None:
    # A counter per writing connection's application name, bumped once per statement that
    # changes a watched table: another instance's (or the CLI's) changes show as a moving sum
    # of the counters that are not its own. A later migration that adds a column to a watched
    # table must recreate that table's trigger for the column to count.
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS better_ccflare_changes "
        '(writer TEXT COLLATE "C" PRIMARY KEY, version BIGINT NOT NULL)'
    )
    await connection.execute(
        "CREATE OR REPLACE FUNCTION better_ccflare_count_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO better_ccflare_changes (writer, version) "
        "VALUES (current_setting('application_name'), 1) "
        "ON CONFLICT (writer) DO UPDATE SET version = better_ccflare_changes.version + 1; "
        "RETURN NULL; END $$"
    )
    for table, per_request in CHANGE_WATCHED.items():
        columns = await connection.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        watched = ", ".join(
            f'"{row["column_name"]}"' for row in columns if row["column_name"] not in per_request
        )
        trigger = f"better_ccflare_{table}_changed"
        await connection.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        await connection.execute(
            f"CREATE TRIGGER {trigger} "
            f"AFTER INSERT OR DELETE OR UPDATE OF {watched} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION better_ccflare_count_change()"
        )


CHANGE_CHANNEL = "better_ccflare_changes"
"""The ``NOTIFY`` channel of migration ``0004_change_notices``; the payload is the writer's name."""

_PER_REQUEST: dict[str, tuple[str, ...]] = {
    "accounts": (
        "last_used",
        "request_count",
        "total_requests",
        "session_request_count",
        "session_start",
    ),
    "api_keys": ("last_used", "usage_count"),
    "strategies": (),
    "agent_preferences": (),
}
"""The columns every proxied request's statement names (``record_use``, ``touch``), which the
statement triggers of :func:`_watch_changes` leave out. Of these only the start of an account's
session matters to routing; a row trigger counts it when its value changes."""


async def _watch_changes(connection: Connection) -> None:
    """(Re)create the triggers that count and announce changes, for the columns the watched
    tables have now. A migration that adds a column to a watched table calls this after, or
    the new column's changes go unannounced."""
    for table, per_request in _PER_REQUEST.items():
        columns = await connection.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        watched = ", ".join(
            f'"{row["column_name"]}"' for row in columns if row["column_name"] not in per_request
        )
        for trigger in ("changed", "updated", "session_started"):
            await connection.execute(
                f"DROP TRIGGER IF EXISTS better_ccflare_{table}_{trigger} ON {table}"
            )
        await connection.execute(
            f"CREATE TRIGGER better_ccflare_{table}_changed "
            f"AFTER INSERT OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION better_ccflare_count_change()"
        )
        await connection.execute(
            f"CREATE TRIGGER better_ccflare_{table}_updated "
            f"AFTER UPDATE OF {watched} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION better_ccflare_count_change()"
        )
    await connection.execute(
        "CREATE TRIGGER better_ccflare_accounts_session_started "
        "AFTER UPDATE OF session_start ON accounts FOR EACH ROW "
        "WHEN (OLD.session_start IS DISTINCT FROM NEW.session_start) "
        "EXECUTE FUNCTION better_ccflare_count_change()"
    )


async def _notify_changes(connection: Connection) -> None:
    # The counters of 0003 stay (the slow fallback probe reads them); each change now also
    # NOTIFYs the channel, delivered at commit, so a running instance hears of it at once.
    # 0003's statement triggers fired for every request's use count (its statement names the
    # session's start), which would wake every other instance on every batch; now the session's
    # start counts per row and only when it moves (a row trigger comparing one column costs
    # about 10 µs a row; comparing whole rows cost 150).
    await connection.execute(
        "CREATE OR REPLACE FUNCTION better_ccflare_count_change() RETURNS trigger "  # noqa: S608 (a constant channel)
        "LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO better_ccflare_changes (writer, version) "
        "VALUES (current_setting('application_name'), 1) "
        "ON CONFLICT (writer) DO UPDATE SET version = better_ccflare_changes.version + 1; "
        f"PERFORM pg_notify('{CHANGE_CHANNEL}', current_setting('application_name')); "
        "RETURN NULL; END $$"
    )
    await _watch_changes(connection)


PIN_CHANNEL = "better_ccflare_pins"
"""The ``NOTIFY`` channel of migration ``0005_session_pins``: each pin stored, as JSON with the
writer's name (``writer``, ``session_id``, ``account_id``, ``expires_at``)."""


async def _session_pins(connection: Connection) -> None:
    # A pin is announced with its values, so other instances adopt it without a read; pins
    # are not among the change-counted tables, whose notices make instances reload accounts.
    await connection.execute(
        'CREATE TABLE IF NOT EXISTS session_pins (session_id TEXT COLLATE "C" PRIMARY KEY, '
        'account_id TEXT COLLATE "C" NOT NULL, expires_at BIGINT NOT NULL)'
    )
    await connection.execute(
        "CREATE INDEX IF NOT EXISTS idx_session_pins_expires_at ON session_pins (expires_at)"
    )
    await connection.execute(
        "CREATE OR REPLACE FUNCTION better_ccflare_announce_pin() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM pg_notify('{PIN_CHANNEL}', json_build_object("
        "'writer', current_setting('application_name'), 'session_id', NEW.session_id, "
        "'account_id', NEW.account_id, 'expires_at', NEW.expires_at)::text); "
        "RETURN NULL; END $$"
    )
    await connection.execute(
        "CREATE TRIGGER better_ccflare_session_pins_announced "
        "AFTER INSERT OR UPDATE ON session_pins "
        "FOR EACH ROW EXECUTE FUNCTION better_ccflare_announce_pin()"
    )


async def _add_api_key_limits(connection: Connection) -> None:
    # SQLite's migration 0009: a key's limits as JSON. A change of limits is a change other
    # instances must see, so 0004's triggers are recreated to watch the new column too (0003's
    # would announce every request's use count). The minute and in-flight counters let every
    # instance count a key's requests per minute and in flight in one place (_key_fleet, and
    # the fleet section of docs/keys.md). They are UNLOGGED: a statement that writes only to
    # them commits without waiting for the WAL to reach disk (a round trip, not a disk flush,
    # per request), and after a crash they start empty, which for counts of the last minutes
    # and of requests in flight is what they should be.
    await connection.execute("ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS limits TEXT")
    await _watch_changes(connection)
    await connection.execute(
        "CREATE UNLOGGED TABLE IF NOT EXISTS api_key_minutes ("
        'key_id TEXT COLLATE "C" NOT NULL, minute BIGINT NOT NULL, '
        "requests BIGINT NOT NULL, PRIMARY KEY (key_id, minute))"
    )
    await connection.execute(
        "CREATE UNLOGGED TABLE IF NOT EXISTS api_key_inflight ("
        'key_id TEXT COLLATE "C" NOT NULL, instance TEXT COLLATE "C" NOT NULL, '
        "requests BIGINT NOT NULL, seen_ms BIGINT NOT NULL, PRIMARY KEY (key_id, instance))"
    )


_MIGRATIONS: tuple[tuple[str, Callable[[Connection], Awaitable[None]]], ...] = (
    ("0001_schema", _create_schema),
    ("0002_account_failure_streak", _add_failure_streak),
    ("0003_change_counters", _count_changes),
    ("0004_change_notices", _notify_changes),
    ("0005_session_pins", _session_pins),
    ("0006_api_key_limits", _add_api_key_limits),
)


async def apply_migrations(pool: Pool, now_ms: int) -> None:
    """Bring the database to the current schema; safe when other instances do it at once."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS better_ccflare_migrations "
            '(name TEXT COLLATE "C" PRIMARY KEY, applied_at BIGINT NOT NULL)'
        )
        applied = await _applied(connection)
        for name, migrate in _MIGRATIONS:
            if name in applied:
                continue
            _log.info("Applying database migration %s.", name)
            await migrate(connection)
            await connection.execute(
                "INSERT INTO better_ccflare_migrations (name, applied_at) VALUES ($1, $2)",
                name,
                now_ms,
            )


async def schema_status(pool: Pool) -> SchemaStatus:
    async with pool.acquire() as connection:
        exists = await connection.fetchval("SELECT to_regclass('better_ccflare_migrations')")
        applied = await _applied(connection) if exists is not None else set[str]()
        version = await connection.fetchval("SHOW server_version")
    return SchemaStatus(
        applied=tuple(name for name, _ in _MIGRATIONS if name in applied),
        pending=tuple(name for name, _ in _MIGRATIONS if name not in applied),
        backend=f"PostgreSQL {version}",
    )


async def verify_key(pool: Pool, key: SecretKey) -> None:
    """Decrypt every stored credential with ``key``.

    Raises:
        CredentialKeyError: they were encrypted under another key.
    """
    rows = await pool.fetch("SELECT api_key, access_token, refresh_token FROM accounts")
    for row in rows:
        for value in row.values():
            if isinstance(value, str):
                key.decrypt(value)


async def _applied(connection: Connection) -> set[str]:
    return {
        row["name"] for row in await connection.fetch("SELECT name FROM better_ccflare_migrations")
    }
