"""Finding accounts for a route: one by id from the store, and every name from the pool.

Routes about accounts, logins, requests and statistics all need these; they live here so that
each route module stays a leaf that imports no other route module.
"""

from __future__ import annotations

from better_ccflare.core import Account, NotFoundError

from ._api_context import ManagementContext

__all__ = ["account_names", "find_account"]


async def find_account(ctx: ManagementContext, account_id: str) -> Account:
    """The stored account (also one another process added a moment ago), or a 404."""
    found = await ctx.store.accounts.get(account_id)
    if found is None:
        raise NotFoundError("account", account_id)
    return found


def account_names(ctx: ManagementContext) -> dict[str, str]:
    """Account id to name, from the pool the proxy routes by (no database read)."""
    return {a.id: a.name for a in ctx.pool.accounts()}
