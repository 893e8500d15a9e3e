"""Claude subscriptions reached with OAuth tokens (provider id ``anthropic``).

Requests carry ``Authorization: Bearer <access token>`` and the ``oauth-2025-04-20`` beta, which
the API requires for OAuth tokens; every other client header (``anthropic-version``,
``user-agent``, ``x-stainless-*``) is forwarded untouched so traffic looks like the client's
own. Tokens are refreshed with the account's refresh token, and usage windows are polled from
the OAuth usage endpoint.
"""

from __future__ import annotations

from typing import ClassVar

import httpx2

from better_ccflare.core import (
    DEFAULT_CLIENT_ID,
    Account,
    Credentials,
    ProviderKind,
    UsageWindow,
)

from ._anthropic_compatible import EndpointProvider
from ._contract import AccountConfigError
from ._endpoints import ANTHROPIC_API, Endpoint
from ._headers import append_anthropic_beta
from ._oauth import refresh_access_token
from ._usage import fetch_claude_usage

__all__ = ["OAUTH_BETA", "ClaudeOAuthProvider"]

OAUTH_BETA = "oauth-2025-04-20"
"""The ``anthropic-beta`` flag that lets the Messages API accept OAuth access tokens."""
_REFRESH_WINDOW_MS = 30 * 60_000
"""Refresh this long before expiry, so a long request never starts on a dying token."""


class ClaudeOAuthProvider(EndpointProvider):
    """A Claude Pro/Max subscription.

    Args:
        client_id: The OAuth client id refresh tokens were issued to (the config's
            ``client_id``).
    """

    id: ClassVar[str] = ProviderKind.CLAUDE_OAUTH.value
    display_name: ClassVar[str] = "Claude subscription (OAuth)"
    default_endpoint: ClassVar[Endpoint] = ANTHROPIC_API
    refreshes_tokens: ClassVar[bool] = True

    def __init__(self, *, client_id: str = DEFAULT_CLIENT_ID) -> None:
        self.client_id = client_id

    def prepare_headers(
        self, headers: dict[str, str], account: Account, credentials: Credentials
    ) -> None:
        headers["authorization"] = f"Bearer {_access_token(account, credentials)}"
        append_anthropic_beta(headers, OAUTH_BETA)

    def needs_refresh(self, credentials: Credentials, now_ms: int) -> bool:
        return not credentials.access_token or credentials.expires_within(
            now_ms, _REFRESH_WINDOW_MS
        )

    async def refresh_credentials(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> Credentials:
        """Trade the refresh token for a new access token (and usually a new refresh token).

        Raises:
            AccountConfigError: The account has no refresh token.
            ReauthRequiredError: The refresh token is dead; the user must log in again.
            OAuthTransientError: The token endpoint failed in a way worth retrying later.
        """
        current = account.credentials
        if not current.refresh_token:
            raise AccountConfigError(
                account, "no refresh token is stored", "Log in to the account again."
            )
        fresh = await refresh_access_token(
            client, refresh_token=current.refresh_token, client_id=self.client_id, now_ms=now_ms
        )
        # The refresh reports None for an unrotated token's issue time: keep the stored one.
        issued_at = fresh.refresh_token_issued_at_ms or current.refresh_token_issued_at_ms
        return Credentials(
            access_token=fresh.access_token,
            refresh_token=fresh.refresh_token,
            expires_at_ms=fresh.expires_at_ms,
            refresh_token_issued_at_ms=issued_at,
        )

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...]:
        token = _access_token(account, account.credentials)
        return (await fetch_claude_usage(client, access_token=token)).windows


def _access_token(account: Account, credentials: Credentials) -> str:
    if not credentials.access_token:
        raise AccountConfigError(
            account,
            "no OAuth access token is available",
            "Refresh the account's credentials first, or log in to it again.",
        )
    return credentials.access_token
