"""The PostgreSQL backend (the ``postgres`` extra: asyncpg). Nothing outside this package
imports from here except ``_store``, and only when a PostgreSQL URL is configured."""

from ._backend import PostgresBackend

__all__ = ["PostgresBackend"]
