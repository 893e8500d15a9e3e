"""Capacity that Claude Code understands, end to end: the real service under uvicorn, fake
upstreams, and the official ``anthropic`` SDK as the client.

* A pool out because its usage windows are used up answers the way Anthropic answers a
  subscription at its limit (429 ``rate_limit_error`` with the ``anthropic-ratelimit-unified-*``
  headers Claude Code reads); transient unavailability stays a 503 without them.
* ``GET /api/capacity`` shows each account's windows, whether it can serve now and when it
  will, and the same for the pool.
* ``better-ccflare statusline``, run as Claude Code runs it, names the account serving a
  Claude-Code-shaped session and its headroom; a proxy key reads only its own sessions.
* Hold until reset (opt-in): a request no account can serve now waits for the account that
  frees up within the configured wait (a stream gets pings meanwhile), a bounded number at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anthropic
import httpx2
import msgspec
import pytest

from better_ccflare.core import ApiKeyRole, PauseReason, UsageWindow
from better_ccflare.server import Service

from .support.client import add_api_key, recorded, sdk, text_of
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json, stream_events
from .support.service import console_account, running_proxy


def subscription_limit(reset_s: int) -> Reply:
    """Anthropic's answer to a subscription whose 5-hour window is used up, with no extra
    usage to fall back on."""
    return Reply.json(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "limit"}},
        status=429,
        headers={
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(reset_s),
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
            "anthropic-ratelimit-unified-overage-status": "rejected",
            "anthropic-ratelimit-unified-overage-disabled-reason": "out_of_credits",
        },
    )


async def create(client: anthropic.AsyncAnthropic) -> anthropic.types.Message:
    return await client.messages.create(
        model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
    )


async def test_a_pool_whose_windows_the_upstream_rejected_answers_like_a_subscription_at_its_limit(
    tmp_path: Path,
) -> None:
    reset_s = int(time.time()) + 3600
    async with FakeUpstream() as limited, FakeUpstream() as spare:
        limited.set_default(subscription_limit(reset_s))
        spare.set_default(Reply.json(message_json()))
        paused = msgspec.structs.replace(
            console_account("spare", spare), paused=True, pause_reason=PauseReason.MANUAL
        )
        async with (
            running_proxy(tmp_path, console_account("a", limited), paused) as (_, url),
            sdk(url) as client,
        ):
            with pytest.raises(anthropic.RateLimitError):  # the upstream's own answer
                await create(client)
            with pytest.raises(anthropic.RateLimitError) as raised:  # the pool's
                await create(client)

    assert spare.requests == []
    reply = raised.value.response
    assert reply.headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert reply.headers["anthropic-ratelimit-unified-reset"] == str(reset_s)
    assert 3590 <= int(reply.headers["retry-after"]) <= 3600
    assert raised.value.body is not None
    assert reply.json()["type"] == "error"
    assert reply.json()["error"]["type"] == "rate_limit_error"


async def test_a_usage_poll_at_100_percent_is_a_limit_however_soon_it_resets(
    tmp_path: Path,
) -> None:
    resets_at_ms = int(time.time() * 1000) + 20_000
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            service.usage.update(
                "a",
                [
                    UsageWindow(key="five_hour", utilization=100.0, resets_at_ms=resets_at_ms),
                    UsageWindow(key="seven_day", utilization=61.0, resets_at_ms=resets_at_ms * 2),
                ],
            )
            async with sdk(url) as client:
                with pytest.raises(anthropic.RateLimitError) as raised:
                    await create(client)

    assert upstream.requests == []
    headers = raised.value.response.headers
    assert headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-reset"] == str(-(-resets_at_ms // 1000))
    assert headers["anthropic-ratelimit-unified-representative-claim"] == "five_hour"
    assert headers["anthropic-ratelimit-unified-5h-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-5h-utilization"] == "1"
    assert headers["anthropic-ratelimit-unified-7d-status"] == "allowed"
    assert headers["anthropic-ratelimit-unified-7d-utilization"] == "0.61"


async def test_an_unreachable_pool_is_a_503_without_limit_headers(tmp_path: Path) -> None:
    dead = msgspec.structs.replace(
        console_account("a", FakeUpstream()), custom_endpoint="http://127.0.0.1:9"
    )
    async with running_proxy(tmp_path, dead) as (_, url), sdk(url) as client:
        with pytest.raises(anthropic.InternalServerError):  # the attempt: a 502
            await create(client)
        with pytest.raises(anthropic.InternalServerError) as raised:  # the benched pool
            await create(client)

    assert raised.value.status_code == 503
    assert raised.value.response.json()["error"]["type"] == "overloaded_error"
    assert not any(name.startswith("anthropic-ratelimit") for name in raised.value.response.headers)


# GET /api/capacity


async def test_capacity_shows_each_accounts_windows_and_the_pools(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        accounts = (console_account("a", upstream), console_account("b", upstream, 1))
        async with (
            running_proxy(tmp_path, *accounts) as (service, url),
            httpx2.AsyncClient(base_url=url) as client,
        ):
            service.usage.update(
                "a",
                [
                    UsageWindow(key="five_hour", utilization=100.0, resets_at_ms=now_ms + 60_000),
                    UsageWindow(
                        key="seven_day", utilization=50.0, resets_at_ms=now_ms + 86_400_000
                    ),
                ],
            )
            service.usage.update(
                "b", [UsageWindow(key="five_hour", utilization=20.0, resets_at_ms=now_ms + 9_000)]
            )
            capacity = (await client.get("/api/capacity")).json()

    a, b = capacity["accounts"]
    assert (a["name"], a["canServe"], a["reason"], a["limitingWindow"]) == (
        "a",
        False,
        "usage_exhausted",
        "five_hour",
    )
    assert a["availableAt"] == now_ms + 60_000
    assert 0 < a["availableInMs"] <= 60_000
    assert [(w["key"], w["utilization"], w["exhausted"]) for w in a["windows"]] == [
        ("five_hour", 100.0, True),
        ("seven_day", 50.0, False),
    ]
    assert (b["canServe"], b["reason"], b["availableInMs"]) == (True, None, 0)
    pool = capacity["pool"]
    assert (pool["canServe"], pool["windowsExhausted"]) == (True, False)
    five_hour = next(w for w in pool["windows"] if w["key"] == "five_hour")
    assert (five_hour["utilization"], five_hour["accounts"], five_hour["exhausted"]) == (60.0, 2, 1)
    assert five_hour["resetsAt"] == now_ms + 9_000


async def test_capacity_says_when_the_pool_is_out_on_its_windows(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    async with FakeUpstream() as upstream:
        paused = msgspec.structs.replace(console_account("p", upstream), paused=True)
        async with (
            running_proxy(tmp_path, console_account("a", upstream), paused) as (service, url),
            httpx2.AsyncClient(base_url=url) as client,
        ):
            service.usage.update(
                "a", [UsageWindow(key="seven_day", utilization=100.0, resets_at_ms=now_ms + 5_000)]
            )
            pool = (await client.get("/api/capacity")).json()["pool"]

    assert (pool["canServe"], pool["windowsExhausted"]) == (False, True)
    assert pool["availableAt"] == now_ms + 5_000
    assert [(w["key"], w["accounts"]) for w in pool["windows"]] == [("seven_day", 1)]


# A Claude Code session, its account, and the status line


SESSION = "2d5b7a0e-6c1f-4f4e-8a53-93c0e1b7d4aa"
LEGACY_USER_ID = f"user_{'c0' * 32}_account_5e2b0c4d-1111-4222-8333-944455556666_session_{SESSION}"
USER_ID = json.dumps({"device_id": "c0" * 32, "account_uuid": "", "session_id": SESSION})
STATUSLINE = [
    sys.executable,
    "-c",
    "from better_ccflare.cli._entry import run; run()",
    "statusline",
]


async def claude_code_turn(url: str, key: str, user_id: str) -> None:
    """One request shaped like Claude Code's: its session in ``metadata.user_id`` and the
    ``x-claude-code-session-id`` header, the proxy key as a bearer token."""
    async with anthropic.AsyncAnthropic(base_url=url, auth_token=key, max_retries=0) as client:
        await client.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=[{"role": "user", "content": "Hi"}],
            metadata={"user_id": user_id},
            extra_headers={"x-claude-code-session-id": SESSION},
        )


async def statusline(stdin: object, **env: str) -> str:
    """``better-ccflare statusline`` as Claude Code runs it: its JSON piped in, one line out."""
    process = await asyncio.create_subprocess_exec(
        *STATUSLINE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ["PATH"], "HOME": env.pop("HOME", "/nonexistent"), **env},
    )
    out, err = await process.communicate(json.dumps(stdin).encode())
    assert (process.returncode, err) == (0, b"")
    lines = out.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("user_id", [USER_ID, LEGACY_USER_ID], ids=["json", "legacy"])
async def test_the_status_line_names_the_account_serving_a_claude_code_session(
    tmp_path: Path, user_id: str
) -> None:
    now_ms = int(time.time() * 1000)
    async with FakeUpstream() as first, FakeUpstream() as second:
        first.set_default(Reply.json(message_json()))
        second.set_default(Reply.json(message_json()))
        accounts = (console_account("max-1", first), console_account("max-2", second, 1))
        async with running_proxy(tmp_path, *accounts) as (service, url):
            key = await add_api_key(service, ApiKeyRole.API_ONLY)
            service.usage.update(
                "max-1",
                [
                    UsageWindow(key="five_hour", utilization=42.4, resets_at_ms=now_ms + 3_900_000),
                    UsageWindow(key="seven_day", utilization=13.0, resets_at_ms=now_ms + 9_000_000),
                ],
            )
            await claude_code_turn(url, key, user_id)
            await recorded(service)
            line = await statusline(
                {"session_id": SESSION, "model": {"display_name": "Opus"}, "cwd": str(tmp_path)},
                ANTHROPIC_BASE_URL=url,
                ANTHROPIC_AUTH_TOKEN=key,
            )

    assert line == "ccflare: max-1 · 5h 42% · 7d 13% · resets in 1h05m"


@pytest.fixture
async def one_account(tmp_path: Path) -> AsyncGenerator[tuple[Service, str]]:
    """The service with one account, ``max-1``, whose upstream answers every message."""
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("max-1", upstream)) as served:
            yield served


async def test_a_proxy_key_sees_only_the_sessions_it_made(
    one_account: tuple[Service, str],
) -> None:
    service, url = one_account
    mine = await add_api_key(service, ApiKeyRole.API_ONLY)
    admin = await add_api_key(service, ApiKeyRole.ADMIN)
    theirs = await add_api_key(service, ApiKeyRole.API_ONLY, "someone-else")
    await claude_code_turn(url, mine, USER_ID)
    await recorded(service)
    path = f"/api/sessions/{SESSION}/account"
    async with httpx2.AsyncClient(base_url=url) as client:
        own = await client.get(path, headers={"authorization": f"Bearer {mine}"})
        other = await client.get(path, headers={"x-api-key": theirs})
        operator = await client.get(path, headers={"x-api-key": admin})
        by_user_id = await client.get(
            f"/api/sessions/{urllib.parse.quote(USER_ID, safe='')}/account",
            headers={"x-api-key": mine},
        )
        elsewhere = await client.get("/api/capacity", headers={"x-api-key": mine})

    assert own.json()["account"]["name"] == "max-1"
    assert other.json() == {"status": "unknown"}
    assert operator.json()["account"]["name"] == "max-1"
    assert by_user_id.json()["account"]["name"] == "max-1"
    assert elsewhere.status_code == 403


async def test_the_status_line_finds_a_local_server_from_the_configuration(
    tmp_path: Path, one_account: tuple[Service, str]
) -> None:
    service, url = one_account
    await claude_code_turn(url, "no-keys-yet", USER_ID)
    await recorded(service)
    port = urllib.parse.urlsplit(url).port
    line = await statusline(
        {"session_id": SESSION}, XDG_CONFIG_HOME=str(tmp_path / "xdg"), PORT=str(port)
    )
    unknown = await statusline({"session_id": "a-session-never-seen"}, ANTHROPIC_BASE_URL=url)

    assert line == "ccflare: max-1"
    assert unknown == "ccflare: session not served yet"


async def test_the_status_line_says_what_is_wrong_in_a_few_words(tmp_path: Path) -> None:
    async with running_proxy(tmp_path) as (service, url):
        await add_api_key(service, ApiKeyRole.API_ONLY)
        refused = await statusline({"session_id": SESSION}, ANTHROPIC_BASE_URL=url)
    gone = await statusline({"session_id": SESSION}, ANTHROPIC_BASE_URL=url)
    nothing = await statusline({}, ANTHROPIC_BASE_URL=url)

    assert refused == "ccflare: key refused"
    assert gone == "ccflare: server unreachable"
    assert nothing == "ccflare: no session yet"


# Hold until reset


def holding(
    tmp_path: Path, upstream: FakeUpstream, hold_ms: int, max_waiting: int = 100
) -> AbstractAsyncContextManager[tuple[Service, str]]:
    """The service with one account, ``a``, holding up to ``max_waiting`` requests for up to
    ``hold_ms`` each."""
    return running_proxy(
        tmp_path,
        console_account("a", upstream),
        BETTER_CCFLARE_HOLD_UNTIL_RESET_MS=str(hold_ms),
        BETTER_CCFLARE_HOLD_MAX_WAITING=str(max_waiting),
    )


def exhausted_until(service: Service, account_id: str, resets_at_ms: int) -> None:
    """The usage poll reads the account's 5-hour window used up until ``resets_at_ms``."""
    service.usage.update(
        account_id, [UsageWindow(key="five_hour", utilization=100.0, resets_at_ms=resets_at_ms)]
    )


