"""Faults the client must be able to see, end to end: the real service under uvicorn, fake
upstreams that fail on cue, and the official ``anthropic`` SDK reacting as a user's client
would.

* An upstream that breaks after the first byte reached the client: the client sees a broken
  response (an ``event: error`` in a stream, an aborted body otherwise), never a complete one.
* When every attempt failed, the client gets the most informative upstream reply, with its
  retry hints.
* What a plain client learns of the pool: the kind of unavailability and when to retry, never
  the accounts' names or states (an admin key still gets them).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import anthropic
import httpx2
import msgspec
import pytest

from better_ccflare.core import Account, ApiKeyRole, Credentials, ProviderKind

from .support.client import add_api_key, ask, recorded, sdk
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json, quota_429, stream_events
from .support.service import console_account, running_proxy

SECRET_NAME = "acme-team-billing"
"""An account name a plain client must never see."""


async def stream_text(url: str) -> str:
    """One streamed message through the SDK's streaming helper; the text it accumulated."""
    async with (
        sdk(url) as client,
        client.messages.stream(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Count"}]
        ) as stream,
    ):
        return "".join([text async for text in stream.text_stream])


# A broken upstream after the first byte


async def test_a_stream_cut_by_the_upstream_ends_in_an_error_event_the_sdk_raises(
    tmp_path: Path,
) -> None:
    events = stream_events(["One ", "two ", "three"])
    async with FakeUpstream() as upstream:
        upstream.set_default(dataclasses.replace(Reply.stream(events), die_after=3))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            with pytest.raises(anthropic.APIStatusError) as raised:
                await stream_text(url)
            [row] = await recorded(service)

    assert raised.value.body == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "The upstream connection closed mid-response; the response is incomplete.",
        },
    }
    assert row.stream_terminal_state == "upstream_closed"
    assert not row.success


async def test_a_stream_cut_in_the_middle_of_an_event_still_ends_in_an_error(
    tmp_path: Path,
) -> None:
    first, second, *_ = stream_events(["One ", "two"])
    halves = ((0.0, first), (0.0, second[:20]), (0.0, second[20:]))
    async with FakeUpstream() as upstream:
        upstream.set_default(
            Reply(headers={"content-type": "text/event-stream"}, chunks=halves, die_after=2)
        )
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            with pytest.raises(anthropic.APIStatusError) as raised:
                await stream_text(url)

    assert "the response is incomplete" in str(raised.value)


async def test_a_stream_stalled_past_the_idle_timeout_ends_in_an_error_event(
    tmp_path: Path,
) -> None:
    events = stream_events(["slow"])
    stalled = Reply(
        headers={"content-type": "text/event-stream"},
        chunks=((0.0, events[0]), (5.0, events[1])),
    )
    async with FakeUpstream() as upstream:
        upstream.set_default(stalled)
        async with running_proxy(
            tmp_path, console_account("a", upstream), BETTER_CCFLARE_IDLE_TIMEOUT_MS="1000"
        ) as (service, url):
            with pytest.raises(anthropic.APIStatusError) as raised:
                await stream_text(url)
            [row] = await recorded(service)

    assert "stopped sending" in str(raised.value)
    assert row.stream_terminal_state == "timeout"


async def test_a_json_body_cut_by_the_upstream_is_aborted_and_the_sdk_raises(
    tmp_path: Path,
) -> None:
    whole = Reply.json(message_json()).body
    cut = Reply(
        headers={"content-type": "application/json"},
        chunks=((0.0, whole[:40]), (0.0, whole[40:])),
        die_after=1,
    )
    async with FakeUpstream() as upstream:
        upstream.set_default(cut)
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            with pytest.raises(anthropic.APIConnectionError):
                await ask(url)
            async with httpx2.AsyncClient() as raw:
                payload: dict[str, object] = {"model": MODEL, "max_tokens": 8, "messages": []}
                with pytest.raises(httpx2.RemoteProtocolError):
                    await raw.post(f"{url}/v1/messages", json=payload)
            rows = await recorded(service, 2)

    assert [r.stream_terminal_state for r in rows] == ["upstream_closed", "upstream_closed"]
    assert not any(r.success for r in rows)


# The most informative upstream reply when every attempt failed


def windowless_429(message: str) -> Reply:
    """A request-scoped 429: no window, no reset, so it benches nobody."""
    return Reply.json(
        {"type": "error", "error": {"type": "rate_limit_error", "message": message}},
        status=429,
        headers={"x-should-retry": "true", "anthropic-ratelimit-requests-remaining": "0"},
    )


