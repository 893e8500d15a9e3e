"""Upstreams that speak the Anthropic Messages API at a base URL of their own.

:class:`EndpointProvider` is the base of that family (Claude OAuth, console keys, z.ai,
Minimax, NanoGPT, and plugins): the base URL is the account's ``custom_endpoint`` when the
provider allows one, else the provider's default :class:`~._endpoint.Endpoint`. Everything else
comes from the :class:`~._contract.Provider` defaults.

:class:`AnthropicCompatibleProvider` serves any such endpoint an operator points it at. Its
``custom_endpoint`` is either a plain URL or JSON ``{"endpoint": url, "authHeader": name}``; the
key is sent in ``authHeader`` (default ``x-api-key``), with ``Bearer `` in front when that header
is ``Authorization`` in any letter case (the reference compared case-sensitively, so an
``"Authorization"`` setting sent the bare key).
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import urlsplit

import msgspec

from better_ccflare.core import Account, Credentials, ProviderKind

from ._account_fields import API_KEY_FIELD, CUSTOM_ENDPOINT_FIELD, AccountField
from ._contract import AccountConfigError, Provider, require_api_key
from ._endpoint import Endpoint

__all__ = [
    "ANTHROPIC_COMPATIBLE",
    "AnthropicCompatibleProvider",
    "CustomEndpoint",
    "EndpointProvider",
    "parse_custom_endpoint",
]

ANTHROPIC_COMPATIBLE = Endpoint(
    ("BETTER_CCFLARE_ANTHROPIC_COMPATIBLE_BASE_URL", "ANTHROPIC_COMPATIBLE_BASE_URL"),
    "https://api.anthropic.com",
    "Default upstream for anthropic-compatible accounts without a custom endpoint.",
)

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An HTTP field name (RFC 9110 token)."""


class CustomEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """An account's ``custom_endpoint``, read."""

    url: str | None = None
    """The base URL without a trailing slash, or ``None`` to use the provider's default."""
    auth_header: str | None = None
    """The lower-case header to send the key in, when the account names one."""


class _CustomEndpointJson(msgspec.Struct, rename={"auth_header": "authHeader"}):
    endpoint: str | None = None
    auth_header: str | None = None


def parse_custom_endpoint(account: Account) -> CustomEndpoint:
    """Read ``account.custom_endpoint``: empty, a URL, or JSON ``{endpoint, authHeader}``.

    Raises:
        AccountConfigError: The value is not an http(s) URL or such a JSON object, or the
            header name is not a valid HTTP field name.
    """
    raw = (account.custom_endpoint or "").strip()
    if not raw:
        return CustomEndpoint()
    if not raw.startswith("{"):
        return CustomEndpoint(url=_checked_url(account, raw))
    try:
        parsed = msgspec.json.decode(raw, type=_CustomEndpointJson)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise AccountConfigError(
            account,
            f"custom_endpoint is not valid JSON of the form "
            f'{{"endpoint": "https://...", "authHeader": "x-api-key"}} ({exc})',
            "Fix the account's custom endpoint.",
        ) from None
    url = _checked_url(account, parsed.endpoint.strip()) if parsed.endpoint else None
    header = (parsed.auth_header or "").strip()
    if header and not _HEADER_NAME.match(header):
        raise AccountConfigError(
            account,
            f"custom_endpoint authHeader {header!r} is not an HTTP header name",
            "Use a name such as x-api-key or authorization.",
        )
    return CustomEndpoint(url=url, auth_header=header.lower() or None)


def _checked_url(account: Account, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AccountConfigError(
            account,
            f"custom_endpoint {url!r} is not an http(s) URL",
            "Set it to a base URL such as https://gateway.example.com.",
        )
    return url.rstrip("/")


class EndpointProvider(Provider):
    """A provider at a default :class:`~._endpoint.Endpoint`, optionally per-account overridden.

    Subclasses set :attr:`default_endpoint` and, for upstreams with one fixed address,
    :attr:`honours_custom_endpoint` to ``False``.
    """

    default_endpoint: ClassVar[Endpoint]
    honours_custom_endpoint: ClassVar[bool] = True
    account_fields: ClassVar[tuple[AccountField, ...]] = (API_KEY_FIELD, CUSTOM_ENDPOINT_FIELD)

    def base_url(self, account: Account) -> str:
        if self.honours_custom_endpoint:
            custom = parse_custom_endpoint(account).url
            if custom is not None:
                return custom
        return self.default_endpoint.url()


class AnthropicCompatibleProvider(EndpointProvider):
    """Any Anthropic Messages endpoint, with the key in a header of the operator's choosing."""

    id: ClassVar[str] = ProviderKind.ANTHROPIC_COMPATIBLE.value
    display_name: ClassVar[str] = "Anthropic-compatible"
    default_endpoint: ClassVar[Endpoint] = ANTHROPIC_COMPATIBLE
    # Without an endpoint this would be a console account under another name.
    account_fields: ClassVar[tuple[AccountField, ...]] = (
        API_KEY_FIELD,
        msgspec.structs.replace(
            CUSTOM_ENDPOINT_FIELD, required=True, help="Base URL of the upstream."
        ),
    )

    def prepare_headers(
        self, headers: dict[str, str], account: Account, credentials: Credentials
    ) -> None:
        key = require_api_key(account, credentials)
        name = parse_custom_endpoint(account).auth_header or "x-api-key"
        headers[name] = f"Bearer {key}" if name == "authorization" else key
