"""Adding an account, the same way from the CLI and from the management API.

Both front ends collect a :class:`NewAccount` (flags and prompts, or a JSON body), hand it to
:func:`add_account`, and turn the errors into their own shape. What an account of each type
needs is declared by its provider (``Provider.account_fields``, built-in or plugin); every rule
applying those declarations lives here, once: which fields are accepted, which are required,
how URLs and choices are checked, when credentials come from a login, and how the values are
stored (the key in the encrypted credentials, the rest through
``Provider.custom_endpoint_for``).

Bad input raises :class:`~better_ccflare.core.InvalidInputError` whose ``field`` is the
:class:`NewAccount` attribute at fault (``name``, ``mode``, ``api_key``, ``endpoint``,
``priority``, ``model_mappings``, ``credentials``, ``vertex_project_id``, ``vertex_region``)
or, for a field given in :attr:`NewAccount.fields`, its declared name; each front end maps it to
the name its users typed (``--api-key``, ``apiKey``).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from urllib.parse import urlsplit

import msgspec

from better_ccflare.core import (
    Account,
    ConflictError,
    Credentials,
    InvalidInputError,
    ModelMappings,
    NotFoundError,
    OAuthMode,
    RateLimitState,
)
from better_ccflare.database import Store
from better_ccflare.providers import (
    AccountField,
    FieldKind,
    Provider,
    ProviderRegistry,
    UnknownAccountTypeError,
    default_registry,
    parse_model_mappings,
)

__all__ = [
    "AccountMode",
    "AccountType",
    "NewAccount",
    "account_types",
    "add_account",
    "check_new_account",
    "checked_mappings",
    "checked_url",
    "logs_in_only",
    "reset_rate_limit",
    "validate_account_name",
]

MAX_NAME_CHARS = 100
MIN_PRIORITY, MAX_PRIORITY = 0, 100
_NAME_PUNCTUATION = frozenset(" -_.")
_PENDING = "pending-login"


class AccountMode(StrEnum):
    """The built-in account types (``--mode``): each the provider id its accounts store.

    Plugins add their own: a plugin provider's type is its id. :class:`NewAccount` takes either,
    and the older names the registry knows as aliases (``claude-oauth``, ``console``).
    """

    CLAUDE_OAUTH = "anthropic"
    CONSOLE = "claude-console-api"
    ZAI = "zai"
    MINIMAX = "minimax"
    NANOGPT = "nanogpt"
    VERTEX_AI = "vertex-ai"
    OPENAI_COMPATIBLE = "openai-compatible"
    ANTHROPIC_COMPATIBLE = "anthropic-compatible"


class NewAccount(msgspec.Struct, frozen=True, kw_only=True):
    """What a person supplies to add an account; :func:`add_account` checks it against ``mode``."""

    name: str
    mode: str
    """The account type: an :class:`AccountMode` value, a plugin provider's id, or an alias."""
    priority: int = 0
    api_key: str | None = None
    """The ``api_key`` field: the upstream key (for ``vertex-ai``, optionally the path of a
    service-account key file)."""
    endpoint: str | None = None
    """The ``custom_endpoint`` field: base URL of the upstream, for the types that accept one."""
    model_mappings: ModelMappings | None = None
    credentials: Credentials | None = None
    """A login's exchanged tokens (types added by logging in, such as ``anthropic``)."""
    vertex_project_id: str | None = None
    """The ``project_id`` field (Vertex AI's, or a plugin's of that name)."""
    vertex_region: str | None = None
    """The ``region`` field (Vertex AI's, or a plugin's of that name)."""
    fields: dict[str, str] = msgspec.field(default_factory=dict[str, str])
    """Values of any other declared field, by its declared name."""

    def value(self, field: str) -> str | None:
        """The value given for the declared field ``field``, wherever it was given."""
        attribute = _ATTRIBUTES.get(field)
        return getattr(self, attribute) if attribute else self.fields.get(field)

    def with_value(self, field: str, value: str | None) -> NewAccount:
        """A copy with ``value`` for the declared field ``field``."""
        attribute = _ATTRIBUTES.get(field)
        if attribute:
            return msgspec.structs.replace(self, **{attribute: value})
        fields = {k: v for k, v in self.fields.items() if k != field}
        if value is not None:
            fields[field] = value
        return msgspec.structs.replace(self, fields=fields)


_ATTRIBUTES = {
    "api_key": "api_key",
    "custom_endpoint": "endpoint",
    "project_id": "vertex_project_id",
    "region": "vertex_region",
}
"""Declared field names that :class:`NewAccount` has an attribute for, and that attribute."""


