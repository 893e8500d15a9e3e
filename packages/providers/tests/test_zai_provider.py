"""z.ai: fixed Anthropic-compatible endpoint, x-api-key, quota 429 bodies, usage polling."""

from __future__ import annotations

import json

import httpx2
import pytest

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import ClientRequest, RateLimitKind, UpstreamRequest
from better_ccflare.providers._zai import ZaiProvider, parse_zai_usage

NOW_MS = 1_767_225_600_000
BODY = json.dumps(
    {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 8192,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()


def zai_account(*, model_mappings: dict[str, tuple[str, ...]] | None = None) -> Account:
    return Account(
        id="acc-zai",
        name="zai-coding",
        provider="zai",
        created_at_ms=0,
        credentials=Credentials(api_key="zai-key.abc"),
        custom_endpoint="https://ignored.example",
        model_mappings=model_mappings or {},
    )


def build(account: Account) -> UpstreamRequest:
    return ZaiProvider().build_request(
        ClientRequest(
            method="POST",
            path="/v1/messages",
            query="beta=true",
            headers={
                "authorization": "Bearer proxy",
                "anthropic-version": "2023-06-01",
                "accept-encoding": "gzip",
            },
            body=BODY,
        ),
        account,
        account.credentials,
    )


def test_url_is_the_fixed_zai_endpoint() -> None:
    assert build(zai_account()).url == "https://api.z.ai/api/anthropic/v1/messages?beta=true"


def test_url_override_for_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_CCFLARE_ZAI_BASE_URL", "http://127.0.0.1:9/anthropic")
    assert build(zai_account()).url == "http://127.0.0.1:9/anthropic/v1/messages?beta=true"


def test_headers_carry_the_key_and_identity_encoding() -> None:
    headers = build(zai_account()).headers
    assert headers["x-api-key"] == "zai-key.abc"
    assert headers["accept-encoding"] == "identity"
    assert "authorization" not in headers


def test_family_mapping_to_glm() -> None:
    request = build(zai_account(model_mappings={"sonnet": ("glm-4.6",), "haiku": ("glm-4.5-air",)}))
    assert json.loads(request.body)["model"] == "glm-4.6"
    assert request.upstream_model == "glm-4.6"


def test_quota_429_body_gives_the_reset() -> None:
    info = ZaiProvider().classify_rate_limit(
        status=429,
        headers={"content-type": "application/json"},
        body=json.dumps(
            {
                "type": "error",
                "error": {
                    "type": "1308",
                    "code": "1308",
                    "message": "Usage limit reached for 5 hour. "
                    "Your limit will reset at 2026-01-01 10:00:00",
                },
            }
        ).encode(),
        now_ms=NOW_MS,
    )
    assert (info.kind, info.reset_at_ms) == (RateLimitKind.ACCOUNT_QUOTA, NOW_MS + 2 * 3_600_000)


def test_glm_stream_usage_arrives_in_message_delta() -> None:
    parser = ZaiProvider().usage_parser(streaming=True)
    for chunk in (
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"id":"msg_2026","type":"message",'
        b'"role":"assistant","model":"glm-4.6","content":[],"stop_reason":null,'
        b'"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}\n\n',
        b"event: content_block_start\n"
        b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
        b"\n\n",
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}'
        b"\n\n",
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
        b"event: message_delta\n"
        b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
        b'"usage":{"input_tokens":15234,"output_tokens":88,"cache_read_input_tokens":14848}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ):
        parser.feed(chunk)
    usage = parser.result().usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (
        15234,
        88,
        14848,
    )


async def test_usage_is_polled_with_the_api_key() -> None:
    payload = {
        "code": 200,
        "msg": "Operation successful",
        "success": True,
        "data": {
            "limits": [
                {
                    "type": "TOKENS_LIMIT",
                    "unit": 3,
                    "number": 5,
                    "percentage": 41,
                    "nextResetTime": NOW_MS + 3_600_000,
                }
            ]
        },
    }
    seen: list[httpx2.Request] = []

    def quota(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=payload)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(quota)) as client:
        windows = await ZaiProvider().fetch_usage(zai_account(), client, NOW_MS)
    assert str(seen[0].url) == "https://api.z.ai/api/monitor/usage/quota/limit"
    assert seen[0].headers["x-api-key"] == "zai-key.abc"
    assert windows == parse_zai_usage(json.dumps(payload).encode())
    assert windows[0].utilization == 41
