"""The Claude OAuth login: authorize URL, pasted code, code exchange, refresh, console API key.

The login is PKCE with Anthropic's public client. The callback page shows ``CODE#STATE`` for the
user to paste back, so the proxy never receives a redirect. The reference implementation sent
the pasted state along without checking it; :func:`parse_code_paste` compares it with the state
this login generated, so a code from another login attempt (or someone else's) is refused.

Failures are split by what the caller should do next: :class:`ReauthRequiredError` means the
refresh token is dead and only a new login helps; :class:`OAuthTransientError` means try again
later; any other :class:`OAuthError` is a problem with this particular request. Messages never
contain tokens, codes or verifiers, even when the server echoes them back.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import Literal, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import msgspec

from better_ccflare.core import BetterCcflareError, Credentials, OAuthMode

from ._anthropic_api import ANTHROPIC_API
from ._endpoint import Endpoint
from ._httpx2_only import require_httpx2
from ._pkce import PkcePair
from ._redaction import REDACTED, redacted_url, without_secrets

__all__ = [
    "OAUTH_AUTHORIZE_CLAUDE",
    "OAUTH_AUTHORIZE_CONSOLE",
    "OAUTH_REDIRECT_URI",
    "OAUTH_SCOPES",
    "OAUTH_TOKEN",
    "OAuthError",
    "OAuthStateMismatchError",
    "OAuthTransientError",
    "ReauthRequiredError",
    "build_authorize_url",
    "create_console_api_key",
    "exchange_code",
    "parse_code_paste",
    "parse_retry_after_ms",
    "refresh_access_token",
]

OAUTH_TOKEN = Endpoint(
    ("BETTER_CCFLARE_OAUTH_TOKEN_URL",),
    "https://platform.claude.com/v1/oauth/token",
    "Anthropic OAuth token endpoint (code exchange and refresh).",
)
OAUTH_AUTHORIZE_CLAUDE = Endpoint(
    ("BETTER_CCFLARE_OAUTH_AUTHORIZE_URL",),
    "https://claude.ai/oauth/authorize",
    "Authorize page for Claude subscription logins.",
)
OAUTH_AUTHORIZE_CONSOLE = Endpoint(
    ("BETTER_CCFLARE_OAUTH_CONSOLE_AUTHORIZE_URL", "BETTER_CCFLARE_OAUTH_AUTHORIZE_URL"),
    "https://console.anthropic.com/oauth/authorize",
    "Authorize page for console logins (falls back to BETTER_CCFLARE_OAUTH_AUTHORIZE_URL).",
)
OAUTH_REDIRECT_URI = "https://platform.claude.com/oauth/code/callback"
"""Registered for the public client id; it shows the ``code#state`` string to paste back."""

OAUTH_SCOPES = (
    "org:create_api_key user:profile user:inference user:sessions:claude_code "
    "user:mcp_servers user:file_upload"
)
"""The scopes Claude Code asks for; the same set keeps the login indistinguishable from it."""

_TIMEOUT = httpx2.Timeout(15.0)
"""Token calls are small; a hung one must not hold an account's refresh slot for minutes."""

_DEAD_TOKEN_CODES = frozenset(
    {"invalid_grant", "invalid_refresh_token", "refresh_token_reused", "unauthorized_client"}
)
_Step = Literal["code exchange", "token refresh", "API key creation"]
_HINTS: dict[_Step, str] = {
    "code exchange": "The code may have expired or been used already; start the login again.",
    "token refresh": "Check the account's login, or log in to it again.",
    "API key creation": "Log in again in console mode with an account allowed to create keys.",
}

_T = TypeVar("_T")


class OAuthError(BetterCcflareError):
    """An OAuth step failed for a reason specific to this request."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class OAuthStateMismatchError(OAuthError):
    """The pasted code belongs to a different login attempt than the one being completed."""


class ReauthRequiredError(OAuthError):
    """The refresh token is no longer accepted; the account needs a new login."""


class OAuthTransientError(OAuthError):
    """The token endpoint could not answer now (network, timeout, 429, 5xx); retry later."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_ms: int | None = None
    ) -> None:
        self.retry_after_ms = retry_after_ms
        super().__init__(message, status=status)


class _NestedError(msgspec.Struct):
    type: str | None = None
    message: str | None = None


class _ErrorBody(msgspec.Struct):
    """``{"error": "invalid_grant", "error_description": ...}`` or Anthropic's nested form."""

    error: str | _NestedError | None = None
    error_description: str | None = None


