"""The proxy end to end: the real service under uvicorn on loopback, a fake Anthropic upstream
on loopback, and the official ``anthropic`` SDK as the client."""

from __future__ import annotations

import asyncio
import gc
import gzip
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import msgspec
import pytest

from better_ccflare.core import (
    Account,
    ApiKey,
    ApiKeyRole,
    Credentials,
    FakeClock,
    ProviderKind,
    RateLimitReason,
)
from better_ccflare.providers import ConsoleProvider
from better_ccflare.proxy import H1Transport, decode_payload, generate_api_key, hash_api_key

from .support.client import add_api_key, ask, ask_streaming, recorded, sdk, text_of
from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply
from .support.messages import MODEL, message_json, quota_429, stream_events
from .support.service import console_account, running_proxy


async def test_non_streaming_message_is_identical_to_a_direct_call(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json(), headers={"request-id": "req_1"}))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            via_proxy = await ask(url)
            direct = await ask(upstream.url)
            assert via_proxy.model_dump() == direct.model_dump()
            seen = upstream.requests[0]
            assert seen.headers["x-api-key"] == "sk-ant-api03-a"
            assert "client-key" not in str(seen.headers)
            [row] = await recorded(service)
            assert row.account_id == "a"
            assert row.status_code == 200
            assert row.usage.input_tokens == 12
            assert row.usage.output_tokens == 5
            assert row.usage.cache_read_input_tokens == 100
            # claude-sonnet-5: $3 in, $15 out, $0.30 cache read per million tokens.
            assert row.cost_usd == pytest.approx((12 * 3 + 5 * 15 + 100 * 0.3) / 1e6)


async def test_output_speed_is_streamed_tokens_over_generation_time(tmp_path: Path) -> None:
    """From the first content delta to the stream's end: not the wait before it (0.2 s here),
    and never for a non-streamed reply, whose body arrives at once."""
    words = ["One ", "two ", "three ", "four"]
    async with FakeUpstream() as upstream:
        # message_start, content_block_start, 4 deltas, block stop, message_delta, stop: 0.1 s
        # apart, so generation runs 0.6 s of the 0.8 s the stream takes.
        upstream.enqueue(Reply.stream(stream_events(words), spacing_s=0.1))
        upstream.enqueue(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            await ask_streaming(url, "Count")
            await ask(url)
            rows = await recorded(service, 2)
            [(streamed, speed)] = [
                (r, r.output_tokens_per_second) for r in rows if r.output_tokens_per_second
            ]
            assert streamed.usage.output_tokens == 4
            assert streamed.response_time_ms is not None
            assert streamed.response_time_ms >= 800
            assert 4 / 0.75 < speed < 4 / 0.55
            assert [r.output_tokens_per_second for r in rows].count(None) == 1


async def test_streamed_events_arrive_one_by_one_with_their_spacing(tmp_path: Path) -> None:
    words = ["One ", "two ", "three ", "four"]
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(stream_events(words), spacing_s=0.1))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            arrivals: list[tuple[float, str]] = []
            async with (
                sdk(url) as client,
                client.messages.stream(
                    model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Count"}]
                ) as stream,
            ):
                async for event in stream:
                    arrivals.append((time.monotonic(), event.type))
                final = await stream.get_final_message()
            assert text_of(final) == "".join(words)
            deltas = [t for t, kind in arrivals if kind == "text"]
            assert len(deltas) == 4
            gaps = [b - a for a, b in itertools.pairwise(deltas)]
            assert all(gap > 0.05 for gap in gaps), gaps
            [row] = await recorded(service)
            assert row.usage.input_tokens == 20
            assert row.usage.output_tokens == 4
            assert row.stream_terminal_state == "completed"


async def test_a_stream_missing_its_message_stop_reaches_the_sdk_whole(tmp_path: Path) -> None:
    """An upstream that sends the stop reason and then ends the stream: the proxy adds the
    ``message_stop`` the SDK waits for, and records the stream as recovered."""
    events = stream_events(["One ", "two"])[:-1]
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(events))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            async with (
                sdk(url) as client,
                client.messages.stream(
                    model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Count"}]
                ) as stream,
            ):
                kinds = [event.type async for event in stream]
                final = await stream.get_final_message()
            [row] = await recorded(service)
    assert kinds[-1] == "message_stop"
    assert (text_of(final), final.stop_reason) == ("One two", "end_turn")
    assert (row.stream_terminal_state, row.success) == ("recovered", True)


