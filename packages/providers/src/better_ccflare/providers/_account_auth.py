"""``AccountAuth``: send requests as one account with a plain ``httpx2.AsyncClient``.

The provider contract is data in, data out; a library user who only wants to call an upstream
as an account would otherwise assemble the steps themselves: refresh an expiring token, build
the upstream request, send it, read the reply's rate-limit signals. ``httpx2`` already has the
hook for the first two, its ``Auth`` flow, so this is one: each request is rebuilt by the
account's provider exactly as the proxy would send it (its upstream URL, its auth header, the
account's model mappings), an expiring OAuth token is refreshed first, and a 401 from a
refreshing provider gets one forced refresh and a retry. :meth:`AccountAuth.classify` then
says what a reply means for the account.

It works with ``httpx2`` only: a plain ``httpx`` client cannot run ``httpx2``'s auth flow and
gets a ``TypeError`` naming the fix instead of a request sent without credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from enum import StrEnum

import httpx2
import msgspec

from better_ccflare.core import Account, Clock, Credentials, SystemClock

from ._contract import ClientRequest, Provider, UnsupportedRequestError, UpstreamRequest
from ._httpx2_only import PLAIN_HTTPX, require_httpx2
from ._readings import RateLimitInfo
from ._registry import default_registry

__all__ = ["AccountAuth", "ReplyKind"]

_CREDENTIAL_ERRORS = (b'"authentication_error"', b'"permission_error"')


class ReplyKind(StrEnum):
    """What an upstream reply means for the account that sent it."""

    OK = "ok"
    """A 2xx answer."""
    RATE_LIMITED = "rate_limited"
    """A rate limit, quota, overload or lack of credit (see the :class:`RateLimitInfo`)."""
    AUTH_REJECTED = "auth_rejected"
    """The upstream refused the account's credentials: new ones are needed."""
    ERROR = "error"
    """Any other error: the request's own fault or the upstream's."""


class AccountAuth(httpx2.Auth):
    """Sends each request of an ``httpx2.AsyncClient`` as ``account``, via its provider.

    The request's path, query, headers and body are the client's; the provider rewrites them
    as the proxy does: the account's upstream URL (the client's host is replaced), its
    credentials (any ``x-api-key`` or ``authorization`` the client set is dropped), its model
    mappings. So a relative URL such as ``"/v1/messages"`` is enough.

    Args:
        account: The account to send as.
        provider: Its provider; by default the registry's for ``account.provider``.
        clock: Source of "now" for token expiry and rate-limit resets; the system clock when
            ``None``.
        refresh_client: The client token refreshes are sent with; a short-lived one per
            refresh when ``None``.
        on_refresh: Called with the account's new credentials after each refresh. Refresh
            tokens are single-use, so store them: the old ones no longer work.

    Raises:
        UnknownProviderError: No provider is registered for ``account.provider``.
        TypeError: ``refresh_client`` is not an ``httpx2.AsyncClient``.
    """

    requires_request_body = True

    def __init__(
        self,
        account: Account,
        *,
        provider: Provider | None = None,
        clock: Clock | None = None,
        refresh_client: httpx2.AsyncClient | None = None,
        on_refresh: Callable[[Credentials], Awaitable[None]] | None = None,
    ) -> None:
        if refresh_client is not None:
            require_httpx2(refresh_client)
        self._account = account
        self._provider = provider or default_registry().get(account.provider)
        self._clock: Clock = clock or SystemClock()
        self._refresh_client = refresh_client
        self._on_refresh = on_refresh
        self._refreshing = asyncio.Lock()

    @property
    def account(self) -> Account:
        """The account with its current credentials (refreshed ones included)."""
        return self._account

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        credentials = await self._credentials(stale=None)
        response = yield self._signed(request, credentials)
        if response.status_code == 401 and self._provider.refreshes_tokens:
            # The token may have been revoked before its expiry: one forced refresh, as the
            # proxy does, before the refusal stands.
            fresh = await self._credentials(stale=credentials)
            if fresh != credentials:
                yield self._signed(request, fresh)

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response]:
        raise TypeError(
            "AccountAuth refreshes tokens asynchronously: use it with httpx2.AsyncClient, "
            "not httpx2.Client."
        )

    def __call__(self, request: object) -> object:
        """Plain ``httpx`` takes any callable as an auth and calls it with each request; being
        one is how a plain client reaches this clear error rather than sending unsigned."""
        raise TypeError(f"AccountAuth is an httpx2.Auth. {PLAIN_HTTPX}")

    async def classify(self, response: httpx2.Response) -> tuple[ReplyKind, RateLimitInfo]:
        """What ``response`` (to a request this auth signed) means for the account.

        An error's body is read (it is small) to tell a lack of credit or a refusal of the
        credentials apart; a successful body is left unread, so a stream stays a stream.

        Returns:
            The kind of reply, and its rate-limit reading: the reset time, remaining quota and
            window when the upstream gave them.
        """
        status = response.status_code
        body = await response.aread() if status >= 400 else None
        reading = self._provider.classify_rate_limit(
            status=status,
            headers=dict(response.headers.items()),
            body=body,
            now_ms=self._clock.now_ms(),
        )
        if reading.limited:
            return ReplyKind.RATE_LIMITED, reading
        if 200 <= status < 300:
            return ReplyKind.OK, reading
        if status == 401 or (status == 403 and any(e in (body or b"") for e in _CREDENTIAL_ERRORS)):
            return ReplyKind.AUTH_REJECTED, reading
        return ReplyKind.ERROR, reading

    async def _credentials(self, *, stale: Credentials | None) -> Credentials:
        """The account's credentials, refreshed first when they expire soon or are ``stale``
        (refused); one refresh at a time, and none when another just replaced them."""
        async with self._refreshing:
            current = self._account.credentials
            now_ms = self._clock.now_ms()
            if (stale is None or current != stale) and not self._provider.needs_refresh(
                current, now_ms
            ):
                return current
            if self._refresh_client is not None:
                fresh = await self._provider.refresh_credentials(
                    self._account, self._refresh_client, now_ms
                )
            else:
                async with httpx2.AsyncClient() as client:
                    fresh = await self._provider.refresh_credentials(self._account, client, now_ms)
            self._account = msgspec.structs.replace(self._account, credentials=fresh)
            if self._on_refresh is not None:
                await self._on_refresh(fresh)
            return fresh

    def _signed(self, request: httpx2.Request, credentials: Credentials) -> httpx2.Request:
        raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        upstream = self._provider.build_request(
            ClientRequest(
                method=request.method,
                path=raw_path,
                query=request.url.query.decode("ascii"),
                headers=dict(request.headers.items()),
                body=request.content,
            ),
            self._account,
            credentials,
        )
        self._refuse_translation(raw_path, upstream)
        return httpx2.Request(
            upstream.method,
            upstream.url,
            headers=upstream.headers,
            content=upstream.body,
            extensions=request.extensions,
        )

    def _refuse_translation(self, path: str, upstream: UpstreamRequest) -> None:
        """A provider whose replies need translating into Anthropic's format (OpenAI-compatible)
        cannot be served by an auth flow, which hands the reply back untouched."""
        if any(
            self._provider.response_transformer(
                path=path, status=status, headers={}, request=upstream
            )
            is not None
            for status in (200, 400)
        ):
            raise UnsupportedRequestError(
                f"{self._provider.display_name} answers in another format, which AccountAuth "
                "does not translate; send through the better-ccflare proxy, or use the "
                "provider's response_transformer() on the reply."
            )