class _TokenResponse(msgspec.Struct):
    access_token: str
    refresh_token: str | None = None
    expires_in: float | None = None

    def __repr__(self) -> str:
        refresh = REDACTED if self.refresh_token is not None else None
        return (
            f"_TokenResponse(access_token={REDACTED}, refresh_token={refresh}, "
            f"expires_in={self.expires_in})"
        )


class _ApiKeyResponse(msgspec.Struct):
    raw_key: str

    def __repr__(self) -> str:
        return f"_ApiKeyResponse(raw_key={REDACTED})"


def build_authorize_url(*, mode: OAuthMode, client_id: str, pkce: PkcePair, state: str) -> str:
    """The page the user opens to log in.

    Args:
        mode: ``CLAUDE_OAUTH`` logs in to a subscription on claude.ai; ``CONSOLE`` logs in to
            the Anthropic console (to mint an API key).
        client_id: The OAuth client id (the config's ``client_id``).
        pkce: The pair whose verifier the exchange will send.
        state: The value the pasted code must come back with (see :func:`parse_code_paste`).
    """
    endpoint = OAUTH_AUTHORIZE_CONSOLE if mode is OAuthMode.CONSOLE else OAUTH_AUTHORIZE_CLAUDE
    query = urlencode(
        {
            "code": "true",
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": OAUTH_REDIRECT_URI,
            "scope": OAUTH_SCOPES,
            "code_challenge": pkce.challenge,
            "code_challenge_method": pkce.method,
            "state": state,
        }
    )
    return f"{endpoint.url()}?{query}"


_PASTE_HELP = (
    "Paste the whole string shown on the page you reached after logging in: it looks like "
    "CODE#STATE (or paste that page's full address)."
)


def parse_code_paste(text: str, *, expected_state: str) -> str:
    """The authorization code from what the user pasted, once its state is checked.

    Accepts ``CODE#STATE`` (surrounding whitespace ignored) or the callback URL carrying
    ``code`` and ``state`` query parameters.

    Raises:
        OAuthStateMismatchError: The state is not ``expected_state``.
        OAuthError: The text has no code or no state.
    """
    text = text.strip()
    if not text:
        raise OAuthError(f"Nothing was pasted. {_PASTE_HELP}")
    if text.startswith(("http://", "https://")):
        params = parse_qs(urlsplit(text).query)
        code = params.get("code", [""])[0].strip()
        state = params.get("state", [""])[0].strip()
        if not code or not state:
            raise OAuthError(f"That address has no code= and state= parameters. {_PASTE_HELP}")
    else:
        if "#" not in text:
            raise OAuthError(f"The pasted text has no '#' between code and state. {_PASTE_HELP}")
        code, _, state = (part.strip() for part in text.partition("#"))
        if not code:
            raise OAuthError(f"The pasted text has no code before the '#'. {_PASTE_HELP}")
    if not secrets.compare_digest(state.encode(), expected_state.encode()):
        raise OAuthStateMismatchError(
            "The pasted code belongs to a different login attempt (its state does not match). "
            "Start the login again and paste the code from the page that login opens."
        )
    return code


async def exchange_code(
    client: httpx2.AsyncClient,
    *,
    code: str,
    state: str,
    verifier: str,
    client_id: str,
    now_ms: int,
) -> Credentials:
    """Trade an authorization code for tokens.

    Returns:
        Credentials with the access token, its expiry, and the refresh token (if one was issued)
        with ``refresh_token_issued_at_ms = now_ms``.

    Raises:
        OAuthTransientError: Network failure, timeout, 429 or 5xx.
        OAuthError: The code was refused (expired, already used, or from another login).
    """
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "state": state,
        "client_id": client_id,
        "redirect_uri": OAUTH_REDIRECT_URI,
        "code_verifier": verifier,
    }
    tokens = await _post(
        client,
        OAUTH_TOKEN.url(),
        json=body,
        step="code exchange",
        kind=_TokenResponse,
        secrets_sent=(code, verifier),
    )
    return Credentials(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at_ms=_expires_at(tokens, now_ms),
        refresh_token_issued_at_ms=now_ms if tokens.refresh_token else None,
    )