async def test_a_held_request_is_served_when_the_window_resets(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json("after the reset")))
        async with (
            holding(tmp_path, upstream, 5000) as (service, url),
            sdk(url) as client,
        ):
            exhausted_until(service, "a", int(time.time() * 1000) + 1_200)
            started = time.monotonic()
            message = await create(client)
            waited = time.monotonic() - started
            [row] = await recorded(service)

    assert text_of(message) == "after the reset"
    assert 1.0 <= waited < 4.0
    assert len(upstream.requests) == 1
    assert (row.status_code, row.account_id) == (200, "a")


async def test_a_held_stream_gets_pings_until_the_account_frees_then_its_events(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.stream(stream_events(["Held ", "then ", "served"])))
        async with holding(tmp_path, upstream, 5000) as (service, url):
            exhausted_until(service, "a", int(time.time() * 1000) + 1_200)
            started = time.monotonic()
            async with (
                httpx2.AsyncClient(base_url=url, timeout=10) as raw,
                raw.stream("POST", "/v1/messages", json=stream_request()) as response,
            ):
                chunks = response.aiter_raw()
                first = await anext(chunks)
                first_at = time.monotonic() - started
                rest = b"".join([chunk async for chunk in chunks])
                done_at = time.monotonic() - started
            exhausted_until(service, "a", int(time.time() * 1000) + 1_200)
            async with (
                sdk(url) as client,
                client.messages.stream(
                    model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
                ) as stream,
            ):
                text = "".join([piece async for piece in stream.text_stream])

    assert response.status_code == 200
    assert first == b'event: ping\ndata: {"type": "ping"}\n\n'
    assert first_at < 1.0 <= done_at  # the ping came at once, the events after the reset
    assert rest.index(b"event: message_start") > 0
    assert rest.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert text == "Held then served"


