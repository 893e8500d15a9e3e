"""Claude subscriptions over OAuth: request shape, refresh, usage, limits and stream usage."""

from __future__ import annotations

import json

import httpx2
import pytest

from better_ccflare.core import Account, Credentials, UsageWindow
from better_ccflare.providers import (
    AccountConfigError,
    ClientRequest,
    RateLimitKind,
    UpstreamRequest,
)
from better_ccflare.providers._claude_oauth import ClaudeOAuthProvider
from better_ccflare.providers._oauth import ReauthRequiredError

NOW_MS = 1_767_225_600_000
TOKEN = "sk-ant-oat01-access"
BODY = json.dumps(
    {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()
CLIENT_HEADERS = {
    "authorization": "Bearer proxy-key",
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "user-agent": "claude-cli/2.1.238 (external, cli)",
    "x-stainless-retry-count": "0",
    "x-better-ccflare-account-id": "other",
}


def claude_account(
    *,
    custom_endpoint: str | None = None,
    model_mappings: dict[str, tuple[str, ...]] | None = None,
    credentials: Credentials | None = None,
) -> Account:
    return Account(
        id="acc-claude",
        name="max-1",
        provider="anthropic",
        created_at_ms=0,
        custom_endpoint=custom_endpoint,
        model_mappings=model_mappings or {},
        credentials=credentials
        or Credentials(access_token=TOKEN, refresh_token="rt-1", expires_at_ms=NOW_MS + 3_600_000),
    )


def build(
    account: Account, *, headers: dict[str, str] | None = None, query: str = "beta=true"
) -> UpstreamRequest:
    return ClaudeOAuthProvider().build_request(
        ClientRequest(
            method="POST",
            path="/v1/messages",
            query=query,
            headers=CLIENT_HEADERS if headers is None else headers,
            body=BODY,
        ),
        account,
        account.credentials,
    )


def test_url_is_the_anthropic_api_with_path_and_query() -> None:
    assert build(claude_account()).url == "https://api.anthropic.com/v1/messages?beta=true"
    assert build(claude_account(), query="").url == "https://api.anthropic.com/v1/messages"


def test_endpoint_override_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_CCFLARE_ANTHROPIC_API_URL", "http://127.0.0.1:9/")
    assert build(claude_account(), query="").url == "http://127.0.0.1:9/v1/messages"


def test_custom_endpoint_replaces_the_base() -> None:
    request = build(claude_account(custom_endpoint="https://claude-gw.corp.example/"), query="")
    assert request.url == "https://claude-gw.corp.example/v1/messages"


def test_invalid_custom_endpoint_is_an_account_error() -> None:
    with pytest.raises(AccountConfigError, match=r"'max-1'.*not an http"):
        build(claude_account(custom_endpoint="ftp://nope"))


def test_bearer_token_and_oauth_beta_appended() -> None:
    headers = build(claude_account()).headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["anthropic-beta"] == (
        "claude-code-20250219,interleaved-thinking-2025-05-14,oauth-2025-04-20"
    )
    assert "x-api-key" not in headers


def test_oauth_beta_created_when_the_client_sent_none() -> None:
    headers = build(claude_account(), headers={"anthropic-version": "2023-06-01"}).headers
    assert headers["anthropic-beta"] == "oauth-2025-04-20"


def test_client_headers_pass_through_and_control_headers_do_not() -> None:
    headers = build(claude_account()).headers
    assert headers["user-agent"] == "claude-cli/2.1.238 (external, cli)"
    assert headers["x-stainless-retry-count"] == "0"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "x-better-ccflare-account-id" not in headers


def test_body_is_forwarded_byte_for_byte_without_mapping() -> None:
    assert build(claude_account()).body is BODY


def test_model_mapping_rewrites_the_body() -> None:
    request = build(claude_account(model_mappings={"sonnet": ("claude-opus-4-1-20250805",)}))
    assert json.loads(request.body)["model"] == "claude-opus-4-1-20250805"
    assert request.client_model == "claude-sonnet-4-5-20250929"


def test_missing_access_token_is_an_account_error() -> None:
    account = claude_account(credentials=Credentials(refresh_token="rt"))
    with pytest.raises(AccountConfigError, match="no OAuth access token"):
        build(account)


def test_plan_limit_429_is_an_account_quota() -> None:
    info = ClaudeOAuthProvider().classify_rate_limit(
        status=429,
        headers={
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(NOW_MS // 1000 + 7200),
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
        },
        body=b'{"type":"error","error":{"type":"rate_limit_error","message":"rate limited"}}',
        now_ms=NOW_MS,
    )
    assert (info.kind, info.reset_at_ms, info.window) == (
        RateLimitKind.ACCOUNT_QUOTA,
        NOW_MS + 7_200_000,
        "five_hour",
    )


def test_stream_usage_is_read() -> None:
    parser = ClaudeOAuthProvider().usage_parser(streaming=True)
    parser.feed(
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"id":"msg_1","type":"message",'
        b'"role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,'
        b'"usage":{"input_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":20950,'
        b'"output_tokens":2}}}\n\nevent: ping\ndata: {"type": "ping"}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
        b'"stop_sequence":null},"usage":{"output_tokens":141}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    result = parser.result()
    assert (result.usage.input_tokens, result.usage.cache_read_input_tokens) == (3, 20950)
    assert result.usage.output_tokens == 141


async def test_refresh_uses_the_refresh_token_and_keeps_unrotated_issue_time() -> None:
    seen: list[dict[str, str]] = []

    def token_endpoint(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(200, json={"access_token": "new-at", "expires_in": 28800})

    account = claude_account(
        credentials=Credentials(
            access_token="old", refresh_token="rt-1", refresh_token_issued_at_ms=NOW_MS - 1000
        )
    )
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(token_endpoint)) as client:
        fresh = await ClaudeOAuthProvider(client_id="client-x").refresh_credentials(
            account, client, NOW_MS
        )
    assert seen == [
        {"grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": "client-x"}
    ]
    assert fresh.access_token == "new-at"
    assert fresh.refresh_token == "rt-1"
    assert fresh.expires_at_ms == NOW_MS + 28_800_000
    assert fresh.refresh_token_issued_at_ms == NOW_MS - 1000


async def test_refresh_records_a_rotated_refresh_token() -> None:
    def token_endpoint(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, json={"access_token": "at", "refresh_token": "rt-2", "expires_in": 3600}
        )

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(token_endpoint)) as client:
        fresh = await ClaudeOAuthProvider().refresh_credentials(claude_account(), client, NOW_MS)
    assert (fresh.refresh_token, fresh.refresh_token_issued_at_ms) == ("rt-2", NOW_MS)


async def test_dead_refresh_token_requires_reauth() -> None:
    def token_endpoint(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(400, json={"error": "invalid_grant", "error_description": "bad"})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(token_endpoint)) as client:
        with pytest.raises(ReauthRequiredError):
            await ClaudeOAuthProvider().refresh_credentials(claude_account(), client, NOW_MS)


async def test_refresh_without_refresh_token_is_an_account_error() -> None:
    account = claude_account(credentials=Credentials(access_token="at"))
    async with httpx2.AsyncClient(
        transport=httpx2.MockTransport(lambda r: httpx2.Response(500))
    ) as client:
        with pytest.raises(AccountConfigError, match="no refresh token"):
            await ClaudeOAuthProvider().refresh_credentials(account, client, NOW_MS)


async def test_usage_windows_come_from_the_oauth_usage_endpoint() -> None:
    requests: list[httpx2.Request] = []

    def usage_endpoint(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        return httpx2.Response(
            200,
            json={
                "five_hour": {"utilization": 37.0, "resets_at": "2026-01-01T03:00:00+00:00"},
                "seven_day": {"utilization": 12.0, "resets_at": None},
            },
        )

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(usage_endpoint)) as client:
        windows = await ClaudeOAuthProvider().fetch_usage(claude_account(), client, NOW_MS)
    assert requests[0].url == "https://api.anthropic.com/api/oauth/usage"
    assert requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert {w.key: w for w in windows} == {
        "five_hour": UsageWindow(
            key="five_hour", utilization=37.0, resets_at_ms=NOW_MS + 10_800_000
        ),
        "seven_day": UsageWindow(key="seven_day", utilization=12.0),
    }


@pytest.mark.parametrize(
    ("credentials", "needed"),
    [
        (Credentials(access_token="at", expires_at_ms=NOW_MS + 3_600_000), False),
        (Credentials(access_token="at", expires_at_ms=NOW_MS + 29 * 60_000), True),
        (Credentials(refresh_token="rt"), True),
    ],
)
def test_refresh_is_needed_without_a_token_or_within_30_minutes_of_expiry(
    credentials: Credentials, needed: bool
) -> None:
    assert ClaudeOAuthProvider().needs_refresh(credentials, NOW_MS) is needed
