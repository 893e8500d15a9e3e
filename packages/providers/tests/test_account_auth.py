"""``AccountAuth``: requests sent as an account through a plain ``httpx2.AsyncClient``.

The upstream and the token endpoint are ``httpx2.MockTransport`` handlers that record what
they received; the clock is a ``FakeClock``.
"""

from __future__ import annotations

import asyncio
import json

import httpx  # noqa: TID251 (the plain client a user might pass by mistake)
import httpx2
import pytest

from better_ccflare.core import Account, Credentials, FakeClock, ProviderKind
from better_ccflare.providers import (
    AccountAuth,
    RateLimitKind,
    ReplyKind,
    UnsupportedRequestError,
)

NOW = 1_767_225_600_000
MESSAGE: dict[str, object] = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": []}


def console(provider: str = ProviderKind.CONSOLE.value) -> Account:
    return Account(
        id="c1",
        name="console",
        provider=provider,
        created_at_ms=0,
        custom_endpoint="https://gateway.example",
        credentials=Credentials(api_key="sk-ant-api03-account"),
        model_mappings={"haiku": ("claude-sonnet-4-5",)},
    )


def subscription(expires_at_ms: int) -> Account:
    return Account(
        id="s1",
        name="subscription",
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=0,
        credentials=Credentials(
            access_token="at-old", refresh_token="rt-old", expires_at_ms=expires_at_ms
        ),
    )


