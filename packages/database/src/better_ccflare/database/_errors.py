"""Errors that only the store raises.

The shared ones (:class:`~better_ccflare.core.ConflictError`,
:class:`~better_ccflare.core.NotFoundError`, :class:`~better_ccflare.core.ConfigError`) come from
core; these cover what can go wrong with the database file and the credential key themselves.
"""

from __future__ import annotations

from better_ccflare.core import BetterCcflareError

__all__ = ["CredentialKeyError", "SchemaError", "StoreClosedError", "StoreOpenError"]


class CredentialKeyError(BetterCcflareError):
    """Stored credentials cannot be decrypted with the key in use.

    Raised instead of ever overwriting them: the data stays as it was until the right key is
    supplied.
    """


class SchemaError(BetterCcflareError):
    """The database file has a shape that cannot be migrated in place."""


class StoreClosedError(BetterCcflareError):
    """A read or write was attempted after :meth:`Store.close`."""

    def __init__(self) -> None:
        super().__init__("The store is closed; open a new one with Store.open().")


class StoreOpenError(BetterCcflareError):
    """The database file cannot be opened or read at all (permissions, disk, not SQLite)."""
