"""What a provider's accounts need when they are added: the fields the CLI, API and form ask for.

A provider declares its fields as a tuple of :class:`AccountField` (``Provider.account_fields``).
The front ends read it: ``account add`` prompts for the required ones and takes the rest from
flags, ``POST /api/accounts/{type}`` checks a body against it, and the dashboard draws its form
from ``GET /api/providers``. Two names are stored where the proxy already keeps them:

* ``api_key``: the account's key, in its encrypted credentials. It is the only field that may
  be a :attr:`FieldKind.SECRET`, because it is the only one stored encrypted.
* ``custom_endpoint``: the account's base URL, in ``Account.custom_endpoint``.

Any other field's value is stored with ``custom_endpoint`` as one JSON object (see
:func:`settings_as_custom_endpoint`); a provider that wants another layout overrides
``Provider.custom_endpoint_for``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated

import msgspec

__all__ = [
    "API_KEY_FIELD",
    "CUSTOM_ENDPOINT_FIELD",
    "AccountField",
    "FieldKind",
    "check_account_fields",
    "settings_as_custom_endpoint",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class FieldKind(StrEnum):
    """How a field's value is asked for and checked."""

    SECRET = "secret"  # noqa: S105 - the kind's name, not a password
    """Typed hidden, never shown again; only ``api_key`` may be one."""
    URL = "url"
    """An absolute http(s) URL; a trailing slash is dropped."""
    TEXT = "text"
    CHOICE = "choice"
    """One of :attr:`AccountField.choices`."""


class AccountField(msgspec.Struct, frozen=True, kw_only=True):
    """One value an account of a provider needs (or may take) when it is added."""

    # The descriptions are what the management API's schema shows for each attribute.
    name: Annotated[
        str,
        msgspec.Meta(
            description="Lower-case snake_case, at most 40 characters: the key in the API's "
            "fields object and the CLI's --field NAME=VALUE (the four built-in names are also "
            "taken at top level in camelCase: apiKey, customEndpoint, projectId, region)"
        ),
    ]
    label: Annotated[str, msgspec.Meta(description="What a person is asked for, e.g. 'API key'")]
    kind: Annotated[FieldKind, msgspec.Meta(description="What sort of value it is")] = (
        FieldKind.TEXT
    )
    required: Annotated[bool, msgspec.Meta(description="Whether it must be given")] = True
    default: Annotated[
        str | None,
        msgspec.Meta(
            description="What the CLI's prompt and the dashboard's form start with; the API "
            "does not fill it in (a required field must be sent even when it has a default)"
        ),
    ] = None
    help: Annotated[str, msgspec.Meta(description="One sentence shown next to the field")] = ""
    choices: Annotated[
        tuple[str, ...], msgspec.Meta(description="The accepted values of a choice field")
    ] = ()


API_KEY_FIELD = AccountField(name="api_key", label="API key", kind=FieldKind.SECRET)
"""The account's key: the default declaration of every provider."""

CUSTOM_ENDPOINT_FIELD = AccountField(
    name="custom_endpoint",
    label="Endpoint URL",
    kind=FieldKind.URL,
    required=False,
    help="Base URL of the upstream; empty uses the provider's default.",
)
"""An optional base URL, stored as ``Account.custom_endpoint``."""


def check_account_fields(fields: Iterable[AccountField]) -> None:
    """Raise ``ValueError`` saying what is wrong with a provider's declaration, if anything."""
    seen: set[str] = set()
    for field in fields:
        if not isinstance(field, AccountField):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(f"{field!r} is not an AccountField")
        if not _NAME.fullmatch(field.name):
            raise ValueError(
                f"field name {field.name!r} is not lower-case snake_case of at most 40 characters"
            )
        if field.name in seen:
            raise ValueError(f"field {field.name!r} is declared twice")
        seen.add(field.name)
        if field.kind is FieldKind.SECRET and field.name != API_KEY_FIELD.name:
            raise ValueError(
                f"field {field.name!r} is a secret, but only {API_KEY_FIELD.name!r} is stored "
                "encrypted; name it api_key or make it a text field"
            )
        if (field.kind is FieldKind.CHOICE) != bool(field.choices):
            raise ValueError(f"field {field.name!r}: choices go with kind 'choice', and only there")
        if field.default is not None and field.choices and field.default not in field.choices:
            raise ValueError(f"field {field.name!r}: the default is not one of its choices")


def settings_as_custom_endpoint(settings: Mapping[str, str]) -> str | None:
    """What ``Account.custom_endpoint`` stores for an account's field values (``api_key`` aside).

    Only a ``custom_endpoint``: that URL, as the built-ins have always stored it. Anything else
    given: one JSON object of every value by field name, e.g. ``{"custom_endpoint":
    "https://gw.example", "tenant": "t1"}``. Nothing given: ``None``.
    """
    if not settings:
        return None
    if set(settings) == {CUSTOM_ENDPOINT_FIELD.name}:
        return settings[CUSTOM_ENDPOINT_FIELD.name]
    return msgspec.json.encode(dict(sorted(settings.items()))).decode()