class Upstream:
    """Answers messages with ``statuses`` in turn (then 200) and the token endpoint with new
    tokens; records every request."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx2.Request] = []
        self.refreshes = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if request.url.path.endswith("/oauth/token"):
            self.refreshes += 1
            tokens = {"access_token": f"at-{self.refreshes}", "refresh_token": "rt-new"}
            return httpx2.Response(200, json={**tokens, "expires_in": 3600})
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx2.Response(status, json={"type": "message", "content": []})

    def client(self, auth: AccountAuth | None = None) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self), auth=auth)

    @property
    def messages(self) -> list[httpx2.Request]:
        return [r for r in self.requests if r.url.path.endswith("/v1/messages")]


async def test_a_request_goes_to_the_account_upstream_with_its_key_and_mappings() -> None:
    upstream = Upstream()
    auth = AccountAuth(console(), clock=FakeClock(NOW))
    async with upstream.client(auth) as client:
        response = await client.post(
            "/v1/messages?beta=true",
            json=MESSAGE,
            headers={"x-api-key": "the-client's", "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 200
    [sent] = upstream.messages
    assert str(sent.url) == "https://gateway.example/v1/messages?beta=true"
    assert sent.headers["x-api-key"] == "sk-ant-api03-account"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(sent.content)["model"] == "claude-sonnet-4-5"


async def test_an_expiring_token_is_refreshed_once_for_concurrent_requests() -> None:
    upstream = Upstream()
    saved: list[Credentials] = []

    async def save(credentials: Credentials) -> None:
        saved.append(credentials)

    async with upstream.client() as refresher:
        auth = AccountAuth(
            subscription(expires_at_ms=NOW + 60_000),
            clock=FakeClock(NOW),
            refresh_client=refresher,
            on_refresh=save,
        )
        async with upstream.client(auth) as client:
            await asyncio.gather(*(client.post("/v1/messages", json=MESSAGE) for _ in range(3)))
    assert upstream.refreshes == 1
    assert [r.headers["authorization"] for r in upstream.messages] == ["Bearer at-1"] * 3
    assert [c.access_token for c in saved] == ["at-1"]
    assert auth.account.credentials == saved[0]


async def test_a_fresh_token_is_used_as_is() -> None:
    upstream = Upstream()
    auth = AccountAuth(subscription(expires_at_ms=NOW + 3_600_000), clock=FakeClock(NOW))
    async with upstream.client(auth) as client:
        await client.post("/v1/messages", json=MESSAGE)
    assert upstream.refreshes == 0
    assert upstream.messages[0].headers["authorization"] == "Bearer at-old"


async def test_a_401_gets_one_forced_refresh_and_retry() -> None:
    upstream = Upstream(401, 401)
    async with upstream.client() as refresher:
        auth = AccountAuth(
            subscription(expires_at_ms=NOW + 3_600_000),
            clock=FakeClock(NOW),
            refresh_client=refresher,
        )
        async with upstream.client(auth) as client:
            response = await client.post("/v1/messages", json=MESSAGE)
            kind, _ = await auth.classify(response)
    assert [r.headers["authorization"] for r in upstream.messages] == [
        "Bearer at-old",
        "Bearer at-1",
    ]
    assert response.status_code == 401
    assert kind is ReplyKind.AUTH_REJECTED


async def _classified(response: httpx2.Response) -> tuple[ReplyKind, RateLimitKind]:
    auth = AccountAuth(console(), clock=FakeClock(NOW))
    kind, reading = await auth.classify(response)
    return kind, reading.kind


async def test_replies_are_classified_for_the_account() -> None:
    reset_s = NOW // 1000 + 600
    quota = httpx2.Response(
        429,
        headers={
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(reset_s),
        },
        json={"type": "error", "error": {"type": "rate_limit_error", "message": "x"}},
    )
    assert await _classified(quota) == (ReplyKind.RATE_LIMITED, RateLimitKind.ACCOUNT_QUOTA)
    _, reading = await AccountAuth(console(), clock=FakeClock(NOW)).classify(quota)
    assert reading.reset_at_ms == reset_s * 1000
    refused = httpx2.Response(
        403, json={"type": "error", "error": {"type": "permission_error", "message": "no"}}
    )
    assert (await _classified(refused))[0] is ReplyKind.AUTH_REJECTED
    bad = httpx2.Response(
        400, json={"type": "error", "error": {"type": "invalid_request_error", "message": "x"}}
    )
    assert (await _classified(bad))[0] is ReplyKind.ERROR
    assert (await _classified(httpx2.Response(200, json={})))[0] is ReplyKind.OK
    assert (await _classified(httpx2.Response(529)))[1] is RateLimitKind.OVERLOADED


async def test_a_plain_httpx_client_gets_a_type_error_naming_httpx2() -> None:
    auth = AccountAuth(console(), clock=FakeClock(NOW))
    async with httpx.AsyncClient(
        auth=auth,  # pyright: ignore[reportArgumentType]
        transport=httpx.MockTransport(lambda _: httpx.Response(200)),
    ) as client:
        with pytest.raises(TypeError, match=r"httpx2\.AsyncClient\(") as caught:
            await client.post("https://api.anthropic.com/v1/messages", json=MESSAGE)
    assert "alias_httpx" in str(caught.value)
    async with httpx.AsyncClient() as plain:
        with pytest.raises(TypeError, match=r"got httpx\.AsyncClient"):
            AccountAuth(console(), refresh_client=plain)  # pyright: ignore[reportArgumentType]


def test_a_synchronous_client_is_refused() -> None:
    auth = AccountAuth(console(), clock=FakeClock(NOW))
    with (
        httpx2.Client(transport=httpx2.MockTransport(lambda _: httpx2.Response(200))) as client,
        pytest.raises(TypeError, match=r"httpx2\.AsyncClient"),
    ):
        client.post("/v1/messages", json=MESSAGE, auth=auth)


async def test_a_provider_whose_replies_need_translating_is_refused() -> None:
    account = console(ProviderKind.OPENAI_COMPATIBLE.value)
    upstream = Upstream()
    async with upstream.client(AccountAuth(account, clock=FakeClock(NOW))) as client:
        with pytest.raises(UnsupportedRequestError, match="does not translate"):
            await client.post("/v1/messages", json=MESSAGE)
    assert upstream.requests == []
