"""``/api/providers``: the account types this server can add, and what each needs.

Built from the server's provider registry, so an installed plugin appears here exactly when
the proxy can route to it; plugins that were found but not loaded are listed with the reason.
The dashboard draws its add-account form from this, and scripts can too.
"""

from __future__ import annotations

import msgspec
from litestar import get

from better_ccflare.core import OAuthMode
from better_ccflare.providers import AccountField
from better_ccflare.proxy.admin import account_types

from ._api_context import Ctx
from ._api_errors import ERROR_RESPONSES

__all__ = ["PROVIDER_HANDLERS"]


class AccountTypeResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One account type (:class:`~better_ccflare.proxy.admin.AccountType` in camelCase):
    ``POST /api/accounts/{type}`` adds one, unless ``loginOnly``."""

    type: str
    """The account type's one name: what accounts store as ``provider`` and what
    ``POST /api/accounts/{type}`` and ``POST /api/oauth/init``'s ``mode`` take."""
    aliases: tuple[str, ...]
    """Older names those inputs also take (``claude-oauth``, ``max``; ``console``)."""
    provider: str
    """The provider id stored as the account's ``provider``; for every built-in, ``type``."""
    display_name: str
    """The label people see for the type (the dashboard shows it for each account)."""
    builtin: bool
    distribution: str | None
    """The plugin's distribution name; ``null`` for a built-in."""
    version: str | None
    login: OAuthMode | None
    """The ``mode`` of ``POST /api/oauth/init`` that adds this type by browser login, if any."""
    login_only: bool
    """Added only by that login (no key to send)."""
    fields: tuple[AccountField, ...]
    """What ``POST /api/accounts/{type}`` takes, in the order to ask for it."""


class SkippedPlugin(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    entry_point: str
    distribution: str | None
    reason: str


class ProvidersResponse(msgspec.Struct, frozen=True, kw_only=True):
    providers: list[AccountTypeResponse]
    skipped: list[SkippedPlugin]
    """Plugins that were found but not loaded, and why (the server log says the same)."""


@get(
    "/api/providers",
    responses=ERROR_RESPONSES,
    summary="The account types this server can add (built-ins and plugins), with their fields",
)
async def list_providers(ctx: Ctx) -> ProvidersResponse:
    registry = ctx.registry
    types = [AccountTypeResponse(**msgspec.structs.asdict(t)) for t in account_types(registry)]
    skipped = [
        SkippedPlugin(entry_point=f.entry_point, distribution=f.distribution, reason=f.reason)
        for f in registry.failures
    ]
    return ProvidersResponse(providers=types, skipped=skipped)


PROVIDER_HANDLERS = [list_providers]
