"""Adding an account, the same way from the CLI and from the management API.

Both front ends collect a :class:`NewAccount` (flags and prompts, or a JSON body), hand it to
:func:`add_account`, and turn the errors into their own shape. Every rule about what an account
of each mode needs lives here, once: which modes take an API key, which accept a custom
endpoint, how Vertex AI's project and region are stored (as the Vertex provider reads them).

Bad input raises :class:`~better_ccflare.core.InvalidInputError` whose ``field`` is the
:class:`NewAccount` attribute at fault (``name``, ``api_key``, ``endpoint``, ``priority``,
``model_mappings``, ``credentials``, ``vertex_project_id``, ``vertex_region``); each front end
maps it to the name its users typed (``--api-key``, ``apiKey``).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from better_ccflare.core import (
    Account,
    ConflictError,
    Credentials,
    InvalidInputError,
    ModelMappings,
    NotFoundError,
    ProviderKind,
    RateLimitState,
)
from better_ccflare.database import Store
from better_ccflare.providers import AccountConfigError, VertexAIProvider, parse_model_mappings

__all__ = [
    "AccountMode",
    "NewAccount",
    "add_account",
    "check_new_account",
    "reset_rate_limit",
    "validate_account_name",
    "validate_endpoint",
]

MAX_NAME_CHARS = 100
MIN_PRIORITY, MAX_PRIORITY = 0, 100
_NAME_PUNCTUATION = frozenset(" -_.")
_PENDING = "pending-login"


class AccountMode(StrEnum):
    """The kinds of account a person can add, as they name them (``--mode``)."""

    CLAUDE_OAUTH = "claude-oauth"
    CONSOLE = "console"
    ZAI = "zai"
    MINIMAX = "minimax"
    NANOGPT = "nanogpt"
    VERTEX_AI = "vertex-ai"
    OPENAI_COMPATIBLE = "openai-compatible"
    ANTHROPIC_COMPATIBLE = "anthropic-compatible"


class NewAccount(msgspec.Struct, frozen=True, kw_only=True):
    """What a person supplies to add an account; :func:`add_account` checks it against ``mode``."""

    name: str
    mode: AccountMode
    priority: int = 0
    api_key: str | None = None
    """The upstream key; for ``vertex-ai``, optionally the path of a service-account key file."""
    endpoint: str | None = None
    """Base URL of the upstream, for the modes that accept one."""
    model_mappings: ModelMappings | None = None
    credentials: Credentials | None = None
    """An OAuth login's exchanged tokens (``claude-oauth`` only)."""
    vertex_project_id: str | None = None
    vertex_region: str | None = None


_Need = Literal["required", "optional", "refused"]


class _ModeRules(msgspec.Struct, frozen=True):
    provider: ProviderKind
    api_key: _Need
    endpoint: _Need
    """``refused`` for providers with one fixed address (they ignore a custom endpoint)."""


_RULES: dict[AccountMode, _ModeRules] = {
    AccountMode.CLAUDE_OAUTH: _ModeRules(ProviderKind.CLAUDE_OAUTH, "refused", "optional"),
    AccountMode.CONSOLE: _ModeRules(ProviderKind.CONSOLE, "required", "optional"),
    AccountMode.ZAI: _ModeRules(ProviderKind.ZAI, "required", "refused"),
    AccountMode.MINIMAX: _ModeRules(ProviderKind.MINIMAX, "required", "refused"),
    AccountMode.NANOGPT: _ModeRules(ProviderKind.NANOGPT, "required", "optional"),
    AccountMode.VERTEX_AI: _ModeRules(ProviderKind.VERTEX_AI, "optional", "refused"),
    AccountMode.OPENAI_COMPATIBLE: _ModeRules(
        ProviderKind.OPENAI_COMPATIBLE, "required", "optional"
    ),
    # Without an endpoint this would be a console account under another name.
    AccountMode.ANTHROPIC_COMPATIBLE: _ModeRules(
        ProviderKind.ANTHROPIC_COMPATIBLE, "required", "required"
    ),
}


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


async def add_account(store: Store, new: NewAccount, *, now_ms: int) -> Account:
    """Check ``new`` against what its mode needs, store it, and return the stored account.

    Args:
        store: Where the account goes; a running server picks it up within seconds.
        new: What the person supplied.
        now_ms: The account's creation time.

    Raises:
        InvalidInputError: A field is missing, not allowed for the mode, or malformed.
        ConflictError: Another account has the same name, provider and endpoint.
    """
    account = _build_account(new, account_id=str(uuid.uuid4()), now_ms=now_ms)
    try:
        await store.accounts.add(account)
    except ConflictError as exc:
        raise ConflictError(
            f"Account name {account.name!r} is already taken; choose another name."
        ) from exc
    return account


