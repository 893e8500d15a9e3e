"""The SQLite backend. Nothing outside this package imports from here except ``_store``."""

from ._backend import SqliteBackend

__all__ = ["SqliteBackend"]
