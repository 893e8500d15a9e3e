"""``/api/providers``: the account types this server can add, and what each needs.

Built from the server's provider registry, so an installed plugin appears here exactly when
the proxy can route to it; plugins that were found but not loaded are listed with the reason.
The dashboard draws its add-account form from this, and scripts can too.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get

from better_ccflare.core import OAuthMode
from better_ccflare.providers import AccountField
from better_ccflare.proxy.admin import account_types

from ._api_context import Ctx
from ._api_errors import errors

__all__ = ["PROVIDER_HANDLERS"]


class AccountTypeResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One account type (:class:`~better_ccflare.proxy.admin.AccountType` in camelCase):
    ``POST /api/accounts/{type}`` adds one, unless ``loginOnly``."""

    type: Annotated[
        str,
        msgspec.Meta(
            description="The account type's one name: what accounts store as provider and what "
            "POST /api/accounts/{type} and POST /api/oauth/init's mode take"
        ),
    ]
    aliases: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="Older names those inputs also take (claude-oauth, max; console)"),
    ]
    provider: Annotated[
        str,
        msgspec.Meta(
            description="The provider id stored as the account's provider; for every built-in, "
            "the type"
        ),
    ]
    display_name: Annotated[
        str,
        msgspec.Meta(
            description="The label people see for the type (the dashboard shows it for each "
            "account)"
        ),
    ]
    builtin: Annotated[bool, msgspec.Meta(description="Shipped with better-ccflare")]
    distribution: Annotated[
        str | None, msgspec.Meta(description="The plugin's distribution name; null: a built-in")
    ]
    version: Annotated[str | None, msgspec.Meta(description="The plugin's version")]
    login: Annotated[
        OAuthMode | None,
        msgspec.Meta(
            description="The mode of POST /api/oauth/init that adds this type by browser "
            "login, if any"
        ),
    ]
    login_only: Annotated[
        bool, msgspec.Meta(description="Added only by that login (no key to send)")
    ]
    fields: Annotated[
        tuple[AccountField, ...],
        msgspec.Meta(
            description="What POST /api/accounts/{type} takes, in the order to ask for it"
        ),
    ]


class SkippedPlugin(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    entry_point: Annotated[str, msgspec.Meta(description="The entry point as installed")]
    distribution: Annotated[
        str | None, msgspec.Meta(description="The distribution that installed it")
    ]
    reason: Annotated[str, msgspec.Meta(description="Why it was not loaded")]


class ProvidersResponse(msgspec.Struct, frozen=True, kw_only=True):
    providers: Annotated[
        list[AccountTypeResponse], msgspec.Meta(description="Every account type that can be added")
    ]
    skipped: Annotated[
        list[SkippedPlugin],
        msgspec.Meta(description="Plugins found but not loaded, and why (as the log says)"),
    ]


@get(
    "/api/providers",
    tags=["accounts"],
    responses=errors(),
    summary="The account types this server can add (built-ins and plugins), with their fields",
)
async def list_providers(ctx: Ctx) -> ProvidersResponse:
    """Each account type with the fields ``POST /api/accounts/{type}`` takes; the dashboard
    draws its add-account form from this. Plugins that failed to load are listed apart."""
    registry = ctx.registry
    types = [AccountTypeResponse(**msgspec.structs.asdict(t)) for t in account_types(registry)]
    skipped = [
        SkippedPlugin(entry_point=f.entry_point, distribution=f.distribution, reason=f.reason)
        for f in registry.failures
    ]
    return ProvidersResponse(providers=types, skipped=skipped)


PROVIDER_HANDLERS = [list_providers]
