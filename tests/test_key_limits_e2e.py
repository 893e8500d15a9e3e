"""Per-key limits under the real server, with the official ``anthropic`` SDK as the client.

The SDK here retries (``max_retries`` above 0), so these tests show what a client does with
each refusal: a rate limit is retried after its ``retry-after``, an exhausted budget is not
retried at all (``x-should-retry: false``), an expired key and a model outside the allow-list
are final. Every attempt the SDK makes is counted at its HTTP client. The service runs on a
:class:`FakeClock`; when the SDK meets a rate limit, the clock is moved past the limit's
``retry-after`` so the retry (after the SDK's real one-second wait) finds the limit freed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anthropic
import httpx2
import pytest

from better_ccflare.core import ApiKey, ApiKeyRole, FakeClock, KeyLimits
from better_ccflare.proxy import generate_api_key, hash_api_key
from better_ccflare.server import Service

from .support.client import recorded
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy

T0 = 1_767_225_600_000 + 12 * 3_600_000  # 2026-01-01T12:00:00Z


class _Attempts:
    """What the SDK sent and got, one entry per HTTP attempt (retries included)."""

    def __init__(self, on_response: Callable[[httpx2.Response], None] | None = None) -> None:
        self.statuses: list[int] = []
        self.at: list[float] = []
        self._on_response = on_response

    async def response(self, response: httpx2.Response) -> None:
        self.statuses.append(response.status_code)
        self.at.append(time.monotonic())
        if self._on_response is not None:
            self._on_response(response)


@asynccontextmanager
async def _client(
    url: str, key: str, attempts: _Attempts, max_retries: int = 2
) -> AsyncGenerator[anthropic.AsyncAnthropic]:
    http = httpx2.AsyncClient(event_hooks={"response": [attempts.response]})
    async with anthropic.AsyncAnthropic(
        base_url=url, api_key=key, max_retries=max_retries, http_client=http
    ) as client:
        yield client


async def _ask(client: anthropic.AsyncAnthropic, model: str = MODEL) -> anthropic.types.Message:
    return await client.messages.create(
        model=model, max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
    )


async def _limited_key(service: Service, limits: KeyLimits, name: str = "dev") -> str:
    """An api-only key with ``limits`` (an admin key exists too, as the first key must be)."""
    for role, key_name, key_limits in (
        (ApiKeyRole.ADMIN, "admin", None),
        (ApiKeyRole.API_ONLY, name, limits),
    ):
        if await service.store.api_keys.get(key_name) is not None:
            continue
        text = generate_api_key()
        await service.store.api_keys.add(
            ApiKey(
                id=f"id-{key_name}",
                name=key_name,
                hashed_key=hash_api_key(text),
                prefix_last_8=text[-8:],
                created_at_ms=0,
                role=role,
                limits=key_limits,
            )
        )
        if key_name == name:
            service.auth.invalidate()
            return text
    raise AssertionError("the key exists already")


@asynccontextmanager
async def _proxy(
    tmp_path: Path, clock: FakeClock
) -> AsyncGenerator[tuple[Service, str, FakeUpstream]]:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream), clock=clock) as (
            service,
            url,
        ):
            yield service, url, upstream


@pytest.mark.parametrize(
    ("limits", "name", "resets_in_s", "resets_at"),
    [
        (KeyLimits(budget_daily_usd=0.0001), "daily budget", 12 * 3600, "2026-01-02T00:00:00Z"),
        # T0 is a Thursday: the week ends on Monday 2026-01-05.
        (
            KeyLimits(budget_weekly_usd=0.0001),
            "weekly budget",
            84 * 3600,
            "2026-01-05T00:00:00Z",
        ),
        (
            KeyLimits(budget_monthly_usd=0.0001),
            "monthly budget",
            (30 * 24 + 12) * 3600,
            "2026-02-01T00:00:00Z",
        ),
    ],
)
async def test_an_exhausted_budget_is_a_429_the_sdk_does_not_retry(
    tmp_path: Path, limits: KeyLimits, name: str, resets_in_s: int, resets_at: str
) -> None:
    clock = FakeClock(T0)
    async with _proxy(tmp_path, clock) as (service, url, upstream):
        key = await _limited_key(service, limits)
        attempts = _Attempts()
        async with _client(url, key, attempts, max_retries=3) as client:
            await _ask(client)  # costs $0.000141: past the budget, for the next request
            await recorded(service)
            with pytest.raises(anthropic.RateLimitError) as refused:
                await _ask(client)

    assert attempts.statuses == [200, 429]  # one attempt for the refusal: no retry
    headers = refused.value.response.headers
    assert headers["x-should-retry"] == "false"
    assert headers["x-better-ccflare-key-limit"] == name
    assert int(headers["retry-after"]) == resets_in_s
    assert name in refused.value.message
    assert resets_at in refused.value.message
    assert len(upstream.requests) == 1


async def test_a_requests_per_minute_refusal_is_retried_after_its_retry_after(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    async with _proxy(tmp_path, clock) as (service, url, upstream):
        key = await _limited_key(service, KeyLimits(rpm=1))
        clock.advance(59_000)  # the first request, below, frees its slot at T0 + 119 s

        def move_past_limit(response: httpx2.Response) -> None:
            if response.status_code == 429:
                clock.advance(int(response.headers["retry-after"]) * 1000)

        attempts = _Attempts(move_past_limit)
        async with _client(url, key, attempts) as client:
            await _ask(client)
            clock.advance(59_000)
            message = await _ask(client)

    assert message.content
    assert attempts.statuses == [200, 429, 200]
    assert attempts.at[2] - attempts.at[1] >= 1.0  # the SDK waited the retry-after (1 s)
    assert len(upstream.requests) == 2


async def test_a_tokens_per_minute_refusal_frees_a_minute_after_the_tokens_were_used(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    async with _proxy(tmp_path, clock) as (service, url, _):
        key = await _limited_key(service, KeyLimits(tpm=10))
        seen: list[str] = []

        def move_past_limit(response: httpx2.Response) -> None:
            if response.status_code == 429:
                seen.append(response.headers["retry-after"])
                clock.advance(int(response.headers["retry-after"]) * 1000)

        attempts = _Attempts(move_past_limit)
        async with _client(url, key, attempts) as client:
            await _ask(client)  # 12 input + 5 output tokens: over 10
            await recorded(service)
            await _ask(client)

    assert attempts.statuses == [200, 429, 200]
    assert seen == ["60"]


async def test_an_expired_key_is_a_401_that_says_so(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    async with _proxy(tmp_path, clock) as (service, url, upstream):
        key = await _limited_key(service, KeyLimits(expires_at_ms=T0 + 1_000))
        attempts = _Attempts()
        async with _client(url, key, attempts) as client:
            await _ask(client)
            clock.advance(1_000)
            with pytest.raises(anthropic.AuthenticationError) as refused:
                await _ask(client)

    assert attempts.statuses == [200, 401]
    assert "expired at 2026-01-01T12:00:01Z" in refused.value.message
    assert len(upstream.requests) == 1


async def test_a_model_outside_the_allow_list_is_a_400_before_any_upstream_call(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    async with _proxy(tmp_path, clock) as (service, url, upstream):
        key = await _limited_key(service, KeyLimits(models=("claude-haiku-*",)))
        attempts = _Attempts()
        async with _client(url, key, attempts) as client:
            with pytest.raises(anthropic.BadRequestError) as refused:
                await _ask(client, model=MODEL)
            await _ask(client, model="claude-haiku-5")

    assert attempts.statuses == [400, 200]
    assert refused.value.response.headers["x-better-ccflare-key-limit"] == "model allow-list"
    assert "claude-haiku-*" in refused.value.message
    assert [r.json()["model"] for r in upstream.requests] == ["claude-haiku-5"]


async def test_requests_over_the_concurrency_cap_wait_their_turn(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    async with _proxy(tmp_path, clock) as (service, url, upstream):
        upstream.set_default(_slow(0.3))
        key = await _limited_key(service, KeyLimits(max_concurrent=1))
        attempts = _Attempts()
        async with _client(url, key, attempts, max_retries=0) as client:
            messages = await asyncio.gather(*(_ask(client) for _ in range(3)))

    assert len(messages) == 3
    assert attempts.statuses == [200, 200, 200]
    arrivals = sorted(r.received_at for r in upstream.requests)
    assert all(b - a >= 0.3 for a, b in itertools.pairwise(arrivals))


async def test_a_full_concurrency_queue_refuses_with_a_retryable_429(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    async with _proxy(tmp_path, clock) as (service, url, upstream):
        upstream.enqueue(_slow(1.5))  # the first holds the only slot while 17 more arrive
        key = await _limited_key(service, KeyLimits(max_concurrent=1))
        attempts = _Attempts()
        async with _client(url, key, attempts, max_retries=0) as client:
            first = asyncio.create_task(_ask(client))
            await asyncio.sleep(0.3)
            outcomes = await asyncio.gather(
                *(_ask(client) for _ in range(17)), return_exceptions=True
            )
            await first

    refused = [o for o in outcomes if isinstance(o, anthropic.RateLimitError)]
    assert len(refused) == 1  # 16 waited (the queue's bound), the 17th was refused
    assert refused[0].response.headers["x-better-ccflare-key-limit"] == "concurrent requests"
    assert refused[0].response.headers["retry-after"] == "1"
    assert len(upstream.requests) == 17


def _slow(seconds: float) -> Reply:
    return Reply(
        headers={"content-type": "application/json"},
        body=Reply.json(message_json()).body,
        headers_delay_s=seconds,
    )


async def test_the_keys_api_sets_limits_and_lists_what_each_key_used(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    async with (
        _proxy(tmp_path, clock) as (service, url, _),
        httpx2.AsyncClient(base_url=url, timeout=10) as api,
    ):
        admin = (await api.post("/api/api-keys", json={"name": "ops"})).json()["data"]
        as_admin = {"x-api-key": admin["apiKey"]}
        created = await api.post(
            "/api/api-keys",
            json={"name": "dev", "limits": {"rpm": 5, "budgetDailyUsd": 1}},
            headers=as_admin,
        )
        dev = created.json()["data"]
        assert dev["limits"] == {"rpm": 5, "budgetDailyUsd": 1.0}
        bad = await api.put(
            "/api/api-keys/dev/limits", json={"limits": {"rpm": 0}}, headers=as_admin
        )
        assert bad.status_code == 400
        assert "rpm" in bad.text
        changed = await api.put(
            "/api/api-keys/dev/limits",
            json={
                "limits": {
                    "tpm": 1000,
                    "maxConcurrent": 2,
                    "models": ["claude-*"],
                    "expiresAt": "2026-02-01T00:00:00Z",
                }
            },
            headers=as_admin,
        )
        assert changed.json()["data"]["limits"] == {
            "tpm": 1000,
            "maxConcurrent": 2,
            "models": ["claude-*"],
            "expiresAt": "2026-02-01T00:00:00Z",
        }
        async with _client(url, dev["apiKey"], _Attempts(), max_retries=0) as client:
            await _ask(client)
        await recorded(service)
        listed = (await api.get("/api/api-keys", headers=as_admin)).json()["data"]
        by_key = (await api.get("/api/analytics/keys", headers=as_admin)).json()["data"]
        analytics = (await api.get("/api/analytics?range=1h", headers=as_admin)).json()
        cleared = await api.put("/api/api-keys/dev/limits", json={"limits": None}, headers=as_admin)

    use = next(k for k in listed if k["name"] == "dev")["use"]
    assert use["requestsLastMinute"] == 1
    assert use["tokensLastMinute"] == 17
    assert use["inFlight"] == 0
    assert use["spentTodayUsd"] == pytest.approx(0.000141)
    assert use["dayResetsAt"] == "2026-01-02T00:00:00Z"
    assert cleared.json()["data"]["limits"] is None
    assert [row["name"] for row in by_key] == ["dev", "ops"]  # most spent this month first
    assert by_key[0]["use"]["tokensToday"] == 17
    assert by_key[0]["use"]["spentThisMonthUsd"] == pytest.approx(0.000141)
    assert by_key[0]["limits"]["tpm"] == 1000
    [performance] = analytics["apiKeyPerformance"]
    assert (performance["name"], performance["totalTokens"]) == ("dev", 117)
    assert performance["costUsd"] == pytest.approx(0.000141)
