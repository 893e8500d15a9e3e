"""Versioned migrations: sqlite-utils' built-in ``Migrations``, as plain ordered functions.

The reference implementation keeps no version table; it re-checks columns at every start. So
the first migration must work both on an empty file and on any reference database: it creates
what is missing and adds missing columns, and never drops or rewrites anything (tables we do not
use, such as ``combos`` or ``alerts``, are left exactly as they are). The applied migrations are
recorded in ``_sqlite_migrations`` under the set name ``better_ccflare``.

Migrations 2 and 3 encrypt the reference's plaintext credentials and then rebuild the file, so
no plaintext copy survives in freed pages. Migration 4 adds the indexes the analytics queries use
(``IF NOT EXISTS``: a reference database may already have one of the same name). Migration 5
adds the hourly and daily rollups of request history and fills them from the rows already there
(see ``_rollups``); the reference ignores those tables, and its writes keep them exact through
the triggers. Migration 6 adds the rollups' count of requests whose cost is unknown. Migration 7
adds ``consecutive_failures``, the circuit breaker's streak, to ``accounts`` (a column the
reference does not have and ignores). Migration 8 adds ``session_pins``, the session-affinity
pins the server keeps across restarts. Migration 9 adds ``limits`` to ``api_keys``: a key's rate
limits, budgets, model allow-list and expiry as JSON (ignored by the reference). Migration 10
adds ``writer_progress``, how far each writer got with its latest batch of records, so that a
batch sent again after the writer process died is not counted twice.
"""

from __future__ import annotations

import logging
import sqlite3

from sqlite_utils import Database, Migrations

from better_ccflare.database._crypto import SecretKey, is_encrypted
from better_ccflare.database._errors import SchemaError
from better_ccflare.database._maintenance import SchemaStatus

from ._rollups import create_rollups
from ._schema import (
    ACCOUNTS,
    ANALYTICS_INDEXES,
    API_KEYS,
    INDEXES,
    REQUEST_ROLLUPS,
    TABLES,
    UNIQUE_ACCOUNT_INDEX,
    Table,
)
from ._writer_process import WRITER_PROGRESS_SQL

__all__ = ["apply_migrations", "schema_status", "verify_key"]

_MIGRATION_SET = "better_ccflare"
_ACCOUNT_SECRET_COLUMNS = ("api_key", "access_token", "refresh_token")
"""The ``accounts`` columns stored encrypted."""

_log = logging.getLogger("better_ccflare.database")


def _migrations(key: SecretKey) -> Migrations:
    migrations = Migrations(_MIGRATION_SET)

    @migrations(name="0001_reference_schema")
    def reference_schema(db: Database) -> None:
        _ensure_reference_schema(db)

    @migrations(name="0002_encrypt_credentials")
    def encrypt_credentials(db: Database) -> None:
        encrypted = _encrypt_plaintext_secrets(db, key)
        if encrypted:
            _log.info("Encrypted %d stored credentials that were kept in plaintext.", encrypted)

    @migrations(name="0003_purge_plaintext_remnants", transactional=False)
    def purge_plaintext_remnants(db: Database) -> None:
        # Freed pages can still hold the old plaintext; VACUUM rewrites the file without them.
        # A brand-new file has nothing to rewrite, so only an adopted one is announced.
        if db.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM accounts) OR EXISTS (SELECT 1 FROM requests)"
        ).fetchone()[0]:
            _log.info("Rewriting the database file once (VACUUM); large files take a while.")
        db.vacuum()

    @migrations(name="0004_analytics_indexes")
    def analytics_indexes(db: Database) -> None:
        if db.conn.execute("SELECT EXISTS (SELECT 1 FROM requests)").fetchone()[0]:
            _log.info("Indexing the request history for analytics; large histories take a while.")
        for index in ANALYTICS_INDEXES:
            db.conn.execute(index.create_sql())

    @migrations(name="0005_request_rollups")
    def request_rollups(db: Database) -> None:
        create_rollups(db)

    @migrations(name="0006_unpriced_request_counts")
    def unpriced_request_counts(db: Database) -> None:
        # Rollups made before this had no request without a cost, so 0 is right for them.
        _add_missing_columns(db, REQUEST_ROLLUPS)

    @migrations(name="0007_account_failure_streak")
    def account_failure_streak(db: Database) -> None:
        _add_missing_columns(db, ACCOUNTS)

    @migrations(name="0008_session_pins")
    def session_pins(db: Database) -> None:
        db.conn.execute(
            "CREATE TABLE IF NOT EXISTS session_pins (session_id TEXT PRIMARY KEY, "
            "account_id TEXT NOT NULL, expires_at INTEGER NOT NULL)"
        )
        db.conn.execute(
            "CREATE INDEX IF NOT EXISTS idx_session_pins_expires_at ON session_pins (expires_at)"
        )

    @migrations(name="0009_api_key_limits")
    def api_key_limits(db: Database) -> None:
        _add_missing_columns(db, API_KEYS)

    @migrations(name="0010_writer_progress")
    def writer_progress(db: Database) -> None:
        db.conn.execute(WRITER_PROGRESS_SQL)

    return migrations


