"""Minimax: fixed Anthropic-compatible endpoint, x-api-key, token-plan polling."""

from __future__ import annotations

import json

import httpx2

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import ClientRequest, RateLimitKind, UpstreamRequest
from better_ccflare.providers._minimax import MinimaxProvider, parse_minimax_usage

NOW_MS = 1_767_225_600_000
BODY = b'{"model":"MiniMax-M2","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]}'


def minimax_account(*, model_mappings: dict[str, tuple[str, ...]] | None = None) -> Account:
    return Account(
        id="acc-minimax",
        name="minimax-plan",
        provider="minimax",
        created_at_ms=0,
        credentials=Credentials(api_key="mm-key"),
        model_mappings=model_mappings or {},
    )


def build(account: Account, body: bytes = BODY) -> UpstreamRequest:
    return MinimaxProvider().build_request(
        ClientRequest(
            method="POST",
            path="/v1/messages",
            query="",
            headers={"x-api-key": "proxy", "anthropic-version": "2023-06-01"},
            body=body,
        ),
        account,
        account.credentials,
    )


def test_url_and_key() -> None:
    request = build(minimax_account())
    assert request.url == "https://api.minimax.io/anthropic/v1/messages"
    assert request.headers["x-api-key"] == "mm-key"
    assert request.body is BODY


def test_claude_models_map_to_minimax() -> None:
    body = b'{"model":"claude-opus-4-1-20250805","max_tokens":1}'
    request = build(minimax_account(model_mappings={"opus": ("MiniMax-M2",)}), body)
    assert json.loads(request.body) == {"model": "MiniMax-M2", "max_tokens": 1}


def test_429_without_reset_is_request_scoped() -> None:
    info = MinimaxProvider().classify_rate_limit(
        status=429,
        headers={"content-type": "application/json"},
        body=b'{"type":"error","error":{"type":"rate_limit_error","message":"exceeded(RPM)"}}',
        now_ms=NOW_MS,
    )
    assert info.kind is RateLimitKind.REQUEST_SCOPED


def test_json_usage_is_read() -> None:
    parser = MinimaxProvider().usage_parser(streaming=False)
    parser.feed(
        b'{"id":"05b8c3f1","type":"message","role":"assistant","model":"MiniMax-M2",'
        b'"content":[{"type":"thinking","thinking":"..."},{"type":"text","text":"Hello"}],'
        b'"stop_reason":"end_turn","usage":{"input_tokens":41,"output_tokens":120}}'
    )
    result = parser.result()
    assert (result.model, result.usage.input_tokens, result.usage.output_tokens) == (
        "MiniMax-M2",
        41,
        120,
    )


async def test_token_plan_is_polled_with_the_api_key() -> None:
    payload = {
        "model_remains": [
            {
                "model_name": "general",
                "current_interval_remaining_percent": 70,
                "end_time": NOW_MS + 3_600_000,
            }
        ],
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }
    seen: list[httpx2.Request] = []

    def remains(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=payload)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(remains)) as client:
        windows = await MinimaxProvider().fetch_usage(minimax_account(), client, NOW_MS)
    assert str(seen[0].url) == "https://www.minimax.io/v1/token_plan/remains"
    assert seen[0].headers["authorization"] == "Bearer mm-key"
    assert windows == parse_minimax_usage(json.dumps(payload).encode(), now_ms=NOW_MS)
    assert windows[0].utilization == 30