class AccountType(msgspec.Struct, frozen=True, kw_only=True):
    """One kind of account people can add, as ``account types`` and ``/api/providers`` show it."""

    type: str
    """What ``--mode`` and ``POST /api/accounts/{type}`` take: the provider id."""
    aliases: tuple[str, ...]
    """Older names input also takes for it (``claude-oauth``, ``console``)."""
    provider: str
    """The provider id the account stores."""
    display_name: str
    builtin: bool
    distribution: str | None
    """The plugin's distribution; ``None`` for a built-in."""
    version: str | None
    login: OAuthMode | None
    """The browser login that adds this type, if any."""
    login_only: bool
    """Added only by that login (no key to give)."""
    fields: tuple[AccountField, ...]
    """What adding one takes, in the order to ask for it."""


def account_types(registry: ProviderRegistry) -> tuple[AccountType, ...]:
    """Every type ``registry`` can add: the built-ins, then the loaded plugins."""
    described: list[AccountType] = []
    for name in registry.account_types():
        provider = registry.for_account_type(name)
        origin = registry.origin(provider.id)
        described.append(
            AccountType(
                type=name,
                aliases=provider.type_aliases,
                provider=provider.id,
                display_name=provider.display_name,
                builtin=origin.builtin,
                distribution=origin.distribution,
                version=origin.version,
                login=provider.oauth_login,
                login_only=logs_in_only(provider),
                fields=provider.account_fields,
            )
        )
    return tuple(described)


def logs_in_only(provider: Provider) -> bool:
    """Whether accounts of ``provider`` are added only by a browser login (no key to type)."""
    return provider.oauth_login is not None and not any(
        field.name == "api_key" for field in provider.account_fields
    )


def validate_account_name(name: str) -> str:
    """The name without surrounding whitespace, once it is acceptable.

    A name is 1 to 100 letters, digits, spaces, ``-``, ``_`` and ``.``: enough for any label
    people use, and nothing that needs quoting in a shell, a URL or a log line.

    Raises:
        InvalidInputError: ``field`` is ``name``.
    """
    stripped = name.strip()
    if not stripped:
        raise InvalidInputError("name", "is empty; give the account a name")
    if len(stripped) > MAX_NAME_CHARS:
        raise InvalidInputError(
            "name", f"is {len(stripped)} characters long; use at most {MAX_NAME_CHARS}"
        )
    bad = sorted({ch for ch in stripped if not (ch.isalnum() or ch in _NAME_PUNCTUATION)})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise InvalidInputError(
            "name", f"contains {shown}; use letters, digits, spaces, '-', '_' and '.'"
        )
    return stripped


async def add_account(
    store: Store, new: NewAccount, *, now_ms: int, registry: ProviderRegistry | None = None
) -> Account:
    """Check ``new`` against what its type needs, store it, and return the stored account.

    Args:
        store: Where the account goes; a running server picks it up within seconds.
        new: What the person supplied.
        now_ms: The account's creation time.
        registry: Where account types are looked up; the process's default registry (the
            built-ins and the installed plugins) when ``None``.

    Raises:
        InvalidInputError: The type is unknown, or a field is missing, not accepted for the
            type, or malformed.
        ConflictError: Another account has the same name, provider and endpoint.
    """
    account = _build_account(new, registry, account_id=str(uuid.uuid4()), now_ms=now_ms)
    try:
        await store.accounts.add(account)
    except ConflictError as exc:
        raise ConflictError(
            f"Account name {account.name!r} is already taken; choose another name."
        ) from exc
    return account


def check_new_account(
    new: NewAccount, *, login_pending: bool = False, registry: ProviderRegistry | None = None
) -> None:
    """Raise what :func:`add_account` would for ``new``, without storing anything.

    For logins: check the name, priority, endpoint and mappings *before* sending the person to
    log in, rather than after. With ``login_pending``, the credentials a login will supply
    (tokens for ``anthropic``, a minted key for ``claude-console-api``) are taken as given.

    Raises:
        InvalidInputError: As :func:`add_account`. Name conflicts are only found when adding.
    """
    provider = _provider(new.mode, registry)
    if login_pending and provider.oauth_login is not None:
        if logs_in_only(provider):
            new = msgspec.structs.replace(new, credentials=Credentials(access_token=_PENDING))
        else:
            new = msgspec.structs.replace(new, api_key=_PENDING)
    _build_account(new, registry, account_id=_PENDING, now_ms=0)


