"""The rows of a SQLite database copied into PostgreSQL, table by table, checked as they go.

Each table is read in ``rowid`` order (so the identity column that breaks ties here follows the
order SQLite wrote the rows in) in chunks; each chunk is one transaction that counts which of
its keys the target already has, inserts the rows with ``ON CONFLICT DO NOTHING`` (a row already
there is kept), and counts again: every key must be there afterwards. Values are converted to
the target column's type (SQLite's 0/1 flags to ``BOOLEAN``, and so on); the columns copied are
those both sides have, so a column only one side has takes its default or is left behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from better_ccflare.database._copy import CopyError, TableCopy
from better_ccflare.database._sqlite._connection import ConnectionThread, open_reader

from ._connection import Connection, open_pool

__all__ = ["copy_tables"]

CHUNK_ROWS = 1000

_KEYS: dict[str, tuple[str, ...]] = {
    "accounts": ("id",),
    "api_keys": ("id",),
    "oauth_sessions": ("id",),
    "agent_preferences": ("agent_id",),
    "strategies": ("name",),
    "requests": ("id",),
    "request_payloads": ("id",),
    "usage_snapshots": ("account_id", "timestamp", "window_key"),
    "session_pins": ("session_id",),
}
"""Each copied table with what identifies a row (in copy order: payloads after requests)."""

_ARRAY_TYPES = {"text": "text[]", "bigint": "bigint[]"}


async def copy_tables(
    source: Path, url: str, *, on_table: Callable[[TableCopy], None] | None
) -> tuple[TableCopy, ...]:
    """Copy every table of :data:`_KEYS` from ``source`` into ``url``; one result per table.

    Raises:
        CopyError: some source rows are not in the target after their chunk was copied (they
            clash with other rows there, on a name for example).
    """
    reader = ConnectionThread("better-ccflare-copy-reader", lambda: open_reader(source))
    pool = await open_pool(url, name=f"better-ccflare-copy-{uuid.uuid4().hex[:12]}")
    results: list[TableCopy] = []
    try:
        for table, keys in _KEYS.items():
            async with pool.acquire() as connection:
                result = await _copy_table(reader, connection, table, keys)
            results.append(result)
            if on_table is not None:
                on_table(result)
    finally:
        await pool.close()
        await reader.close()
    return tuple(results)


async def _copy_table(
    reader: ConnectionThread, connection: Connection, table: str, keys: tuple[str, ...]
) -> TableCopy:
    target_types: dict[str, str] = {
        row["column_name"]: row["data_type"]
        for row in await connection.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'NO' "
            "ORDER BY ordinal_position",
            table,
        )
    }
    source_columns = {
        str(row[1]) for row in await reader.run(partial(_fetch, f"PRAGMA table_info({table})", ()))
    }
    columns = [column for column in target_types if column in source_columns]
    if not columns:
        return TableCopy(table=table, source_rows=0, added=0, already_there=0)
    convert = [_converter(target_types[column]) for column in columns]
    selected = ", ".join(f"t.{column}" for column in columns)
    only_live = (
        " AND EXISTS (SELECT 1 FROM requests r WHERE r.id = t.id)"
        if table == "request_payloads"
        else ""
    )
    insert = _insert_sql(table, [(column, target_types[column]) for column in columns], keys)
    present = _present_sql(table, keys, [target_types[key] for key in keys])
    key_positions = [columns.index(key) for key in keys]

    read = added = there = 0
    last_rowid = -1
    while True:
        sql = (
            f"SELECT t.rowid, {selected} FROM {table} t "  # noqa: S608 (fixed names)
            f"WHERE t.rowid > ?{only_live} ORDER BY t.rowid LIMIT {CHUNK_ROWS}"
        )
        chunk = await reader.run(partial(_fetch, sql, (last_rowid,)))
        if not chunk:
            break
        last_rowid = chunk[-1][0]
        rows = [
            tuple(fn(value) for fn, value in zip(convert, row[1:], strict=True)) for row in chunk
        ]
        key_arrays = [[row[position] for row in rows] for position in key_positions]
        async with connection.transaction():
            before = await connection.fetchval(present, *key_arrays)
            await connection.executemany(insert, rows)
            now = await connection.fetchval(present, *key_arrays)
        if now != len(rows):
            raise CopyError(
                f"{len(rows) - now} of {len(rows)} rows of table {table} could not be copied: "
                "the target holds other rows with the same unique values (an account's name, "
                "provider and endpoint; an API key's name). Remove them from the target, or "
                "copy into an empty database."
            )
        read += len(rows)
        there += before
        added += now - before
    [(total,)] = await reader.run(partial(_fetch, f"SELECT count(*) FROM {table}", ()))  # noqa: S608
    return TableCopy(
        table=table, source_rows=read, added=added, already_there=there, skipped=total - read
    )


def _fetch(sql: str, parameters: tuple[object, ...], db: Database) -> list[tuple[Any, ...]]:
    """On the reader's thread: every row of ``sql`` as a plain tuple."""
    return [tuple(row) for row in db.conn.execute(sql, parameters).fetchall()]


def _insert_sql(table: str, columns: Sequence[tuple[str, str]], keys: tuple[str, ...]) -> str:
    """The insert of one row of ``columns`` (name, type), skipped when its key is there."""
    names = ", ".join(name for name, _ in columns)
    values = ", ".join(f"${number}::{kind}" for number, (_, kind) in enumerate(columns, start=1))
    if len(keys) == 1:
        return f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING"  # noqa: S608
    # No unique key (usage snapshots): a row equal on the identifying columns counts as there.
    position = {name: number for number, (name, _) in enumerate(columns, start=1)}
    same = " AND ".join(f"{key} = ${position[key]}" for key in keys)
    return (
        f"INSERT INTO {table} ({names}) SELECT {values} "  # noqa: S608 (fixed names)
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {same})"
    )


def _present_sql(table: str, keys: tuple[str, ...], types: Sequence[str]) -> str:
    """How many of the given keys (one array per key column) the table holds."""
    arrays = ", ".join(
        f"${number}::{_ARRAY_TYPES[kind]}" for number, kind in enumerate(types, start=1)
    )
    same = " AND ".join(f"t.{key} = k.{key}" for key in keys)
    return (
        f"SELECT count(*) FROM unnest({arrays}) AS k({', '.join(keys)}) "  # noqa: S608
        f"WHERE EXISTS (SELECT 1 FROM {table} t WHERE {same})"
    )


def _converter(data_type: str) -> Callable[[object], object]:
    """SQLite's loosely typed value as the target column's type wants it."""
    if data_type == "boolean":
        return lambda value: None if value is None else bool(value)
    if data_type == "bigint":
        return _to_int
    if data_type == "double precision":
        return lambda value: None if value is None else float(value)  # type: ignore[arg-type]
    return _to_text


def _to_int(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _to_text(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
