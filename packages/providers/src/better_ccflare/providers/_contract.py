"""The provider contract: everything the proxy needs to know about one kind of upstream.

A provider is data in, data out. It never owns a socket: the proxy sends the request, and
passes an ``httpx2.AsyncClient`` in for the few calls a provider makes itself (token refresh,
usage endpoints). Most methods are pure functions of their arguments, which is what lets them be
tested exhaustively.

Third-party packages implement a provider by subclassing :class:`Provider` and publishing it in
the ``better_ccflare.providers`` entry-point group. :data:`API_VERSION` is the contract's
version; a plugin built for another major version is refused with a clear message.

Version 2 changed ``build_request`` to take a :class:`ClientRequest`. Declarations added to the
contract since then with a default that keeps every existing provider working (what its
accounts need, :attr:`Provider.account_fields`, and how those values are stored,
:meth:`Provider.custom_endpoint_for`) are not incompatible changes, so they did not bump it: a
plugin written for version 2 before they existed still loads and behaves as it did.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import httpx2
import msgspec

from better_ccflare.core import (
    Account,
    BetterCcflareError,
    Credentials,
    OAuthMode,
    UsageWindow,
)

from ._account_fields import API_KEY_FIELD, AccountField, settings_as_custom_endpoint
from ._anthropic_api import classify_anthropic_rate_limit
from ._headers import forwardable_request_headers
from ._model_mapping import apply_model_mapping
from ._readings import RateLimitInfo, UsageParser
from ._redaction import redacted_headers, redacted_url
from ._sse_usage import AnthropicUsageParser

__all__ = [
    "API_VERSION",
    "AccountConfigError",
    "ClientRequest",
    "Provider",
    "ResponseTransformer",
    "UnsupportedRequestError",
    "UpstreamRequest",
    "require_api_key",
]

API_VERSION = 2
"""Bumped when the contract changes incompatibly (not for new declarations with defaults)."""


class AccountConfigError(BetterCcflareError):
    """An account cannot be used as configured: a credential is missing or a setting is invalid.

    Args:
        account: The account, named in the message (never its secrets).
        problem: What is wrong, in words.
        fix: What the operator should do about it.
    """

    def __init__(self, account: Account, problem: str, fix: str) -> None:
        self.account_id = account.id
        super().__init__(f"Account {account.name!r} ({account.provider}): {problem}. {fix}")


def require_api_key(account: Account, credentials: Credentials) -> str:
    """The API key in ``credentials``.

    Raises:
        AccountConfigError: There is none.
    """
    if not credentials.api_key:
        raise AccountConfigError(
            account, "no API key is stored", "Re-add the account with its API key."
        )
    return credentials.api_key


class UnsupportedRequestError(BetterCcflareError):
    """The provider cannot serve this kind of request (a path or body it has no upstream for)."""


class ClientRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The client's request as the proxy received it, before any provider has touched it.

    The ``repr`` hides header values that may be credentials (the client's proxy key) and
    shows only the body's size.
    """

    method: str
    path: str
    """The client's path, e.g. ``/v1/messages``."""
    query: str = ""
    """The raw query string without ``?`` (may be empty)."""
    headers: Mapping[str, str]
    """The client's headers, lower-case names."""
    body: bytes
    """The client's body, unchanged."""

    def __repr__(self) -> str:
        return (
            f"ClientRequest(method={self.method!r}, path={self.path!r}, "
            f"query={'<redacted>' if self.query else ''!r}, "
            f"headers={redacted_headers(self.headers)!r}, body=<{len(self.body)} bytes>)"
        )


class UpstreamRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request ready to send upstream.

    It carries the account's credential, so its ``repr`` hides header values that may be one,
    the URL's user-info and query, and shows only the body's size.
    """

    method: str
    url: str
    headers: dict[str, str]
    """Lower-case names. Hop-by-hop and client credential headers are already removed."""
    body: bytes
    client_model: str | None = None
    """The model the client asked for, when the provider read it (it does when it may map it)."""
    upstream_model: str | None = None
    """The model requested upstream, when the provider read the client's; may equal it."""

    def __repr__(self) -> str:
        return (
            f"UpstreamRequest(method={self.method!r}, url={redacted_url(self.url)!r}, "
            f"headers={redacted_headers(self.headers)!r}, body=<{len(self.body)} bytes>, "
            f"client_model={self.client_model!r}, upstream_model={self.upstream_model!r})"
        )