def _provider(mode: str, registry: ProviderRegistry | None) -> Provider:
    try:
        return (registry or default_registry()).for_account_type(mode)
    except UnknownAccountTypeError as exc:
        raise InvalidInputError("mode", str(exc)) from exc


def _build_account(
    new: NewAccount, registry: ProviderRegistry | None, *, account_id: str, now_ms: int
) -> Account:
    """The :class:`~better_ccflare.core.Account` ``new`` describes, every field checked."""
    provider = _provider(new.mode, registry)
    name = validate_account_name(new.name)
    if not MIN_PRIORITY <= new.priority <= MAX_PRIORITY:
        raise InvalidInputError(
            "priority",
            f"is {new.priority}; use a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}",
        )
    settings = _checked_fields(new, provider)
    credentials = _checked_credentials(new, provider, settings.pop("api_key", None))
    try:
        endpoint = provider.custom_endpoint_for(settings)
    except InvalidInputError as exc:
        raise InvalidInputError(_ATTRIBUTES.get(exc.field, exc.field), exc.message) from exc
    return Account(
        id=account_id,
        name=name,
        provider=provider.id,
        created_at_ms=now_ms,
        credentials=credentials,
        priority=new.priority,
        custom_endpoint=endpoint,
        model_mappings=checked_mappings(new.model_mappings),
    )


async def reset_rate_limit(store: Store, account_id: str) -> None:
    """Forget the account's rate-limit state, ending any cooldown now.

    For an account benched by mistake (or whose window reset early): a running server adopts
    the cleared state on its next reload, within seconds.

    Raises:
        NotFoundError: No account has this id.
    """
    if await store.accounts.get(account_id) is None:
        raise NotFoundError("account", account_id)
    await store.accounts.update_rate_limit(account_id, RateLimitState())


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _given(new: NewAccount) -> dict[str, str]:
    """Every non-blank value in ``new`` by declared field name: attributes, then ``fields``."""
    given: dict[str, str] = {}
    for name, attribute in _ATTRIBUTES.items():
        value = _blank_to_none(getattr(new, attribute))
        if value is not None:
            given[name] = value
    for name, raw in new.fields.items():
        value = _blank_to_none(raw)
        if value is None:
            continue
        if name in given:
            raise InvalidInputError(_ATTRIBUTES.get(name, name), "is given twice; give it once")
        given[name] = value
    return given


def _checked_fields(new: NewAccount, provider: Provider) -> dict[str, str]:
    """The given values by field name, each declared by ``provider`` and checked by its kind."""
    kind = provider.account_type
    declared = {field.name: field for field in provider.account_fields}
    checked: dict[str, str] = {}
    for name, value in _given(new).items():
        field = declared.get(name)
        if field is None:
            raise InvalidInputError(
                _ATTRIBUTES.get(name, name), f"is not accepted for {kind} accounts"
            )
        checked[name] = _checked_value(field, value)
    for field in declared.values():
        if field.required and field.name not in checked:
            raise InvalidInputError(
                _ATTRIBUTES.get(field.name, field.name), f"is required for {kind} accounts"
            )
    return checked


def _checked_value(field: AccountField, value: str) -> str:
    where = _ATTRIBUTES.get(field.name, field.name)
    if field.kind is FieldKind.URL:
        return checked_url(where, value)
    if field.kind is FieldKind.CHOICE and value not in field.choices:
        raise InvalidInputError(where, f"{value!r} is not one of {', '.join(field.choices)}")
    return value


def checked_url(field: str, url: str) -> str:
    """``url`` without a trailing slash, once it is an absolute http(s) URL; else an
    :class:`InvalidInputError` for ``field``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # for example an unclosed "[" in the host
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(
            field, f"{url!r} is not an http(s) URL; give a base URL such as https://host"
        )
    return url.rstrip("/")


def _checked_credentials(new: NewAccount, provider: Provider, api_key: str | None) -> Credentials:
    if not logs_in_only(provider):
        if new.credentials is not None:
            kind = provider.account_type
            raise InvalidInputError("credentials", f"come from a login; {kind} uses a key")
        return Credentials(api_key=api_key)
    if new.credentials is None or not new.credentials.access_token:
        raise InvalidInputError(
            "credentials", f"are missing; {provider.account_type} accounts are added by logging in"
        )
    return new.credentials


def checked_mappings(mappings: ModelMappings | None) -> ModelMappings:
    """``mappings`` with keys trimmed and every target checked; ``model_mappings`` errors."""
    if not mappings:
        return {}
    try:
        return parse_model_mappings({key.strip(): list(models) for key, models in mappings.items()})
    except ValueError as exc:
        raise InvalidInputError("model_mappings", str(exc)) from exc
