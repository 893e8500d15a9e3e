"""Anthropic-compatible endpoints: plain URL or JSON config, configurable auth header."""

from __future__ import annotations

import pytest

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import (
    AccountConfigError,
    ClientRequest,
    RateLimitKind,
    UpstreamRequest,
)
from better_ccflare.providers._anthropic_compatible import (
    AnthropicCompatibleProvider,
    CustomEndpoint,
    parse_custom_endpoint,
)

NOW_MS = 1_767_225_600_000
BODY = b'{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'


def compatible_account(custom_endpoint: str | None, *, api_key: str | None = "gw-key") -> Account:
    return Account(
        id="acc-compat",
        name="gateway",
        provider="anthropic-compatible",
        created_at_ms=0,
        credentials=Credentials(api_key=api_key),
        custom_endpoint=custom_endpoint,
    )


def build(account: Account) -> UpstreamRequest:
    return AnthropicCompatibleProvider().build_request(
        ClientRequest(
            method="POST",
            path="/v1/messages",
            query="",
            headers={"authorization": "Bearer proxy", "anthropic-version": "2023-06-01"},
            body=BODY,
        ),
        account,
        account.credentials,
    )


def test_plain_url_endpoint_with_default_x_api_key() -> None:
    request = build(compatible_account("http://127.0.0.1:11434"))
    assert request.url == "http://127.0.0.1:11434/v1/messages"
    assert request.headers["x-api-key"] == "gw-key"
    assert "authorization" not in request.headers


def test_default_endpoint_without_custom_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build(compatible_account(None)).url == "https://api.anthropic.com/v1/messages"
    monkeypatch.setenv("ANTHROPIC_COMPATIBLE_BASE_URL", "https://compat.example")
    assert build(compatible_account(None)).url == "https://compat.example/v1/messages"


@pytest.mark.parametrize("header", ["authorization", "Authorization", "AUTHORIZATION"])
def test_authorization_header_gets_bearer_in_any_case(header: str) -> None:
    request = build(
        compatible_account(f'{{"endpoint": "https://openrouter.ai/api", "authHeader": "{header}"}}')
    )
    assert request.url == "https://openrouter.ai/api/v1/messages"
    assert request.headers["authorization"] == "Bearer gw-key"
    assert "x-api-key" not in request.headers


def test_other_header_gets_the_raw_key() -> None:
    request = build(
        compatible_account('{"endpoint": "https://gw.example", "authHeader": "X-Gateway-Token"}')
    )
    assert request.headers["x-gateway-token"] == "gw-key"
    assert "x-api-key" not in request.headers


def test_json_without_endpoint_uses_the_default_base() -> None:
    assert parse_custom_endpoint(
        compatible_account('{"authHeader": "x-api-key"}')
    ) == CustomEndpoint(auth_header="x-api-key")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a url", "not an http"),
        ("{not json", "not valid JSON"),
        ('{"endpoint": 5}', "not valid JSON"),
        (
            '{"endpoint": "https://gw.example", "authHeader": "bad header"}',
            "not an HTTP header name",
        ),
    ],
)
def test_bad_custom_endpoint_is_an_account_error(raw: str, message: str) -> None:
    with pytest.raises(AccountConfigError, match=message):
        build(compatible_account(raw))


def test_missing_key_is_an_account_error() -> None:
    with pytest.raises(AccountConfigError, match="no API key"):
        build(compatible_account("https://gw.example", api_key=None))


def test_unified_rate_limit_headers_are_honoured() -> None:
    info = AnthropicCompatibleProvider().classify_rate_limit(
        status=429,
        headers={
            "anthropic-ratelimit-unified-status": "rate_limited",
            "anthropic-ratelimit-unified-reset": str(NOW_MS // 1000 + 60),
        },
        body=None,
        now_ms=NOW_MS,
    )
    assert (info.kind, info.reset_at_ms) == (RateLimitKind.ACCOUNT_QUOTA, NOW_MS + 60_000)


def test_stream_usage_is_read() -> None:
    parser = AnthropicCompatibleProvider().usage_parser(streaming=True)
    parser.feed(
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"model":"qwen3-coder",'
        b'"usage":{"input_tokens":9,"output_tokens":0}}}\n\n'
        b"event: message_delta\n"
        b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":4}}\n\n'
    )
    assert parser.result().usage.total_tokens == 13
