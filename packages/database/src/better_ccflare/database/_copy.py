"""Moving up from SQLite: copy a SQLite database's rows into a PostgreSQL one, and prove it.

The source is opened as the server opens it (so a reference better-ccflare database is migrated
in place first, its credentials encrypted, and a wrong key is refused before anything is
copied); the target too (its tables are created, and credentials already there must decrypt
with the same key). Rows are copied table by table, in the order the source wrote them, and
credentials travel as stored: still encrypted, so every instance over the target needs the key
the source used.

Re-running is safe. A row whose key is already in the target is left as it is (an instance
over the target may have refreshed that account's tokens since: the stale copy must not win),
and only what is missing is added. After each table the copy checks that every source row's key
is present in the target; at the end, that every account it added reads back from the target
with the source's credentials (all of the target's credentials decrypt with the key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec

from better_ccflare.core import BetterCcflareError, redacted_url

from ._crypto import SecretKey
from ._errors import StoreOpenError
from ._store import Store, is_postgres_url

__all__ = ["CopyError", "CopyReport", "TableCopy", "copy_sqlite_to_postgres"]


class CopyError(BetterCcflareError):
    """The copy finished but its check failed: some rows or credentials are not in the
    target as they are in the source."""


class TableCopy(msgspec.Struct, frozen=True, kw_only=True):
    """What the copy did to one table."""

    table: str
    source_rows: int
    """Rows read from SQLite (payloads of deleted requests are not counted: see ``skipped``)."""
    added: int
    """Source rows that were not in the target before and now are."""
    already_there: int
    """Source rows whose key the target already had; left as they were."""
    skipped: int = 0
    """Payloads whose request row no longer exists in the source; not copied."""


class CopyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The whole copy, once verified."""

    tables: tuple[TableCopy, ...]
    accounts_verified: int
    """Accounts added by this copy whose credentials were read back from the target,
    decrypted, and found equal to the source's."""
    accounts_kept: int
    """Accounts the target already had (an earlier copy): their credentials, which may have
    been refreshed since, were kept and only checked to decrypt."""


async def copy_sqlite_to_postgres(
    source: Path,
    url: str,
    *,
    key: SecretKey,
    on_table: Callable[[TableCopy], None] | None = None,
) -> CopyReport:
    """Copy every row of the SQLite database ``source`` into the PostgreSQL database ``url``.

    Args:
        source: An existing SQLite file (ours, or the reference's: it is migrated first).
        url: A ``postgresql://`` URL of an existing database (its tables are created).
        key: The key the source's credentials are (or will be) encrypted under.
        on_table: Told each table's outcome as soon as it is copied.

    Raises:
        StoreOpenError: the file is missing or not SQLite, the URL is not PostgreSQL's, or
            the server cannot be reached.
        CredentialKeyError: the source's (or the target's) credentials need another key.
        CopyError: the check after the copy failed (the message says which rows).
    """
    if not is_postgres_url(url):
        raise StoreOpenError(
            f"The target {redacted_url(url)} is not a postgresql:// URL; give --to "
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE (or set DATABASE_URL)."
        )
    if not await asyncio.to_thread(source.is_file):
        raise StoreOpenError(
            f"No SQLite database at {source}: give the file to copy with --from (the server's "
            "is BETTER_CCFLARE_DB_PATH, by default ~/.config/better-ccflare/better-ccflare.db)."
        )
    async with await Store.open(source, key=key) as opened:
        accounts = await opened.accounts.list_all()
    async with await Store.open(url, key=key) as target:
        # Also checks the key against credentials already there.
        there_before = {account.id for account in await target.accounts.list_all()}
    try:
        from ._postgres._copy import copy_tables  # noqa: PLC0415 (the driver is an extra)
    except ImportError as exc:  # pragma: no cover - Store.open above needs the driver too
        raise StoreOpenError(f"The PostgreSQL driver is not installed ({exc}).") from exc
    tables = await copy_tables(source, url, on_table=on_table)
    verified = 0
    async with await Store.open(url, key=key) as target:
        for account in accounts:
            copied = await target.accounts.get(account.id)
            if copied is None:
                raise CopyError(f"Account {account.name!r} ({account.id}) is not in the target.")
            if account.id in there_before:
                continue  # the target's may be newer (a refresh since the last copy): kept
            if copied.credentials != account.credentials:
                raise CopyError(
                    f"The credentials of account {account.name!r} ({account.id}) read back "
                    "from the target differ from the source's."
                )
            verified += 1
    return CopyReport(
        tables=tables, accounts_verified=verified, accounts_kept=len(accounts) - verified
    )