async def test_a_request_is_not_held_when_no_account_frees_up_within_the_wait(
    tmp_path: Path,
) -> None:
    async with (
        FakeUpstream() as upstream,
        holding(tmp_path, upstream, 1000) as (service, url),
        sdk(url) as client,
    ):
        exhausted_until(service, "a", int(time.time() * 1000) + 60_000)
        started = time.monotonic()
        with pytest.raises(anthropic.RateLimitError):
            await create(client)

    assert time.monotonic() - started < 0.9
    assert upstream.requests == []


async def test_only_so_many_requests_are_held_and_a_client_leaving_frees_its_place(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with holding(tmp_path, upstream, 20_000, max_waiting=1) as (
            service,
            url,
        ):
            exhausted_until(service, "a", int(time.time() * 1000) + 15_000)
            async with sdk(url) as client:
                held = asyncio.create_task(create(client))
                await until_held(service)
                with pytest.raises(anthropic.RateLimitError):  # the one place is taken
                    await create(client)
                held.cancel()  # the client gives up
                with pytest.raises(asyncio.CancelledError):
                    await held
                again = asyncio.create_task(create(client))
                await until_held(service)  # the place was freed
                exhausted_until(service, "a", int(time.time() * 1000) + 300)
                message = await again
            rows = await recorded(service, 3)

    assert text_of(message) == "Hello!"
    assert {r.status_code for r in rows} == {200, 429, 499}


async def until_held(service: Service) -> None:
    """Wait until one request is in flight (the held one)."""
    for _ in range(200):
        if service.request_events.in_flight >= 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no request was held")


def stream_request() -> dict[str, object]:
    return {
        "model": MODEL,
        "max_tokens": 8,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (
            Reply.json(
                {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
                status=400,
            ),
            400,
        ),
        (subscription_limit(int(time.time()) + 3600), 429),
    ],
    ids=["refused", "limited-again"],
)
async def test_a_held_stream_that_cannot_be_served_ends_with_the_error_as_an_event(
    tmp_path: Path, answer: Reply, status: int
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(answer)
        async with holding(tmp_path, upstream, 5000) as (service, url):
            exhausted_until(service, "a", int(time.time() * 1000) + 500)
            async with (
                httpx2.AsyncClient(base_url=url, timeout=10) as raw,
                raw.stream("POST", "/v1/messages", json=stream_request()) as response,
            ):
                events = b"".join([chunk async for chunk in response.aiter_raw()])
            [row] = await recorded(service)

    assert response.status_code == 200
    assert events.startswith(b"event: ping\n")
    _, _, last = events.rstrip(b"\n").rpartition(b"\nevent: error\ndata: ")
    assert json.loads(last) == json.loads(answer.body)
    assert (row.status_code, row.success) == (status, False)