async def test_a_rate_limited_account_fails_over_and_cools_down_until_its_reset(
    tmp_path: Path,
) -> None:
    reset_s = int(time.time()) + 3600
    async with FakeUpstream() as limited, FakeUpstream() as healthy:
        limited.set_default(
            Reply.json(
                {"type": "error", "error": {"type": "rate_limit_error", "message": "limit"}},
                status=429,
                headers={
                    "anthropic-ratelimit-unified-status": "rejected",
                    "anthropic-ratelimit-unified-reset": str(reset_s),
                },
            )
        )
        healthy.set_default(Reply.json(message_json("from b")))
        accounts = (console_account("a", limited, priority=0), console_account("b", healthy, 1))
        async with running_proxy(tmp_path, *accounts) as (service, url):
            reply = await ask(url)
            assert text_of(reply) == "from b"
            again = await ask(url)
            assert text_of(again) == "from b"
            assert len(limited.requests) == 1
            benched = service.pool.get("a")
            assert benched is not None
            assert benched.rate_limit.limited_until_ms == reset_s * 1000
            assert benched.rate_limit.reason is RateLimitReason.UPSTREAM_429_WITH_RESET
            await service.pool.drain()
            stored = await service.store.accounts.get("a")
            assert stored is not None
            assert stored.rate_limit.limited_until_ms == reset_s * 1000


async def test_overloaded_and_dead_accounts_fail_over(tmp_path: Path) -> None:
    async with FakeUpstream() as overloaded, FakeUpstream() as healthy:
        overloaded.set_default(
            Reply.json({"type": "error", "error": {"type": "overloaded_error"}}, status=529)
        )
        healthy.set_default(Reply.json(message_json("served")))
        dead = Account(
            id="dead",
            name="dead",
            provider=ProviderKind.CONSOLE.value,
            created_at_ms=0,
            custom_endpoint="http://127.0.0.1:9",
            credentials=Credentials(api_key="k"),
        )
        accounts = (dead, console_account("busy", overloaded, 1), console_account("ok", healthy, 2))
        async with running_proxy(tmp_path, *accounts) as (service, url):
            reply = await ask(url)
            assert text_of(reply) == "served"
            [row] = await recorded(service)
            assert row.account_id == "ok"
            assert row.failover_attempts == 2


async def test_a_brief_overload_is_retried_on_the_same_account(tmp_path: Path) -> None:
    async with FakeUpstream() as first, FakeUpstream() as second:
        first.enqueue(
            Reply.json({"type": "error", "error": {"type": "overloaded_error"}}, status=529),
            Reply.json(message_json("after the retry")),
        )
        second.set_default(Reply.json(message_json("failed over")))
        accounts = (console_account("a", first, 0), console_account("b", second, 1))
        async with running_proxy(tmp_path, *accounts) as (service, url):
            reply = await ask(url)
            [row] = await recorded(service)
    assert text_of(reply) == "after the retry"
    assert (len(first.requests), len(second.requests)) == (2, 0)
    assert (row.account_id, row.failover_attempts, row.success) == ("a", 0, True)


async def test_a_model_fallback_list_is_tried_on_the_same_account(tmp_path: Path) -> None:
    missing = {"type": "error", "error": {"type": "not_found_error", "message": "model: glm-5"}}
    async with FakeUpstream() as first, FakeUpstream() as second:
        first.enqueue(Reply.json(missing, status=404), Reply.json(message_json("from glm-4.6")))
        second.set_default(Reply.json(message_json("failed over")))
        mapped = msgspec.structs.replace(
            console_account("a", first, 0), model_mappings={"sonnet": ("glm-5", "glm-4.6")}
        )
        async with running_proxy(tmp_path, mapped, console_account("b", second, 1)) as (
            service,
            url,
        ):
            reply = await ask(url)
            [row] = await recorded(service)
    assert text_of(reply) == "from glm-4.6"
    assert [r.json()["model"] for r in first.requests] == ["glm-5", "glm-4.6"]
    assert second.requests == []
    assert (row.account_id, row.failover_attempts, row.applied_model) == ("a", 0, "glm-4.6")