def check_new_account(new: NewAccount, *, login_pending: bool = False) -> None:
    """Raise what :func:`add_account` would for ``new``, without storing anything.

    For logins: check the name, priority, endpoint and mappings *before* sending the person to
    log in, rather than after. With ``login_pending``, the credentials a login will supply
    (tokens for ``claude-oauth``, a minted key for ``console``) are taken as given.

    Raises:
        InvalidInputError: As :func:`add_account`. Name conflicts are only found when adding.
    """
    if login_pending and new.mode is AccountMode.CLAUDE_OAUTH:
        new = msgspec.structs.replace(new, credentials=Credentials(access_token=_PENDING))
    elif login_pending and new.mode is AccountMode.CONSOLE:
        new = msgspec.structs.replace(new, api_key=_PENDING)
    _build_account(new, account_id=_PENDING, now_ms=0)


def _build_account(new: NewAccount, *, account_id: str, now_ms: int) -> Account:
    """The :class:`~better_ccflare.core.Account` ``new`` describes, every field checked."""
    rules = _RULES[new.mode]
    name = validate_account_name(new.name)
    if not MIN_PRIORITY <= new.priority <= MAX_PRIORITY:
        raise InvalidInputError(
            "priority",
            f"is {new.priority}; use a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}",
        )
    api_key = _checked_presence("api_key", _blank_to_none(new.api_key), rules.api_key, new.mode)
    endpoint = _checked_presence("endpoint", _blank_to_none(new.endpoint), rules.endpoint, new.mode)
    if endpoint is not None:
        endpoint = validate_endpoint(endpoint)
    credentials = _checked_credentials(new, api_key)
    if new.mode is AccountMode.VERTEX_AI:
        endpoint = _vertex_location(new)
    else:
        for field in ("vertex_project_id", "vertex_region"):
            if _blank_to_none(getattr(new, field)) is not None:
                raise InvalidInputError(
                    field, f"applies only to vertex-ai accounts, not {new.mode}"
                )
    return Account(
        id=account_id,
        name=name,
        provider=rules.provider.value,
        created_at_ms=now_ms,
        credentials=credentials,
        priority=new.priority,
        custom_endpoint=endpoint,
        model_mappings=_checked_mappings(new.model_mappings),
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


def _checked_presence(field: str, value: str | None, need: _Need, mode: AccountMode) -> str | None:
    if need == "required" and value is None:
        raise InvalidInputError(field, f"is required for {mode} accounts")
    if need == "refused" and value is not None:
        raise InvalidInputError(field, f"is not accepted for {mode} accounts")
    return value


def validate_endpoint(url: str) -> str:
    """``url`` without a trailing slash, once it is an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
    except ValueError:  # for example an unclosed "[" in the host
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(
            "endpoint", f"{url!r} is not an http(s) URL; give a base URL such as https://host"
        )
    return url.rstrip("/")


def _checked_credentials(new: NewAccount, api_key: str | None) -> Credentials:
    if new.mode is not AccountMode.CLAUDE_OAUTH:
        if new.credentials is not None:
            raise InvalidInputError("credentials", f"come from a login; {new.mode} uses a key")
        return Credentials(api_key=api_key)
    if new.credentials is None or not new.credentials.access_token:
        raise InvalidInputError(
            "credentials", "are missing; claude-oauth accounts are added by logging in"
        )
    return new.credentials


def _vertex_location(new: NewAccount) -> str:
    """Project and region as the JSON the Vertex AI provider reads from ``custom_endpoint``.

    Each value is judged by the provider itself (paired with a value it surely accepts), so
    what is stored is exactly what it will read, and the error names the value at fault.
    """
    project = _blank_to_none(new.vertex_project_id)
    region = _blank_to_none(new.vertex_region)
    if project is None:
        raise InvalidInputError("vertex_project_id", "is required for vertex-ai accounts")
    if region is None:
        raise InvalidInputError(
            "vertex_region", "is required for vertex-ai accounts (for example us-east5 or global)"
        )
    _check_vertex(
        "vertex_project_id",
        _location_json(project, "global"),
        f"{project!r} is not a Google Cloud project id (one looks like my-project-123)",
    )
    _check_vertex(
        "vertex_region",
        _location_json("project", region),
        f"{region!r} is not a Google Cloud region (for example us-east5 or global)",
    )
    return _location_json(project, region)


def _location_json(project: str, region: str) -> str:
    return msgspec.json.encode({"projectId": project, "region": region}).decode()


def _check_vertex(field: str, location: str, message: str) -> None:
    probe = Account(id="probe", name="probe", provider="vertex-ai", created_at_ms=0)
    try:
        VertexAIProvider().base_url(msgspec.structs.replace(probe, custom_endpoint=location))
    except AccountConfigError:
        raise InvalidInputError(field, message) from None


def _checked_mappings(mappings: ModelMappings | None) -> ModelMappings:
    if not mappings:
        return {}
    try:
        return parse_model_mappings({key.strip(): list(models) for key, models in mappings.items()})
    except ValueError as exc:
        raise InvalidInputError("model_mappings", str(exc)) from exc
