"""Changing an account's settings, the same way from the CLI and from the management API.

``better-ccflare account edit`` and the API's account routes (``PATCH /api/accounts/{id}`` and
the one-setting ``POST /api/accounts/{id}/<setting>`` routes the dashboard uses) build an
:class:`AccountEdit` and call :func:`edit_account`: every value is checked against the account's
type first, and only then is anything written, so a refused edit changes nothing.

Bad input raises :class:`~better_ccflare.core.InvalidInputError` whose ``field`` is the
:class:`AccountEdit` attribute at fault; each front end maps it to the name its users typed
(``--endpoint``, ``customEndpoint``).
"""

from __future__ import annotations

import msgspec

from better_ccflare.core import (
    Account,
    BillingType,
    ConflictError,
    InvalidInputError,
    ModelMappings,
    NotFoundError,
)
from better_ccflare.database import Store
from better_ccflare.providers import (
    CUSTOM_ENDPOINT_FIELD,
    Provider,
    ProviderRegistry,
    UnknownProviderError,
    default_registry,
)

from ._account_setup import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    checked_mappings,
    checked_url,
    validate_account_name,
)

__all__ = ["AccountEdit", "edit_account"]

_ENDPOINT = CUSTOM_ENDPOINT_FIELD.name


class AccountEdit(msgspec.Struct, frozen=True, kw_only=True):
    """The settings to change; a field left unset keeps its value.

    ``endpoint`` and ``billing_type`` can also be cleared: ``None`` there means "back to the
    default" (the provider's address; the billing type read from the upstream's headers).
    """

    name: str | None = None
    priority: int | None = None
    endpoint: str | msgspec.UnsetType | None = msgspec.UNSET
    """A base URL, or ``None`` (or an empty string) for the provider's default."""
    model_mappings: ModelMappings | None = None
    """Replaces every mapping; ``{}`` removes them all."""
    auto_fallback: bool | None = None
    auto_refresh: bool | None = None
    auto_pause_on_overage: bool | None = None
    peak_hours_pause: bool | None = None
    billing_type: BillingType | msgspec.UnsetType | None = msgspec.UNSET
    """How the account's requests are billed when the upstream does not say; ``None`` to let
    the headers (else the provider) decide."""

    def is_empty(self) -> bool:
        """Whether the edit changes nothing at all."""
        return self == AccountEdit()


async def edit_account(
    store: Store, account_id: str, edit: AccountEdit, *, registry: ProviderRegistry | None = None
) -> Account:
    """Check ``edit`` against the account and its type, apply it, and return the account as now.

    Args:
        store: Where the account lives; a running server adopts the change within seconds.
        account_id: The account's id.
        edit: What to change.
        registry: Where the account's provider is looked up (for which fields its type takes);
            the process's default registry when ``None``.

    Raises:
        NotFoundError: No account has this id.
        InvalidInputError: A value is malformed or does not apply to the account's type;
            nothing was changed.
        ConflictError: The new name is taken by an account of the same provider and endpoint.
    """
    found = await store.accounts.get(account_id)
    if found is None:
        raise NotFoundError("account", account_id)
    name = validate_account_name(edit.name) if edit.name is not None else None
    if edit.priority is not None and not MIN_PRIORITY <= edit.priority <= MAX_PRIORITY:
        raise InvalidInputError(
            "priority",
            f"is {edit.priority}; use a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}",
        )
    mappings = checked_mappings(edit.model_mappings) if edit.model_mappings is not None else None
    endpoint: str | msgspec.UnsetType | None = msgspec.UNSET
    if not isinstance(edit.endpoint, msgspec.UnsetType):
        endpoint = _stored_endpoint(found, _provider(found, registry), edit.endpoint)

    accounts = store.accounts
    # The rename goes first: it is the one write the store can refuse (a taken name), so a
    # refused edit still changes nothing.
    if name is not None and name != found.name:
        try:
            await accounts.rename(account_id, name)
        except ConflictError as exc:
            raise ConflictError(
                f"Account name {name!r} is already taken; choose another name."
            ) from exc
    if edit.priority is not None:
        await accounts.set_priority(account_id, edit.priority)
    if not isinstance(endpoint, msgspec.UnsetType):
        await accounts.set_custom_endpoint(account_id, endpoint)
    if mappings is not None:
        await accounts.set_model_mappings(account_id, mappings)
    flags = (edit.auto_fallback, edit.auto_refresh, edit.auto_pause_on_overage)
    if any(flag is not None for flag in (*flags, edit.peak_hours_pause)):
        await accounts.set_flags(
            account_id,
            auto_fallback=edit.auto_fallback,
            auto_refresh=edit.auto_refresh,
            auto_pause_on_overage=edit.auto_pause_on_overage,
            peak_hours_pause=edit.peak_hours_pause,
        )
    if not isinstance(edit.billing_type, msgspec.UnsetType):
        await accounts.set_billing_type(account_id, edit.billing_type)
    changed = await accounts.get(account_id)
    if changed is None:  # deleted by someone else in the meantime
        raise NotFoundError("account", account_id)
    return changed


def _provider(account: Account, registry: ProviderRegistry | None) -> Provider:
    try:
        return (registry or default_registry()).get(account.provider)
    except UnknownProviderError as exc:
        raise InvalidInputError(
            "endpoint", f"cannot be checked: {account.provider} is not installed"
        ) from exc


def _stored_endpoint(account: Account, provider: Provider, url: str | None) -> str | None:
    """What ``custom_endpoint`` stores once the endpoint is ``url`` (``None``: the default).

    Only types that declare an endpoint take one (a fixed-address provider, or Vertex AI whose
    column holds its project and region, would break). A type declaring other settings too
    stores them all as one JSON object; the endpoint is replaced inside it, the rest kept.
    """
    declared = {field.name: field for field in provider.account_fields}
    field = declared.get(_ENDPOINT)
    if field is None:
        raise InvalidInputError("endpoint", f"is not accepted for {provider.account_type} accounts")
    others = set(declared) - {"api_key", _ENDPOINT}
    settings = _settings(account.custom_endpoint) if others else {}
    settings.pop(_ENDPOINT, None)
    url = (url or "").strip() or None
    if url is not None:
        settings[_ENDPOINT] = checked_url("endpoint", url)
    elif field.required:
        raise InvalidInputError("endpoint", f"is required for {provider.account_type} accounts")
    try:
        return provider.custom_endpoint_for(settings)
    except InvalidInputError as exc:
        field = "endpoint" if exc.field == _ENDPOINT else exc.field
        raise InvalidInputError(field, exc.message) from exc


def _settings(stored: str | None) -> dict[str, str]:
    """The field values an account's ``custom_endpoint`` holds: a lone URL, or a JSON object."""
    if not stored:
        return {}
    try:
        decoded = msgspec.json.decode(stored, type=dict[str, str])
    except msgspec.DecodeError:
        return {_ENDPOINT: stored}
    return decoded