async def test_exhausted_pool_answers_429_with_the_reset_clients_understand(
    tmp_path: Path,
) -> None:
    reset_s = int(time.time()) + 1800
    async with FakeUpstream() as limited:
        limited.set_default(quota_429(reset_s))
        async with running_proxy(tmp_path, console_account("a", limited)) as (service, url):
            # An admin's client: the pool's reply names each account and why it is out.
            admin = {"x-api-key": await add_api_key(service, ApiKeyRole.ADMIN)}
            async with httpx2.AsyncClient(headers=admin) as client:
                payload: dict[str, object] = {"model": MODEL, "max_tokens": 8, "messages": []}
                first = await client.post(f"{url}/v1/messages", json=payload)
                second = await client.post(f"{url}/v1/messages", json=payload)
            assert first.status_code == 429
            assert first.headers["anthropic-ratelimit-unified-reset"] == str(reset_s)
            assert second.status_code == 429
            assert second.headers["anthropic-ratelimit-unified-reset"] == str(reset_s)
            assert 1790 <= int(second.headers["retry-after"]) <= 1800
            assert second.json()["error"]["accounts"][0]["reason"] == "rate_limited"
            assert len(limited.requests) == 1


async def test_client_disconnect_mid_stream_closes_the_upstream(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(stream_events(["w"] * 40), spacing_s=0.05))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            async with httpx2.AsyncClient() as client:
                payload: dict[str, object] = {
                    "model": MODEL,
                    "max_tokens": 8,
                    "messages": [],
                    "stream": True,
                }
                async with client.stream("POST", f"{url}/v1/messages", json=payload) as response:
                    async for _ in response.aiter_raw():
                        break
            for _ in range(200):
                if upstream.disconnects:
                    break
                await asyncio.sleep(0.01)
            assert upstream.disconnects
            assert upstream.disconnects[0].chunks_sent < 40
            [row] = await recorded(service)
            assert row.stream_terminal_state == "client_disconnected"


async def test_client_disconnect_before_headers_closes_the_upstream(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply(headers_delay_s=5.0))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            async with httpx2.AsyncClient() as client:
                payload: dict[str, object] = {"model": MODEL, "max_tokens": 8, "messages": []}
                request = asyncio.create_task(client.post(f"{url}/v1/messages", json=payload))
                for _ in range(200):
                    if upstream.requests:
                        break
                    await asyncio.sleep(0.01)
                request.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await request
            for _ in range(200):
                if upstream.disconnects:
                    break
                await asyncio.sleep(0.01)
            assert [d.chunks_sent for d in upstream.disconnects] == [0]


