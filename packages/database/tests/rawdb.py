"""Direct access to a database file, bypassing the store, to check what is really stored.

These helpers block; async tests call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlite_utils import Database


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    db = Database(path)
    try:
        cursor = db.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        db.close()


def execute(path: Path, script: str) -> None:
    db = Database(path)
    try:
        db.conn.executescript(script)
    finally:
        db.close()


def dump(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every user table's rows, in rowid order, or primary key order for a table without rowids
    (the migrations bookkeeping table excluded)."""
    tables = query(path, "SELECT name, sql FROM sqlite_master WHERE type = 'table'")
    return {
        table["name"]: query(
            path,
            f"SELECT * FROM {table['name']}"
            + ("" if table["sql"].endswith("WITHOUT ROWID") else " ORDER BY rowid"),
        )
        for table in tables
        if not table["name"].startswith(("_", "sqlite_"))
    }


def columns(path: Path, table: str) -> list[str]:
    return [row["name"] for row in query(path, f"PRAGMA table_info({table})")]


def index_names(path: Path) -> set[str]:
    return {row["name"] for row in query(path, "SELECT name FROM sqlite_master WHERE type='index'")}


def file_bytes(path: Path) -> bytes:
    """The database file plus its WAL, if one is left."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
