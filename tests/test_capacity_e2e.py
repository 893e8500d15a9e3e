"""Capacity that Claude Code understands, end to end: the real service under uvicorn, fake
upstreams, and the official ``anthropic`` SDK as the client.

* A pool out because its usage windows are used up answers the way Anthropic answers a
  subscription at its limit (429 ``rate_limit_error`` with the ``anthropic-ratelimit-unified-*``
  headers Claude Code reads); transient unavailability stays a 503 without them.
* ``GET /api/capacity`` shows each account's windows, whether it can serve now and when it
  will, and the same for the pool.
"""

from __future__ import annotations

import time
from pathlib import Path

import anthropic
import httpx2
import msgspec
import pytest

from better_ccflare.core import PauseReason, UsageWindow

from .support.client import sdk
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
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