async def test_count_tokens_models_and_claude_code_side_calls(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.enqueue(
            Reply.json({"input_tokens": 42}),
            Reply.json({"data": [{"id": MODEL, "type": "model"}], "has_more": False}),
        )
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            async with sdk(url) as client:
                counted = await client.messages.count_tokens(
                    model=MODEL, messages=[{"role": "user", "content": "Hi"}]
                )
                models = await client.models.list()
            assert counted.input_tokens == 42
            assert [m.id for m in models.data] == [MODEL]
            async with httpx2.AsyncClient() as raw:
                side = await raw.post(f"{url}/api/event_logging/batch", json={"events": []})
            assert side.status_code == 200
            assert msgspec.json.decode(side.content) == {"success": True}
            assert [r.path for r in upstream.requests] == [
                "/v1/messages/count_tokens",
                "/v1/models",
            ]


def oauth_account(upstream: FakeUpstream, *, expires_in_ms: int) -> Account:
    return Account(
        id="sub",
        name="subscription",
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=0,
        custom_endpoint=upstream.url,
        credentials=Credentials(
            access_token="at-old",
            refresh_token="rt-old",
            expires_at_ms=int(time.time() * 1000) + expires_in_ms,
        ),
    )


def token_endpoint(request: RecordedRequest) -> Reply:
    assert request.json()["refresh_token"] == "rt-old"
    return Reply.json({"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 28800})


def api_accepting(token: str) -> Callable[[RecordedRequest], Reply]:
    def answer(request: RecordedRequest) -> Reply:
        if request.headers.get("authorization") != f"Bearer {token}":
            return Reply.json(
                {"type": "error", "error": {"type": "authentication_error", "message": "bad"}},
                status=401,
            )
        assert "oauth-2025-04-20" in request.headers["anthropic-beta"]
        return Reply.json(message_json("authorized"))

    return answer


async def test_oauth_token_expiring_soon_is_refreshed_once_for_concurrent_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeUpstream() as tokens, FakeUpstream() as api:
        monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"{tokens.url}/v1/oauth/token")
        tokens.set_default(token_endpoint)
        api.set_default(api_accepting("at-new"))
        account = oauth_account(api, expires_in_ms=60_000)
        async with running_proxy(tmp_path, account) as (service, url):
            replies = await asyncio.gather(*(ask(url) for _ in range(10)))
            assert {text_of(r) for r in replies} == {"authorized"}
            assert len(tokens.requests) == 1
            assert all(r.headers["authorization"] == "Bearer at-new" for r in api.requests)
            stored = await service.store.accounts.get("sub")
            assert stored is not None
            assert stored.credentials.refresh_token == "rt-new"


async def test_a_401_forces_one_refresh_and_a_retry_on_the_same_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeUpstream() as tokens, FakeUpstream() as api:
        monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"{tokens.url}/v1/oauth/token")
        tokens.set_default(token_endpoint)
        api.set_default(api_accepting("at-new"))
        account = oauth_account(api, expires_in_ms=8 * 3_600_000)
        async with running_proxy(tmp_path, account) as (service, url):
            reply = await ask(url)
            assert text_of(reply) == "authorized"
            assert [r.headers["authorization"] for r in api.requests] == [
                "Bearer at-old",
                "Bearer at-new",
            ]
            assert len(tokens.requests) == 1
            [row] = await recorded(service)
            assert row.account_id == "sub"
            assert row.failover_attempts == 0


async def test_an_upstream_slow_to_answer_times_out_and_fails_over(tmp_path: Path) -> None:
    async with FakeUpstream() as slow, FakeUpstream() as healthy:
        slow.set_default(Reply(headers_delay_s=5.0))
        healthy.set_default(Reply.json(message_json("quick")))
        accounts = (console_account("slow", slow, 0), console_account("quick", healthy, 1))
        async with running_proxy(
            tmp_path, *accounts, BETTER_CCFLARE_FIRST_BYTE_TIMEOUT_MS="1000"
        ) as (_, url):
            started = time.monotonic()
            reply = await ask(url)
            assert text_of(reply) == "quick"
            assert 0.9 < time.monotonic() - started < 4


async def test_a_cooldown_ends_exactly_at_the_announced_reset(tmp_path: Path) -> None:
    clock = FakeClock(now_ms=int(time.time()) * 1000)
    reset_s = clock.now_ms() // 1000 + 600
    async with FakeUpstream() as preferred, FakeUpstream() as backup:
        preferred.enqueue(
            Reply.json(
                {"type": "error", "error": {"type": "rate_limit_error", "message": "limit"}},
                status=429,
                headers={"anthropic-ratelimit-unified-reset": str(reset_s)},
            )
        )
        preferred.set_default(Reply.json(message_json("preferred")))
        backup.set_default(Reply.json(message_json("backup")))
        accounts = (console_account("a", preferred, 0), console_account("b", backup, 1))
        async with running_proxy(tmp_path, *accounts, clock=clock) as (_, url):
            assert text_of(await ask(url)) == "backup"
            clock.set(reset_s * 1000 - 1)
            assert text_of(await ask(url)) == "backup"
            clock.set(reset_s * 1000)
            assert text_of(await ask(url)) == "preferred"
            assert len(preferred.requests) == 2


async def test_with_proxy_keys_every_request_needs_one(tmp_path: Path) -> None:
    key = generate_api_key()
    stored = ApiKey(
        id="k1",
        name="laptop",
        hashed_key=hash_api_key(key),
        prefix_last_8=key[-8:],
        created_at_ms=0,
        role=ApiKeyRole.API_ONLY,
    )
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json("allowed")))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            await service.store.api_keys.add(stored)
            service.auth.invalidate()
            with pytest.raises(anthropic.AuthenticationError):
                await ask(url)
            async with anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0) as c:
                reply = await c.messages.create(
                    model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
                )
            assert text_of(reply) == "allowed"
            assert len(upstream.requests) == 1
            assert upstream.requests[0].headers["x-api-key"] == "sk-ant-api03-a"
            rows = await recorded(service)
            assert [r.api_key_name for r in rows] == ["laptop"]