async def refresh_access_token(
    client: httpx2.AsyncClient, *, refresh_token: str, client_id: str, now_ms: int
) -> Credentials:
    """A new access token for a refresh token.

    Anthropic refresh tokens are single-use and usually rotate. When the response carries no
    new one, the old refresh token is kept and ``refresh_token_issued_at_ms`` is ``None``,
    meaning "unchanged": the caller keeps the issue time it has stored.

    Raises:
        ReauthRequiredError: The refresh token is dead (revoked, expired, already used).
        OAuthTransientError: Network failure, timeout, 429 or 5xx.
        OAuthError: Any other refusal.
    """
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    tokens = await _post(
        client,
        OAUTH_TOKEN.url(),
        json=body,
        step="token refresh",
        kind=_TokenResponse,
        secrets_sent=(refresh_token,),
    )
    rotated = tokens.refresh_token is not None and tokens.refresh_token != refresh_token
    return Credentials(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token if rotated else refresh_token,
        expires_at_ms=_expires_at(tokens, now_ms),
        refresh_token_issued_at_ms=now_ms if rotated else None,
    )


async def create_console_api_key(client: httpx2.AsyncClient, *, access_token: str) -> str:
    """Mint a console API key with a console login's access token (needs ``org:create_api_key``).

    Raises:
        OAuthTransientError: Network failure, timeout, 429 or 5xx.
        OAuthError: The key was refused (for example, the login lacks the scope).
    """
    key = await _post(
        client,
        f"{ANTHROPIC_API.url()}/api/oauth/claude_cli/create_api_key",
        headers={"authorization": f"Bearer {access_token}"},
        step="API key creation",
        kind=_ApiKeyResponse,
        secrets_sent=(access_token,),
    )
    return key.raw_key


def parse_retry_after_ms(headers: Mapping[str, str]) -> int | None:
    """``retry-after`` as milliseconds, when given as delta-seconds (the only form seen here)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return math.ceil(seconds * 1000)


async def _post(
    client: httpx2.AsyncClient,
    url: str,
    *,
    step: _Step,
    kind: type[_T],
    secrets_sent: tuple[str, ...],
    json: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> _T:
    """POST, and turn every way it can fail into the matching :class:`OAuthError`."""
    require_httpx2(client)
    try:
        response = await client.post(url, json=json, headers=headers, timeout=_TIMEOUT)
    except httpx2.TimeoutException:
        raise OAuthTransientError(
            f"{redacted_url(url)} did not answer within {_TIMEOUT.read:g} s; try again shortly."
        ) from None
    except httpx2.TransportError as exc:
        detail = without_secrets(str(exc) or type(exc).__name__, secrets_sent)
        raise OAuthTransientError(f"Could not reach {redacted_url(url)}: {detail}.") from None
    if not response.is_success:
        raise _failure(response, step=step, secrets_sent=secrets_sent)
    return _decode(response, kind, step=step)


def _decode(response: httpx2.Response, kind: type[_T], *, step: _Step) -> _T:
    where = redacted_url(str(response.request.url))
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.ValidationError as exc:
        raise OAuthError(
            f"The {step} response from {where} was not understood ({exc}).",
            status=response.status_code,
        ) from None
    except msgspec.DecodeError:
        raise OAuthError(
            f"The {step} response from {where} was not JSON.",
            status=response.status_code,
        ) from None


def _failure(
    response: httpx2.Response, *, step: _Step, secrets_sent: tuple[str, ...]
) -> OAuthError:
    status = response.status_code
    code, message = _error_code_and_message(response.content)
    detail = without_secrets(
        message or code or response.reason_phrase or "no details", secrets_sent
    )
    summary = f"The {step} failed with HTTP {status}: {detail}"
    if status == 429 or status >= 500:
        return OAuthTransientError(
            f"{summary}. Anthropic is busy or failing; try again later.",
            status=status,
            retry_after_ms=parse_retry_after_ms(response.headers),
        )
    if step == "token refresh" and _says_token_dead(status, code, message):
        return ReauthRequiredError(
            f"{summary}. The refresh token is no longer valid; log in to this account again.",
            status=status,
        )
    return OAuthError(f"{summary}. {_HINTS[step]}", status=status)


def _error_code_and_message(content: bytes) -> tuple[str | None, str | None]:
    """The machine code and human message of an error body, whichever of the shapes it uses."""
    try:
        body = msgspec.json.decode(content, type=_ErrorBody)
    except msgspec.MsgspecError:
        return None, None
    if isinstance(body.error, _NestedError):
        return body.error.type, body.error_description or body.error.message
    return body.error, body.error_description or body.error


def _says_token_dead(status: int, code: str | None, message: str | None) -> bool:
    if code in _DEAD_TOKEN_CODES:
        return True
    text = f"{code or ''} {message or ''}".lower()
    return status in (400, 401) and any(dead in text for dead in _DEAD_TOKEN_CODES)


def _expires_at(tokens: _TokenResponse, now_ms: int) -> int | None:
    if tokens.expires_in is None:
        return None
    return now_ms + round(tokens.expires_in * 1000)
