"""NanoGPT: default or custom endpoint, x-api-key, daily/monthly usage from the same base."""

from __future__ import annotations

import json

import httpx2

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import ClientRequest, RateLimitKind, UpstreamRequest
from better_ccflare.providers._nanogpt import NanoGptProvider, parse_nanogpt_usage

NOW_MS = 1_767_225_600_000
BODY = b'{"model":"moonshotai/kimi-k2-thinking","max_tokens":2048,"stream":true,"messages":[]}'
USAGE = {
    "active": True,
    "limits": {"daily": 5000, "monthly": 60000},
    "daily": {"used": 500, "remaining": 4500, "percentUsed": 0.1, "resetAt": NOW_MS + 3_600_000},
    "monthly": {
        "used": 6000,
        "remaining": 54000,
        "percentUsed": 0.1,
        "resetAt": NOW_MS + 86_400_000,
    },
    "state": "active",
}


def nanogpt_account(*, custom_endpoint: str | None = None) -> Account:
    return Account(
        id="acc-nano",
        name="nano",
        provider="nanogpt",
        created_at_ms=0,
        credentials=Credentials(api_key="nano-key"),
        custom_endpoint=custom_endpoint,
    )


def build(account: Account) -> UpstreamRequest:
    return NanoGptProvider().build_request(
        ClientRequest(
            method="POST",
            path="/v1/messages",
            query="",
            headers={"anthropic-version": "2023-06-01", "cookie": "a=b"},
            body=BODY,
        ),
        account,
        account.credentials,
    )


def test_default_url_and_key() -> None:
    request = build(nanogpt_account())
    assert request.url == "https://nano-gpt.com/api/v1/messages"
    assert request.headers == {
        "anthropic-version": "2023-06-01",
        "accept-encoding": "identity",
        "x-api-key": "nano-key",
    }
    assert request.body is BODY


def test_custom_endpoint_is_honoured() -> None:
    account = nanogpt_account(custom_endpoint="https://eu.nano-gpt.example/api/")
    assert build(account).url == "https://eu.nano-gpt.example/api/v1/messages"


def test_overloaded_529() -> None:
    info = NanoGptProvider().classify_rate_limit(
        status=529, headers={"retry-after": "10"}, body=None, now_ms=NOW_MS
    )
    assert (info.kind, info.reset_at_ms) == (RateLimitKind.OVERLOADED, NOW_MS + 10_000)


def test_stream_usage_is_read() -> None:
    parser = NanoGptProvider().usage_parser(streaming=True)
    parser.feed(
        b"event: message_start\r\n"
        b'data: {"type":"message_start","message":{"id":"msg_n","type":"message",'
        b'"role":"assistant","model":"moonshotai/kimi-k2-thinking","content":[],'
        b'"usage":{"input_tokens":812,"output_tokens":1}}}\r\n\r\n'
        b"event: message_delta\r\n"
        b'data: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
        b'"usage":{"output_tokens":2048}}\r\n\r\n'
    )
    result = parser.result()
    assert (result.model, result.usage.output_tokens, result.stop_reason) == (
        "moonshotai/kimi-k2-thinking",
        2048,
        "max_tokens",
    )


async def test_usage_comes_from_the_custom_base() -> None:
    seen: list[httpx2.Request] = []

    def usage(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=USAGE)

    account = nanogpt_account(custom_endpoint="https://eu.nano-gpt.example/api")
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(usage)) as client:
        windows = await NanoGptProvider().fetch_usage(account, client, NOW_MS)
    assert str(seen[0].url) == "https://eu.nano-gpt.example/api/subscription/v1/usage"
    assert seen[0].headers["x-api-key"] == "nano-key"
    assert windows == parse_nanogpt_usage(json.dumps(USAGE).encode())


async def test_usage_uses_the_default_base_without_custom_endpoint() -> None:
    seen: list[str] = []

    def usage(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(200, json=USAGE)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(usage)) as client:
        await NanoGptProvider().fetch_usage(nanogpt_account(), client, NOW_MS)
    assert seen == ["https://nano-gpt.com/api/subscription/v1/usage"]