async def test_payloads_are_stored_capped_and_without_credentials(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(stream_events(["stored"])))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            await ask_streaming(url, "keep me", max_tokens=8)
            [row] = await recorded(service)
            stored = await service.store.requests.get_payload(row.id)
            assert stored is not None
            assert "client-key" not in stored
            assert "sk-ant-api03" not in stored
            payload = decode_payload(stored)
            assert "x-api-key" not in payload.request.headers
            request_body = payload.request.body_bytes
            assert request_body is not None
            assert b"keep me" in request_body
            assert payload.response is not None
            assert payload.response.body_bytes == b"".join(stream_events(["stored"]))
            assert payload.meta.is_stream


async def test_payloads_are_not_stored_when_turned_off(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(
            tmp_path, console_account("a", upstream), STORE_PAYLOADS="false"
        ) as (service, url):
            await ask(url)
            [row] = await recorded(service)
            assert await service.store.requests.get_payload(row.id) is None


async def test_an_ordinary_error_is_passed_through_whole_without_failover(tmp_path: Path) -> None:
    big = {"type": "error", "error": {"type": "invalid_request_error", "message": "x" * 1_500_000}}
    async with FakeUpstream() as upstream, FakeUpstream() as other:
        upstream.set_default(Reply.json(big, status=400))
        other.set_default(Reply.json(message_json()))
        accounts = (console_account("a", upstream, 0), console_account("b", other, 1))
        async with running_proxy(tmp_path, *accounts) as (_, url):
            async with httpx2.AsyncClient() as client:
                payload: dict[str, object] = {"model": MODEL, "max_tokens": 8, "messages": []}
                reply = await client.post(f"{url}/v1/messages", json=payload)
            assert reply.status_code == 400
            assert reply.json() == big
            assert other.requests == []


async def test_tool_use_round_trips_and_the_agent_is_recorded(tmp_path: Path) -> None:
    tool_reply = {
        **message_json(),
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
    }
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(tool_reply))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            async with sdk(url) as client:
                reply = await client.messages.create(
                    model=MODEL,
                    max_tokens=64,
                    tools=[
                        {
                            "name": "get_weather",
                            "description": "Weather for a city",
                            "input_schema": {
                                "type": "object",
                                "properties": {"city": {"type": "string"}},
                            },
                        }
                    ],
                    messages=[{"role": "user", "content": "Weather in Oslo?"}],
                    extra_headers={"x-better-ccflare-agent-id": "planner"},
                )
            assert reply.stop_reason == "tool_use"
            block = reply.content[1]
            assert isinstance(block, anthropic.types.ToolUseBlock)
            assert (block.name, block.input) == ("get_weather", {"city": "Oslo"})
            sent = upstream.requests[0]
            assert sent.json()["tools"][0]["name"] == "get_weather"
            assert "x-better-ccflare-agent-id" not in sent.headers
            [row] = await recorded(service)
            assert row.agent_used == "planner"


async def test_a_401_on_an_api_key_account_fails_over(tmp_path: Path) -> None:
    async with FakeUpstream() as revoked, FakeUpstream() as healthy:
        revoked.set_default(
            Reply.json(
                {"type": "error", "error": {"type": "authentication_error", "message": "bad"}},
                status=401,
            )
        )
        healthy.set_default(Reply.json(message_json("from b")))
        accounts = (console_account("a", revoked, 0), console_account("b", healthy, 1))
        async with running_proxy(tmp_path, *accounts) as (_, url):
            assert text_of(await ask(url)) == "from b"
            assert len(revoked.requests) == 1


async def test_streamed_bytes_are_identical_to_a_direct_call(tmp_path: Path) -> None:
    events = stream_events(["Same ", "bytes ", "both ", "ways."])
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(events, spacing_s=0.01))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            payload: dict[str, object] = {
                "model": MODEL,
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": True,
            }
            bodies: list[bytes] = []
            async with httpx2.AsyncClient() as client:
                for base in (url, upstream.url):
                    async with client.stream("POST", f"{base}/v1/messages", json=payload) as r:
                        assert r.status_code == 200
                        assert r.headers["content-type"] == "text/event-stream"
                        bodies.append(b"".join([chunk async for chunk in r.aiter_raw()]))
            assert bodies[0] == bodies[1] == b"".join(events)