class ResponseTransformer(ABC):
    """Rewrites an upstream response body into the Anthropic Messages format, chunk by chunk.

    ``feed`` returns the bytes to send to the client now (possibly empty); ``close`` returns
    whatever remains once the upstream body has ended.
    """

    __slots__ = ()

    @abstractmethod
    def feed(self, chunk: bytes) -> bytes: ...

    @abstractmethod
    def close(self) -> bytes: ...


class Provider(ABC):
    """One kind of upstream account.

    Subclasses set :attr:`id` and :attr:`display_name`, implement :meth:`base_url`, and override
    what differs from the defaults. The defaults describe an Anthropic-shaped upstream reached
    with an API key: the client's request is forwarded to the same path with the account's
    key in ``x-api-key`` and its model mapping applied; rate limits are read from Anthropic's
    headers and usage from Anthropic's Messages format. Most providers change only
    :meth:`base_url` and :meth:`prepare_headers`.
    """

    api_version: ClassVar[int] = API_VERSION
    id: ClassVar[str]
    """The provider id stored in ``accounts.provider``."""
    display_name: ClassVar[str]
    refreshes_tokens: ClassVar[bool] = False
    """Whether accounts hold expiring tokens that :meth:`refresh_credentials` renews.

    Set it to ``True`` exactly when :meth:`needs_refresh` can ever return true. The proxy reads
    it to decide whether an upstream 401 is worth one forced refresh and a retry.
    """
    account_fields: ClassVar[tuple[AccountField, ...]] = (API_KEY_FIELD,)
    """What an account needs when it is added, in the order a person is asked for it.

    The default is one required API key, which :meth:`prepare_headers` sends. Declare
    ``CUSTOM_ENDPOINT_FIELD`` too when the upstream's address differs per account, and any other
    value :meth:`base_url` or :meth:`prepare_headers` reads (see :class:`AccountField`). The
    registry refuses a provider whose declaration is malformed.
    """
    oauth_login: ClassVar[OAuthMode | None] = None
    """Built-ins only: the Anthropic browser login that supplies this account's credentials.

    With it and no ``api_key`` field, accounts are added only by logging in (Claude
    subscriptions); with an ``api_key`` field too, the login is an alternative to typing the key
    (it mints one, as for console accounts). Plugins leave it ``None``.
    """

    type_aliases: ClassVar[tuple[str, ...]] = ()
    """Other names input may use for :attr:`account_type` (``account add --mode``,
    ``POST /api/accounts/{type}``), such as the older names of a renamed type. Output always
    uses :attr:`account_type`; the registry refuses an alias another provider already claims."""

    @property
    def account_type(self) -> str:
        """What people call this kind of account: ``account add --mode``,
        ``POST /api/accounts/{type}``. The provider id: one name for the type everywhere."""
        return self.id

    def custom_endpoint_for(self, settings: Mapping[str, str]) -> str | None:
        """What ``Account.custom_endpoint`` stores for a new account's field values.

        ``settings`` holds the values given for the declared fields other than ``api_key``,
        already checked (required ones present, URLs valid, choices known). The default stores
        a lone ``custom_endpoint`` as that URL, and anything more as one JSON object by field
        name (:func:`~._account_fields.settings_as_custom_endpoint`).

        Raises:
            InvalidInputError: A value is not acceptable; ``field`` names the field.
        """
        return settings_as_custom_endpoint(settings)

    @abstractmethod
    def base_url(self, account: Account) -> str:
        """The upstream origin (and path prefix) for this account, without a trailing slash."""

    def build_request(
        self, request: ClientRequest, account: Account, credentials: Credentials
    ) -> UpstreamRequest:
        """Turn the client's request into the upstream request for ``account``.

        The default forwards ``request`` to the same path and query under :meth:`base_url`,
        with the account's model mapping applied to the body and headers from
        :meth:`upstream_request`.

        Args:
            request: The client's request.
            account: The chosen account.
            credentials: Fresh credentials for the account (the token manager refreshed them).

        Raises:
            AccountConfigError: The account lacks a credential or has an invalid setting.
            UnsupportedRequestError: The provider has no upstream for this request.
        """
        mapped = apply_model_mapping(request.body, account.model_mappings)
        url = self.base_url(account) + request.path
        if request.query:
            url = f"{url}?{request.query}"
        return self.upstream_request(
            request,
            account,
            credentials,
            url=url,
            body=mapped.body,
            client_model=mapped.client_model,
            upstream_model=mapped.upstream_model,
        )

    def upstream_request(
        self,
        request: ClientRequest,
        account: Account,
        credentials: Credentials,
        *,
        url: str,
        body: bytes,
        client_model: str | None = None,
        upstream_model: str | None = None,
        content_type: str | None = None,
    ) -> UpstreamRequest:
        """The request to send: ``request``'s method and forwardable headers, authenticated.

        Every :meth:`build_request` ends here, so the headers that cross the proxy and the auth
        :meth:`prepare_headers` adds are the same whatever the provider did to the URL and body.

        Args:
            request: The client's request; its method and headers are used.
            account: The chosen account, passed to :meth:`prepare_headers`.
            credentials: Its credentials, passed to :meth:`prepare_headers`.
            url: The full upstream URL.
            body: The upstream body.
            client_model: The model the client asked for, when the provider read it.
            upstream_model: The model requested upstream, when the provider read the client's.
            content_type: The body's media type when the provider rewrote it into another
                format; it replaces the client's ``content-type``.

        Raises:
            AccountConfigError: The credentials lack what the upstream needs.
        """
        headers = forwardable_request_headers(request.headers)
        self.prepare_headers(headers, account, credentials)
        if content_type is not None:
            headers["content-type"] = content_type
        return UpstreamRequest(
            method=request.method,
            url=url,
            headers=headers,
            body=body,
            client_model=client_model,
            upstream_model=upstream_model,
        )

    def prepare_headers(
        self, headers: dict[str, str], account: Account, credentials: Credentials
    ) -> None:
        """Authenticate the outgoing ``headers`` in place; by default ``x-api-key: <api key>``.

        ``headers`` are the client's forwardable headers (lower-case names). Override this to
        use another auth header, add or drop headers the upstream cares about.

        Raises:
            AccountConfigError: The credentials lack what the upstream needs.
        """
        headers["x-api-key"] = require_api_key(account, credentials)

    def response_transformer(
        self, *, path: str, status: int, headers: Mapping[str, str], request: UpstreamRequest
    ) -> ResponseTransformer | None:
        """A transformer when the upstream does not speak the Anthropic format; else ``None``."""
        return None

    def classify_rate_limit(
        self, *, status: int, headers: Mapping[str, str], body: bytes | None, now_ms: int
    ) -> RateLimitInfo:
        """Read the rate-limit signals of a response (headers lower-case; body may be a prefix).

        The default reads Anthropic's headers; the table is in :mod:`._anthropic_api`.
        """
        return classify_anthropic_rate_limit(
            status=status, headers=headers, body=body, now_ms=now_ms
        )

    def usage_parser(self, *, streaming: bool) -> UsageParser:
        """A fresh parser for one response body (SSE when ``streaming``, else JSON).

        The default reads the Anthropic Messages format.
        """
        return AnthropicUsageParser(streaming=streaming)

    def needs_refresh(self, credentials: Credentials, now_ms: int) -> bool:
        """Whether :meth:`refresh_credentials` must run before ``credentials`` are used.

        The token manager asks this instead of knowing which providers hold expiring tokens.
        The default, for API keys that do not expire, is never; a provider that overrides it
        sets :attr:`refreshes_tokens`.
        """
        return False

    async def refresh_credentials(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> Credentials:
        """New credentials for ``account``. API-key providers return what they have."""
        return account.credentials

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...] | None:
        """The account's usage windows from the provider's usage endpoint; ``None`` if none."""
        return None
