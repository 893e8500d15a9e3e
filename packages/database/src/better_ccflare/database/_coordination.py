"""What several instances sharing one database coordinate through it: one token refresh per
account at a time, and one leader for the scheduled jobs.

A backend that can be shared by several processes (PostgreSQL) implements these with locks the
database releases by itself when a holder's connection ends, so an instance that dies (even by
``kill -9``) leaves nothing stuck. A SQLite file has one server, so there the lock is the
process's own business (the token manager's single flight) and that server always leads:
:class:`SoleInstance` says so.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from better_ccflare.core import BetterCcflareError

__all__ = [
    "REFRESH_LOCK_TIMEOUT_S",
    "Coordination",
    "FleetLease",
    "FleetLockError",
    "SoleInstance",
    "SoleLease",
]

REFRESH_LOCK_TIMEOUT_S = 20.0
"""How long a refresh waits for another instance's refresh of the same account: longer than
one call to a token endpoint may take (15 s), so a waiter normally finds the new tokens."""


class FleetLockError(BetterCcflareError):
    """A fleet-wide lock could not be taken: another instance held it too long, or the database
    could not be reached to ask."""


class FleetLease(Protocol):
    """Leadership of the fleet's scheduled jobs, held by at most one instance at a time."""

    async def hold(self) -> bool:
        """Take the leadership if nobody holds it, or confirm that this instance still does.

        Returns:
            Whether this instance leads now. ``False`` also when the database cannot be
            reached: an instance that cannot confirm its leadership must not act on it.
        """
        ...

    async def release(self) -> None:
        """Give the leadership up (another instance can take it at once); safe to call twice."""
        ...


class Coordination(Protocol):
    """The fleet-wide locks a backend offers."""

    def refresh_lock(
        self, account_id: str, *, timeout_s: float = REFRESH_LOCK_TIMEOUT_S
    ) -> AbstractAsyncContextManager[None]:
        """Hold the account's refresh lock for the block: no other instance refreshes the
        account's tokens meanwhile. Whoever takes it must re-read the stored tokens first
        (the previous holder may have just rotated them) and store with compare-and-swap.

        Raises:
            FleetLockError: not taken within ``timeout_s``, or the database is unreachable.
        """
        ...

    def job_lease(self) -> FleetLease:
        """A new claim on the scheduled jobs' leadership (not yet held: call ``hold``)."""
        ...


class SoleLease:
    """The leadership of a database only one server uses: always held."""

    __slots__ = ()

    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class SoleInstance:
    """:class:`Coordination` for a database only one server uses (a SQLite file)."""

    __slots__ = ()

    def refresh_lock(
        self, account_id: str, *, timeout_s: float = REFRESH_LOCK_TIMEOUT_S
    ) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    def job_lease(self) -> FleetLease:
        return SoleLease()