async def test_an_unexpected_failure_is_an_anthropic_shaped_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> object:
        raise RuntimeError("simulated bug")

    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
    ):
        monkeypatch.setattr(ConsoleProvider, "build_request", broken)
        async with httpx2.AsyncClient() as client:
            payload: dict[str, object] = {"model": MODEL, "max_tokens": 8, "messages": []}
            reply = await client.post(f"{url}/v1/messages", json=payload)
        assert reply.status_code == 500
        assert reply.json()["type"] == "error"
        assert reply.json()["error"]["type"] == "api_error"
        assert "simulated bug" not in reply.text
        assert upstream.requests == []


async def test_an_error_body_cut_off_by_the_upstream_fails_over(tmp_path: Path) -> None:
    async with FakeUpstream() as dying, FakeUpstream() as healthy:
        dying.set_default(
            Reply(
                status=500,
                headers={"content-type": "application/json"},
                chunks=((0.0, b'{"type": "error", '), (0.0, b'"error": {}}')),
                die_after=1,
            )
        )
        healthy.set_default(Reply.json(message_json("recovered")))
        accounts = (console_account("a", dying, 0), console_account("b", healthy, 1))
        async with running_proxy(tmp_path, *accounts) as (_, url):
            assert text_of(await ask(url)) == "recovered"


async def test_a_compressed_upstream_reply_reaches_the_client_readable(tmp_path: Path) -> None:
    """An upstream that compresses although asked for identity: bytes and header pass through."""
    async with FakeUpstream() as upstream:
        upstream.set_default(
            Reply(
                headers={"content-type": "application/json", "content-encoding": "gzip"},
                body=gzip.compress(json.dumps(message_json("zipped")).encode()),
            )
        )
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            message = await ask(url)
    assert text_of(message) == "zipped"
    assert upstream.requests[0].headers["accept-encoding"] == "identity"


async def test_a_body_that_has_fully_arrived_ends_the_response_with_its_last_piece(
    tmp_path: Path,
) -> None:
    """No separate empty write to end the response: the server writes the body and the end
    of the message at once (one system call fewer per request on the hot path)."""
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, _):
            request = json.dumps({"model": MODEL, "max_tokens": 8, "messages": []}).encode()
            pending: list[dict[str, Any]] = [
                {"type": "http.request", "body": request, "more_body": False}
            ]
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                if pending:
                    return pending.pop()
                await asyncio.Event().wait()  # the client stays connected
                raise AssertionError("unreachable")

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "method": "POST",
                "path": "/v1/messages",
                "query_string": b"",
                "headers": [(b"content-type", b"application/json")],
            }
            await service.proxy(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["more_body"] is False
    assert sent[1]["body"] == json.dumps(message_json()).encode()


async def test_an_unexpected_failure_before_the_response_is_a_500_in_the_anthropic_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_send(*_: object) -> None:
        raise RuntimeError("a bug in the proxy leg")

    monkeypatch.setattr(H1Transport, "send", broken_send)
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
        httpx2.AsyncClient() as client,
    ):
        response = await client.post(
            f"{url}/v1/messages", json={"model": MODEL, "max_tokens": 8, "messages": []}
        )
    assert response.status_code == 500
    assert response.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "The proxy failed unexpectedly; see its log."},
    }


async def test_proxied_requests_leave_no_reference_cycles_behind(tmp_path: Path) -> None:
    """Garbage only the cycle collector can free makes it run often and scan a lot: on the hot
    path that cost about 8 % of the proxy's CPU (``docs/performance.md``)."""
    events = stream_events(["No ", "cycles."])
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(events))
        async with (
            running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
            httpx2.AsyncClient() as client,
        ):
            payload: dict[str, object] = {"model": MODEL, "max_tokens": 8, "stream": True}

            async def one() -> None:
                response = await client.post(f"{url}/v1/messages", json=payload)
                assert response.content == b"".join(events)

            await one()  # connections, caches and lazy imports settle on the first one
            gc.collect()
            gc.disable()
            try:
                requests = 40
                for _ in range(requests):
                    await one()
                unreachable = gc.collect()
            finally:
                gc.enable()
            # Per request, the watcher's cancelled task alone left a dozen objects behind.
            assert unreachable < requests, unreachable
