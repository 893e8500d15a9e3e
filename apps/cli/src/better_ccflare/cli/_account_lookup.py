"""Finding an account by what people type: its id or its name.

Account commands and the ``requests --account`` filter accept either; a miss is a one-line
error that says where to look. Shared here so that no command module imports another.
"""

from __future__ import annotations

from better_ccflare.core import Account
from better_ccflare.database import Store

from ._errors import UserError

__all__ = ["find_account"]


async def find_account(store: Store, name_or_id: str) -> Account:
    """The account with this id or, failing that, this name; else a one-line error."""
    found = await store.accounts.get(name_or_id) or await store.accounts.get_by_name(name_or_id)
    if found is None:
        raise UserError(f"No account named {name_or_id!r}; see `better-ccflare account list`.")
    return found