async def test_the_last_candidates_429_reaches_the_client_with_its_retry_hints(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as first, FakeUpstream() as last:
        first.set_default(windowless_429("first says no"))
        last.set_default(windowless_429("last says no"))
        accounts = (console_account("a", first, 0), console_account("b", last, 1))
        async with running_proxy(tmp_path, *accounts) as (service, url):
            with pytest.raises(anthropic.RateLimitError) as raised:
                await ask(url)
            [row] = await recorded(service)

    assert raised.value.status_code == 429
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "first says no"},
    }
    headers = raised.value.response.headers
    assert headers["x-should-retry"] == "true"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert (row.status_code, row.account_id, row.failover_attempts) == (429, None, 2)
    assert not row.success


async def test_a_429_is_preferred_to_an_overload_whatever_the_order(tmp_path: Path) -> None:
    async with FakeUpstream() as busy, FakeUpstream() as limited:
        busy.set_default(
            Reply.json(
                {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
                status=529,
            )
        )
        limited.set_default(windowless_429("slow down"))
        accounts = (console_account("a", busy, 0), console_account("b", limited, 1))
        async with running_proxy(tmp_path, *accounts) as (_, url):
            with pytest.raises(anthropic.RateLimitError) as raised:
                await ask(url)

    assert raised.value.message.endswith("slow down'}}")


async def test_when_no_upstream_answered_the_client_gets_a_502_it_may_retry(
    tmp_path: Path,
) -> None:
    accounts = (dead_account("a", 0), dead_account("b", 1))
    async with running_proxy(tmp_path, *accounts) as (_, url):
        with pytest.raises(anthropic.InternalServerError) as raised:
            await ask(url)

    assert raised.value.status_code == 502
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "Every account failed: connection failed."},
    }


# What a plain client learns of the pool


def dead_account(name: str, priority: int) -> Account:
    return Account(
        id=name,
        name=f"{SECRET_NAME}-{name}",
        provider=ProviderKind.CONSOLE.value,
        created_at_ms=0,
        priority=priority,
        custom_endpoint="http://127.0.0.1:9",
        credentials=Credentials(api_key="k"),
    )


@pytest.mark.parametrize("role", [None, ApiKeyRole.API_ONLY])
async def test_an_exhausted_pool_tells_a_plain_client_when_to_retry_but_not_who_is_out(
    tmp_path: Path, role: ApiKeyRole | None
) -> None:
    reset_s = int(time.time()) + 1800
    async with FakeUpstream() as limited:
        limited.set_default(quota_429(reset_s))
        account = msgspec.structs.replace(console_account("a", limited), name=SECRET_NAME)
        async with running_proxy(tmp_path, account) as (service, url):
            key = "unused" if role is None else await add_api_key(service, role)
            async with sdk(url, api_key=key) as client:
                with pytest.raises(anthropic.RateLimitError):  # the upstream's own 429
                    await client.messages.create(
                        model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
                    )
                with pytest.raises(anthropic.RateLimitError) as raised:  # the pool's
                    await client.messages.create(
                        model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
                    )

    reply = raised.value.response
    assert reply.headers["anthropic-ratelimit-unified-reset"] == str(reset_s)
    assert 1790 <= int(reply.headers["retry-after"]) <= 1800
    assert SECRET_NAME not in reply.text
    error = reply.json()["error"]
    assert "accounts" not in error
    assert error["type"] == "rate_limit_error"
    assert error["next_available_at"] is not None
    assert "rate limited" in error["message"]


async def test_an_exhausted_pool_tells_an_admin_each_account_and_why(tmp_path: Path) -> None:
    paused = msgspec.structs.replace(dead_account("a", 0), paused=True)
    async with running_proxy(tmp_path, paused) as (service, url):
        key = await add_api_key(service, ApiKeyRole.ADMIN)
        async with sdk(url, api_key=key) as client:
            with pytest.raises(anthropic.InternalServerError) as raised:
                await client.messages.create(
                    model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
                )

    assert raised.value.status_code == 503
    error = raised.value.response.json()["error"]
    assert [(a["name"], a["reason"]) for a in error["accounts"]] == [(f"{SECRET_NAME}-a", "paused")]


@pytest.mark.parametrize(("role", "detailed"), [(None, False), (ApiKeyRole.ADMIN, True)])
async def test_every_account_failing_names_the_accounts_only_to_an_admin(
    tmp_path: Path, role: ApiKeyRole | None, detailed: bool
) -> None:
    async with running_proxy(tmp_path, dead_account("a", 0), dead_account("b", 1)) as (
        service,
        url,
    ):
        key = "unused" if role is None else await add_api_key(service, role)
        async with sdk(url, api_key=key) as client:
            with pytest.raises(anthropic.InternalServerError) as raised:
                await client.messages.create(
                    model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
                )
        [row] = await recorded(service)

    assert (SECRET_NAME in raised.value.response.text) is detailed
    assert row.error_message is not None
    assert f"{SECRET_NAME}-a" in row.error_message  # the history always keeps the detail
