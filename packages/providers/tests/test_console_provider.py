"""Anthropic console API keys: the key goes in x-api-key, never as an OAuth bearer."""

from __future__ import annotations

import json

import pytest

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import (
    AccountConfigError,
    ClientRequest,
    RateLimitKind,
    UpstreamRequest,
)
from better_ccflare.providers._console import ConsoleProvider

NOW_MS = 1_767_225_600_000
BODY = json.dumps(
    {
        "model": "claude-haiku-4-5-20251001",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "2+2?"}],
    }
).encode()


def console_account(
    *,
    api_key: str | None = "sk-ant-api03-key",
    custom_endpoint: str | None = None,
    model_mappings: dict[str, tuple[str, ...]] | None = None,
) -> Account:
    return Account(
        id="acc-console",
        name="console-1",
        provider="claude-console-api",
        created_at_ms=0,
        credentials=Credentials(api_key=api_key),
        custom_endpoint=custom_endpoint,
        model_mappings=model_mappings or {},
    )


def build(account: Account, path: str = "/v1/messages", query: str = "") -> UpstreamRequest:
    return ConsoleProvider().build_request(
        ClientRequest(
            method="POST",
            path=path,
            query=query,
            headers={
                "x-api-key": "client-proxy-key",
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "prompt-caching-2024-07-31",
                "content-type": "application/json",
            },
            body=BODY,
        ),
        account,
        account.credentials,
    )


def test_url_is_the_anthropic_api() -> None:
    assert build(console_account()).url == "https://api.anthropic.com/v1/messages"
    assert (
        build(console_account(), "/v1/messages/count_tokens", "beta=true").url
        == "https://api.anthropic.com/v1/messages/count_tokens?beta=true"
    )


def test_custom_endpoint_for_an_enterprise_gateway() -> None:
    account = console_account(custom_endpoint="https://llm-gw.corp.example/anthropic")
    assert build(account).url == "https://llm-gw.corp.example/anthropic/v1/messages"


def test_key_is_sent_as_x_api_key_not_bearer() -> None:
    headers = build(console_account()).headers
    assert headers["x-api-key"] == "sk-ant-api03-key"
    assert "authorization" not in headers


def test_no_oauth_beta_is_added() -> None:
    assert build(console_account()).headers["anthropic-beta"] == "prompt-caching-2024-07-31"


def test_body_untouched_and_mapped_when_configured() -> None:
    assert build(console_account()).body is BODY
    mapped = build(console_account(model_mappings={"haiku": ("claude-sonnet-4-5-20250929",)}))
    assert json.loads(mapped.body)["model"] == "claude-sonnet-4-5-20250929"


def test_missing_key_is_an_account_error() -> None:
    with pytest.raises(AccountConfigError, match=r"'console-1'.*no API key"):
        build(console_account(api_key=None))


def test_per_minute_429_uses_retry_after() -> None:
    info = ConsoleProvider().classify_rate_limit(
        status=429,
        headers={
            "retry-after": "23",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:23Z",
            "x-should-retry": "true",
        },
        body=b'{"type":"error","error":{"type":"rate_limit_error","message":"input tokens/min"}}',
        now_ms=NOW_MS,
    )
    assert (info.kind, info.reset_at_ms) == (RateLimitKind.ACCOUNT_QUOTA, NOW_MS + 23_000)


def test_json_usage_is_read() -> None:
    parser = ConsoleProvider().usage_parser(streaming=False)
    parser.feed(
        b'{"id":"msg_01","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001",'
        b'"content":[{"type":"text","text":"4"}],"stop_reason":"end_turn","stop_sequence":null,'
        b'"usage":{"input_tokens":14,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
        b'"output_tokens":5,"service_tier":"standard"}}'
    )
    result = parser.result()
    assert (result.model, result.usage.input_tokens, result.usage.output_tokens) == (
        "claude-haiku-4-5-20251001",
        14,
        5,
    )


def test_api_keys_never_need_refresh() -> None:
    assert not ConsoleProvider().needs_refresh(Credentials(api_key="k"), NOW_MS)
