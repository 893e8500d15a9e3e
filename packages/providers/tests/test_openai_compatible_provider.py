"""The openai-compatible provider: URLs, headers, bodies, rate limits, response handling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import (
    AccountConfigError,
    ClientRequest,
    RateLimitInfo,
    RateLimitKind,
    UnsupportedRequestError,
    UpstreamRequest,
)
from better_ccflare.providers._openai_compatible import (
    OpenAICompatibleProvider,
    classify_openai_rate_limit,
)
from better_ccflare.providers._openai_response import OpenAIJsonTransformer
from better_ccflare.providers._openai_stream import OpenAIStreamTransformer

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
NOW_MS = 1_750_000_000_000
KEY = Credentials(api_key="sk-proj-test")
MESSAGES_BODY = json.dumps(
    {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
).encode()


def account(**fields: Any) -> Account:
    return Account(id="a1", name="openai", provider="openai-compatible", created_at_ms=0, **fields)


def build(
    path: str = "/v1/messages",
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = MESSAGES_BODY,
    account_: Account | None = None,
    credentials: Credentials = KEY,
) -> UpstreamRequest:
    return OpenAICompatibleProvider().build_request(
        ClientRequest(
            method="POST",
            path=path,
            query=query,
            headers=headers or {},
            body=body,
        ),
        account_ or account(),
        credentials,
    )


@pytest.fixture(autouse=True)
def _no_endpoint_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BETTER_CCFLARE_OPENAI_COMPATIBLE_BASE_URL", raising=False)


def test_identity() -> None:
    assert OpenAICompatibleProvider.id == "openai-compatible"
    assert OpenAICompatibleProvider.display_name == "OpenAI-compatible"


# -- URLs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("custom_endpoint", "base"),
    [
        (None, "https://api.openai.com"),
        ("", "https://api.openai.com"),
        ("https://openrouter.ai/api/v1/", "https://openrouter.ai/api/v1"),
        ('{"endpoint": "http://localhost:11434/v1"}', "http://localhost:11434/v1"),
        ('{"endpoint": ""}', "https://api.openai.com"),
        ('{"region": "x"}', "https://api.openai.com"),
    ],
)
def test_base_url_comes_from_the_custom_endpoint_else_the_default(
    custom_endpoint: str | None, base: str
) -> None:
    assert OpenAICompatibleProvider().base_url(account(custom_endpoint=custom_endpoint)) == base


@pytest.mark.parametrize("custom_endpoint", ["{not json", "api.openai.com", "ftp://host"])
def test_an_invalid_custom_endpoint_is_an_account_config_error(custom_endpoint: str) -> None:
    with pytest.raises(AccountConfigError, match="custom_endpoint"):
        OpenAICompatibleProvider().base_url(account(custom_endpoint=custom_endpoint))


def test_default_base_url_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_CCFLARE_OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:9999/")
    assert OpenAICompatibleProvider().base_url(account()) == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("custom_endpoint", "path", "query", "url"),
    [
        (None, "/v1/messages", "beta=true", "https://api.openai.com/v1/chat/completions"),
        (
            "https://api.groq.com/openai/v1",
            "/v1/messages",
            "",
            "https://api.groq.com/openai/v1/chat/completions",
        ),
        ("http://localhost:8000", "/v1/messages", "", "http://localhost:8000/v1/chat/completions"),
        (None, "/v1/models", "limit=5", "https://api.openai.com/v1/models?limit=5"),
        ("https://openrouter.ai/api/v1", "/v1/models", "", "https://openrouter.ai/api/v1/models"),
        ("https://host/v1", "/v1beta/x", "", "https://host/v1/v1beta/x"),
    ],
)
def test_upstream_url(custom_endpoint: str | None, path: str, query: str, url: str) -> None:
    request = build(path, query=query, account_=account(custom_endpoint=custom_endpoint))
    assert request.url == url


# -- headers ---------------------------------------------------------------------------------------

CLIENT_HEADERS = {
    "host": "localhost:8080",
    "content-length": "123",
    "connection": "keep-alive",
    "authorization": "Bearer proxy-key",
    "x-api-key": "sk-ant-client",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "anthropic-dangerous-direct-browser-access": "true",
    "x-better-ccflare-account-id": "a2",
    "x-better-ccflare-project": "demo",
    "accept-encoding": "gzip, br",
    "user-agent": "claude-cli/2.0.14 (external, cli)",
    "x-stainless-lang": "js",
    "accept": "application/json",
}


def test_client_credentials_anthropic_and_control_headers_are_dropped_and_the_key_is_a_bearer() -> (
    None
):
    assert build(headers=CLIENT_HEADERS).headers == {
        "authorization": "Bearer sk-proj-test",
        "content-type": "application/json",
        "accept-encoding": "identity",
        "user-agent": "claude-cli/2.0.14 (external, cli)",
        "x-stainless-lang": "js",
        "accept": "application/json",
    }


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/models"])
def test_an_account_without_an_api_key_is_an_account_config_error(path: str) -> None:
    with pytest.raises(AccountConfigError, match="no API key"):
        build(path, credentials=Credentials(access_token="tok"))


def test_other_paths_get_the_same_headers() -> None:
    headers = build("/v1/models", headers=CLIENT_HEADERS).headers
    assert headers["authorization"] == "Bearer sk-proj-test"
    assert not any(name.startswith(("anthropic-", "x-better-ccflare-")) for name in headers)


# -- bodies ----------------------------------------------------------------------------------------


def test_messages_body_is_translated() -> None:
    body = msgspec.json.decode(build().body)
    assert body == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 100,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Hi"}],
    }


@pytest.mark.parametrize(
    ("mappings", "model"),
    [
        ({}, "claude-sonnet-4-5-20250929"),
        ({"sonnet": ("gpt-4o", "gpt-4o-mini")}, "gpt-4o"),
        ({"sonnet": ("gpt-4o",), "claude-sonnet-4-5-20250929": ("o3",)}, "o3"),
        ({"opus": ("gpt-5",)}, "claude-sonnet-4-5-20250929"),
    ],
)
def test_model_is_mapped_with_the_accounts_mappings(
    mappings: dict[str, tuple[str, ...]], model: str
) -> None:
    request = build(account_=account(model_mappings=mappings))
    assert msgspec.json.decode(request.body)["model"] == model
    assert request.client_model == "claude-sonnet-4-5-20250929"
    assert request.upstream_model == model


def test_other_paths_forward_the_body_unchanged() -> None:
    body = b'{"limit": 5}'
    assert build("/v1/models", body=body).body == body


def test_count_tokens_is_unsupported_so_the_proxy_tries_another_account() -> None:
    with pytest.raises(UnsupportedRequestError, match="count_tokens"):
        build("/v1/messages/count_tokens")


@pytest.mark.parametrize("body", [b"not json", b"[]", b""])
def test_a_messages_body_that_is_not_a_json_object_is_unsupported(body: bytes) -> None:
    with pytest.raises(UnsupportedRequestError, match="/v1/messages request body"):
        build(body=body)


# -- responses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "content_type", "transformer"),
    [
        ("/v1/messages", 200, "text/event-stream; charset=utf-8", OpenAIStreamTransformer),
        ("/v1/messages", 200, "application/json", OpenAIJsonTransformer),
        ("/v1/messages", 429, "application/json", OpenAIJsonTransformer),
        ("/v1/messages", 500, "text/html", OpenAIJsonTransformer),
        ("/v1/models", 200, "application/json", type(None)),
        ("/v1/messages/count_tokens", 404, "application/json", OpenAIJsonTransformer),
    ],
)
def test_response_transformer_selection(
    path: str, status: int, content_type: str, transformer: type
) -> None:
    chosen = OpenAICompatibleProvider().response_transformer(
        path=path, status=status, headers={"content-type": content_type}, request=build()
    )
    assert isinstance(chosen, transformer)


def test_usage_is_read_off_the_translated_stream() -> None:
    provider = OpenAICompatibleProvider()
    transformer = provider.response_transformer(
        path="/v1/messages",
        status=200,
        headers={"content-type": "text/event-stream"},
        request=build(),
    )
    assert transformer is not None
    parser = provider.usage_parser(streaming=True)
    raw = (FIXTURES / "parallel_tool_calls.sse").read_bytes()
    for piece in (raw[:1000], raw[1000:], b""):
        parser.feed(transformer.feed(piece) if piece else transformer.close())
    result = parser.result()
    assert result.model == "gpt-4o-2024-08-06"
    assert result.stop_reason == "tool_use"
    assert (
        result.usage.input_tokens,
        result.usage.cache_read_input_tokens,
        result.usage.output_tokens,
    ) == (212, 1024, 49)


# -- rate limits -----------------------------------------------------------------------------------

OPENAI_429_HEADERS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-remaining-tokens": "0",
    "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-reset-tokens": "6m0s",
}


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, OPENAI_429_HEADERS, None, RateLimitInfo()),
        (429, {}, None, RateLimitInfo(kind=RateLimitKind.REQUEST_SCOPED)),
        (429, {"retry-after": "0"}, None, RateLimitInfo(kind=RateLimitKind.REQUEST_SCOPED)),
        (429, {"retry-after": "garbage"}, None, RateLimitInfo(kind=RateLimitKind.REQUEST_SCOPED)),
        (
            429,
            {"retry-after": "20"},
            None,
            RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA, reset_at_ms=NOW_MS + 20_000),
        ),
        (
            429,
            {"retry-after": "Sun, 15 Jun 2025 15:07:00 GMT"},
            None,
            RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA, reset_at_ms=1_750_000_020_000),
        ),
        (
            429,
            OPENAI_429_HEADERS,
            None,
            RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA, reset_at_ms=NOW_MS + 360_000),
        ),
        (
            429,
            OPENAI_429_HEADERS
            | {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "10"},
            None,
            RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA, reset_at_ms=NOW_MS + 120),
        ),
        (
            429,
            {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "1.5s"},
            None,
            RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA, reset_at_ms=NOW_MS + 1_500),
        ),
        (
            429,
            OPENAI_429_HEADERS,
            b'{"error": {"message": "You exceeded your quota", "type": "insufficient_quota"}}',
            RateLimitInfo(kind=RateLimitKind.OUT_OF_CREDITS),
        ),
        (529, {}, None, RateLimitInfo(kind=RateLimitKind.OVERLOADED)),
        (
            529,
            {"retry-after": "5"},
            None,
            RateLimitInfo(kind=RateLimitKind.OVERLOADED, reset_at_ms=NOW_MS + 5_000),
        ),
        (
            503,
            {},
            b'{"error": {"message": "The engine is currently overloaded"}}',
            RateLimitInfo(kind=RateLimitKind.OVERLOADED),
        ),
        (503, {}, b"Service Unavailable", RateLimitInfo()),
        (500, {"retry-after": "5"}, None, RateLimitInfo()),
    ],
)
def test_rate_limit_classification(
    status: int, headers: dict[str, str], body: bytes | None, expected: RateLimitInfo
) -> None:
    info = OpenAICompatibleProvider().classify_rate_limit(
        status=status, headers=headers, body=body, now_ms=NOW_MS
    )
    assert info == expected


@pytest.mark.parametrize(
    ("duration", "reset_in_ms"),
    [
        ("1s", 1_000),
        ("6m0s", 360_000),
        ("20ms", 20),
        ("1h2m3.5s", 3_723_500),
        ("1.1s", 1_100),
        ("250us", 1),
        ("2", 2_000),
        ("0s", None),
        ("soon", None),
        ("1x", None),
        ("s", None),
        ("1s 2m", None),
        ("-1", None),
        ("", None),
    ],
)
def test_openai_reset_durations(duration: str, reset_in_ms: int | None) -> None:
    info = classify_openai_rate_limit(
        status=429, headers={"x-ratelimit-reset-tokens": duration}, now_ms=NOW_MS
    )
    assert info.reset_at_ms == (None if reset_in_ms is None else NOW_MS + reset_in_ms)