def apply_migrations(db: Database, key: SecretKey) -> None:
    """Bring the database to the current schema (on the writer thread, before any other write)."""
    _migrations(key).apply(db)


def schema_status(db: Database, key: SecretKey) -> SchemaStatus:
    migrations = _migrations(key)
    return SchemaStatus(
        applied=tuple(migration.name for migration in migrations.applied(db)),
        pending=tuple(migration.name for migration in migrations.pending(db)),
        backend=f"SQLite {sqlite3.sqlite_version}",
    )


def verify_key(db: Database, key: SecretKey) -> None:
    """Check, before anything is written, that ``key`` decrypts the credentials already stored.

    Raises:
        CredentialKeyError: they were encrypted under another key.
    """
    if "accounts" not in db.table_names():
        return
    present = db.table("accounts").columns_dict
    columns = [column for column in _ACCOUNT_SECRET_COLUMNS if column in present]
    if not columns:
        return
    for row in db.conn.execute(f"SELECT {', '.join(columns)} FROM accounts"):  # noqa: S608 (fixed names)
        for value in row:
            if isinstance(value, str):
                key.decrypt(value)


def _ensure_reference_schema(db: Database) -> None:
    """Create missing tables, add missing columns, create missing indexes; never drop anything."""
    existing = set(db.table_names())
    for table in TABLES:
        if table.name in existing:
            _add_missing_columns(db, table)
        else:
            db.conn.execute(table.create_sql())
    for index in INDEXES:
        db.conn.execute(index.create_sql())
    duplicates = db.conn.execute(
        "SELECT name FROM accounts GROUP BY name, provider, COALESCE(custom_endpoint, '') "
        "HAVING COUNT(*) > 1"
    ).fetchall()
    if duplicates:
        _log.warning(
            "Accounts %s exist more than once for the same provider and endpoint, so duplicate "
            "names are not prevented; rename or remove the extra copies.",
            ", ".join(repr(row[0]) for row in duplicates),
        )
    else:
        db.conn.execute(UNIQUE_ACCOUNT_INDEX.create_sql())


def _add_missing_columns(db: Database, table: Table) -> None:
    present = {name.lower() for name in db.table(table.name).columns_dict}
    for name, declaration in table.columns:
        if name in present:
            continue
        if (
            "PRIMARY KEY" in declaration
            or "UNIQUE" in declaration
            or ("NOT NULL" in declaration and "DEFAULT" not in declaration)
        ):
            raise SchemaError(
                f"The {table.name} table has no {name} column, and SQLite cannot add one to "
                "existing rows. This file does not look like a better-ccflare database; point "
                "BETTER_CCFLARE_DB_PATH at another file."
            )
        db.conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {name} {declaration}")


def _encrypt_plaintext_secrets(db: Database, key: SecretKey) -> int:
    """Encrypt every credential and PKCE verifier still in plaintext; returns how many."""
    count = 0
    targets = (("accounts", "id", _ACCOUNT_SECRET_COLUMNS), ("oauth_sessions", "id", ("verifier",)))
    for table, pk, columns in targets:
        rows = db.conn.execute(f"SELECT {pk}, {', '.join(columns)} FROM {table}").fetchall()  # noqa: S608 (fixed names)
        for row in rows:
            updates = {
                column: key.encrypt(row[column])
                for column in columns
                if isinstance(row[column], str) and not is_encrypted(row[column])
            }
            if updates:
                assignments = ", ".join(f"{column} = ?" for column in updates)
                db.conn.execute(
                    f"UPDATE {table} SET {assignments} WHERE {pk} = ?",  # noqa: S608 (fixed names)
                    (*updates.values(), row[pk]),
                )
                count += len(updates)
    return count
