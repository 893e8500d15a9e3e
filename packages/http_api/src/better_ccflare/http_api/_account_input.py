"""What the API accepts for an account, and adding one under the shared account rules.

The account routes and the dashboard's login routes take the same fields and add accounts the
same way: through :func:`better_ccflare.proxy.admin.add_account` with the server's provider
registry, with its errors renamed to the body's camelCase field names and the pool reloaded so
the proxy routes by the new account.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Annotated

import msgspec

from better_ccflare.core import Account, InvalidInputError
from better_ccflare.proxy.admin import NewAccount, add_account

from ._api_context import ManagementContext

__all__ = [
    "AccountName",
    "Endpoint",
    "FieldName",
    "MappingsInput",
    "ModelName",
    "NonBlank",
    "Priority",
    "Secret",
    "add_checked",
    "api_field_names",
]

# What the schema promises about inputs, so clients (and schemathesis) know what is accepted.
# add_account() checks the same rules again, with messages naming the field.
AccountName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=r"^[\w .-]*[\w.-][\w .-]*$",
        description="Letters, digits, spaces, '-', '_' and '.'",
    ),
]
Priority = Annotated[int, msgspec.Meta(ge=0, le=100, description="0 is preferred")]
NonBlank = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
"""Text with something in it: an id, a code, a confirmation."""
Secret = NonBlank
Endpoint = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$",
        description="Base URL of the upstream",
    ),
]
FieldName = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="A declared field's name")
]
ModelName = NonBlank
MappingsInput = dict[ModelName, Annotated[list[ModelName], msgspec.Meta(min_length=1)]]
"""Model or family to the models to use instead, first choice first."""

_API_FIELDS = {
    "api_key": "apiKey",
    "endpoint": "customEndpoint",
    "model_mappings": "modelMappings",
    "vertex_project_id": "projectId",
    "vertex_region": "region",
    "mode": "type",
    "auto_fallback": "autoFallbackEnabled",
    "auto_refresh": "autoRefreshEnabled",
    "auto_pause_on_overage": "autoPauseOnOverageEnabled",
    "peak_hours_pause": "peakHoursPauseEnabled",
    "billing_type": "billingType",
}
"""add_account() and edit_account() name fields as Python does; the API's bodies use camelCase."""


@contextlib.contextmanager
def api_field_names() -> Generator[None]:
    """Re-raise the shared account rules' :class:`InvalidInputError` under the body's name."""
    try:
        yield
    except InvalidInputError as exc:
        raise InvalidInputError(_API_FIELDS.get(exc.field, exc.field), exc.message) from exc


async def add_checked(ctx: ManagementContext, new: NewAccount) -> Account:
    """:func:`add_account`, with errors naming the body's fields and the pool reloaded."""
    with api_field_names():
        added = await add_account(ctx.store, new, now_ms=ctx.clock.now_ms(), registry=ctx.registry)
    await ctx.pool.reload()
    return added
