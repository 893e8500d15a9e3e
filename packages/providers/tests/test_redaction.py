"""No credential shows in what the provider library prints: reprs, ``str()`` and error messages.

Every test places a generated secret wherever a credential can sit (an account's credentials,
request headers of any name, a URL's user-info or query, what a token endpoint sends back) and
checks that the text a developer or a log would see does not contain it.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from datetime import datetime

import httpx2
import msgspec
import pytest
from google.auth.exceptions import RefreshError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import (
    AccountConfigError,
    ClientRequest,
    Provider,
    UpstreamRequest,
    UsageFetchError,
    VertexAIProvider,
    VertexCredentialsError,
    builtin_providers,
)
from better_ccflare.providers._oauth import (
    OAuthError,
    _ApiKeyResponse,  # pyright: ignore[reportPrivateUsage] (what the endpoint answers)
    _TokenResponse,  # pyright: ignore[reportPrivateUsage]
    create_console_api_key,
    refresh_access_token,
)
from better_ccflare.providers._usage_fetch import get_usage
from better_ccflare.providers._vertex_ai import GoogleCredentials

NOW_MS = 1_767_225_600_000
_ENDPOINTS = {
    "vertex-ai": '{"projectId": "acme-ml", "region": "us-east5"}',
    "openai-compatible": "https://gateway.example/v1",
    "anthropic-compatible": "https://gateway.example",
}

secrets = st.text(string.ascii_letters + string.digits + "-_.~", min_size=8, max_size=64).map(
    lambda body: f"SECRET{body}"
)
"""Real keys and tokens are long; the marker keeps a short draw from matching ordinary text."""
header_names = st.sampled_from(
    ["x-api-key", "authorization", "proxy-authorization", "cookie", "x-goog-api-key", "api-key"]
) | st.from_regex(r"x-[a-z]{1,12}-(key|token|auth)", fullmatch=True)

_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def shown(*objects: object) -> str:
    return " ".join(f"{o!r} {o}" for o in objects)


def client_request(secret: str) -> ClientRequest:
    return ClientRequest(
        method="POST",
        path="/v1/messages",
        query="beta=true",
        headers={
            "x-api-key": secret,
            "authorization": f"Bearer {secret}",
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
        },
        body=json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []}).encode(),
    )


def account_of(provider: Provider, credentials: Credentials) -> Account:
    return Account(
        id=f"acc-{provider.id}",
        name=provider.id,
        provider=provider.id,
        created_at_ms=0,
        custom_endpoint=_ENDPOINTS.get(provider.id),
        credentials=credentials,
    )


@_settings
@given(secret=secrets)
@pytest.mark.parametrize("provider", builtin_providers(), ids=lambda p: p.id)
def test_a_built_upstream_request_never_shows_the_accounts_credential(
    provider: Provider, secret: str
) -> None:
    credentials = Credentials(
        api_key=secret, access_token=secret, refresh_token=secret, expires_at_ms=NOW_MS * 2
    )
    account = account_of(provider, credentials)
    request = provider.build_request(client_request("client-" + secret), account, credentials)
    assert secret in json.dumps(request.headers)  # the credential is really in there
    assert secret not in shown(request, account, credentials)


@_settings
@given(secret=secrets, name=header_names)
def test_an_upstream_request_hides_credentials_in_any_header_and_in_its_url(
    secret: str, name: str
) -> None:
    request = UpstreamRequest(
        method="POST",
        url=f"https://user:{secret}@gateway.example/v1/messages?key={secret}&beta=true",
        headers={name: secret, "content-type": "application/json"},
        body=b"{}",
    )
    text = shown(request)
    assert secret not in text
    assert "gateway.example/v1/messages" in text  # still useful for debugging
    assert "application/json" in text


@_settings
@given(secret=secrets)
def test_a_client_request_hides_the_clients_proxy_key(secret: str) -> None:
    assert secret not in shown(client_request(secret))


@_settings
@given(secret=secrets)
def test_token_endpoint_answers_never_show_their_tokens(secret: str) -> None:
    tokens = _TokenResponse(access_token=secret, refresh_token=secret, expires_in=3600)
    assert secret not in shown(tokens, _ApiKeyResponse(raw_key=secret))


def mock(handler: Callable[[httpx2.Request], httpx2.Response]) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


def failing(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(500)


@_settings
@given(secret=secrets)
async def test_oauth_errors_never_show_a_token_the_server_echoes(secret: str) -> None:
    def echo(request: httpx2.Request) -> httpx2.Response:
        body = {"error": "invalid_request", "error_description": f"bad token {secret}"}
        return httpx2.Response(400, json=body)

    async with mock(echo) as http:
        with pytest.raises(OAuthError) as refresh_error:
            await refresh_access_token(http, refresh_token=secret, client_id="c", now_ms=0)
        with pytest.raises(OAuthError) as key_error:
            await create_console_api_key(http, access_token=secret)
    assert secret not in shown(refresh_error.value, key_error.value)


@_settings
@given(secret=secrets)
async def test_oauth_and_usage_errors_never_show_credentials_in_a_url(secret: str) -> None:
    def unreachable(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused")

    url = f"https://user:{secret}@gateway.example/usage?key={secret}"
    async with mock(unreachable) as http:
        with pytest.raises(UsageFetchError) as usage_error:
            await get_usage(http, url, {"authorization": secret}, provider="zai")
    assert secret not in shown(usage_error.value)
    assert "gateway.example" in str(usage_error.value)


@_settings
@given(secret=secrets)
async def test_vertex_refresh_errors_never_show_the_accounts_token(secret: str) -> None:
    class Refusing:
        token: str | None = None
        expiry: datetime | None = None

        def refresh(self, request: object) -> None:
            raise RefreshError(f"invalid_grant: token {secret} was revoked")

    def factory(path: str | None) -> GoogleCredentials:
        return Refusing()

    provider = VertexAIProvider(credentials_factory=factory)
    account = account_of(provider, Credentials(access_token=secret, refresh_token=secret))
    async with mock(failing) as http:
        with pytest.raises(VertexCredentialsError) as caught:
            await provider.refresh_credentials(account, http, NOW_MS)
    assert secret not in shown(caught.value)
    assert "revoked" in str(caught.value)


@_settings
@given(secret=secrets)
@pytest.mark.parametrize("provider", builtin_providers(), ids=lambda p: p.id)
def test_account_errors_name_the_account_not_its_secrets(provider: Provider, secret: str) -> None:
    # A credential of the wrong kind: refresh tokens only, where a key or access token is needed.
    credentials = Credentials(refresh_token=secret)
    account = msgspec.structs.replace(account_of(provider, credentials), name="work")
    with pytest.raises(AccountConfigError) as caught:
        provider.build_request(client_request(secret), account, credentials)
    assert secret not in shown(caught.value)
    assert "'work'" in str(caught.value)
