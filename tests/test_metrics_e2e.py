"""``/metrics`` end to end: the real service against the fake upstream, scraped and parsed with
prometheus-client's own parser, as a Prometheus server would read it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anthropic
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from better_ccflare.core import ApiKeyRole, KeyLimits
from better_ccflare.proxy.admin import set_api_key_limits

from .support.client import add_api_key, ask, raw_request, recorded, sdk
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json, quota_429, stream_events
from .support.service import console_account, running_proxy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str, token: str | None = None) -> Samples:
    """Every sample of ``/metrics``, keyed by sample name and labels."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient() as client:
        reply = await client.get(f"{url}/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_counters_move_by_exactly_the_requests_served(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        account = console_account("a", upstream)
        async with running_proxy(tmp_path, account) as (service, url):
            before = await scrape(url)
            upstream.set_default(Reply.json(message_json()))
            await ask(url)
            upstream.set_default(Reply.stream(stream_events(["One ", "two"])))
            async with (
                sdk(url) as client,
                client.messages.stream(
                    model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
                ) as stream,
            ):
                await stream.get_final_message()
            bad = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
            upstream.set_default(Reply.json(bad, status=400))
            with pytest.raises(anthropic.BadRequestError):
                await ask(url)
            await recorded(service, 3)
            after = await scrape(url)

    who = {"account": "a", "provider": account.provider, "model": MODEL}
    assert moved(before, after, "better_ccflare_requests_total", status_class="2xx", **who) == 2
    assert moved(before, after, "better_ccflare_requests_total", status_class="4xx", **who) == 1
    assert moved(before, after, "better_ccflare_input_tokens_total", **who) == 12 + 20
    assert moved(before, after, "better_ccflare_output_tokens_total", **who) == 5 + 2
    assert moved(before, after, "better_ccflare_cache_read_input_tokens_total", **who) == 100
    assert moved(before, after, "better_ccflare_spend_usd_total", **who) == pytest.approx(
        (32 * 3 + 7 * 15 + 100 * 0.3) / 1e6
    )
    assert moved(before, after, "better_ccflare_request_total_latency_seconds_count", **who) == 3
    first_byte = "better_ccflare_llm_api_time_to_first_byte_seconds_count"
    assert moved(before, after, first_byte, **who) == 3
    assert moved(before, after, "better_ccflare_overhead_latency_seconds_count") == 3
    assert value(after, "better_ccflare_in_flight_requests") == 0
    state = {"account": "a", "provider": account.provider}
    assert value(after, "better_ccflare_account_state", state="ready", **state) == 1
    assert value(after, "better_ccflare_account_state", state="cooling_down", **state) == 0
    assert value(after, "better_ccflare_db_writer_batches_total") >= 1


async def test_a_request_no_account_could_serve_is_counted_without_an_account(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path) as (service, url):
        with pytest.raises(anthropic.APIStatusError):
            await ask(url)
        await recorded(service)
        after = await scrape(url)
    labels = {"account": "none", "provider": "none", "model": MODEL}
    assert value(after, "better_ccflare_requests_total", status_class="5xx", **labels) == 1
    assert value(after, "better_ccflare_overhead_latency_seconds_count") == 0


async def test_made_up_model_names_share_a_bounded_set_of_series(tmp_path: Path) -> None:
    missing = {"type": "error", "error": {"type": "not_found_error", "message": "no model"}}
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(missing, status=404))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            for i in range(100):
                body = json.dumps({"model": f"bogus-{i}", "max_tokens": 1, "messages": []})
                await raw_request(url, b"/v1/messages", body.encode())
            await recorded(service, 100)
            after = await scrape(url)
    counts = {
        dict(labels)["model"]: count
        for (name, labels), count in after.items()
        if name == "better_ccflare_requests_total"
    }
    assert len(counts) == 33  # the first 32 names, then "other"
    assert counts["other"] == 100 - 32
    assert sum(counts.values()) == 100


async def _status(url: str, headers: dict[str, str]) -> int:
    async with httpx2.AsyncClient() as client:
        return (await client.get(f"{url}/metrics", headers=headers)).status_code


async def test_once_keys_exist_only_admins_and_the_scrape_token_may_scrape(
    tmp_path: Path,
) -> None:
    token = "scrape-token-for-prometheus"
    async with running_proxy(tmp_path, BETTER_CCFLARE_METRICS_TOKEN=token) as (service, url):
        assert await _status(url, {}) == 200  # no keys yet: a fresh install stays usable
        admin = await add_api_key(service, ApiKeyRole.ADMIN)
        api_only = await add_api_key(service, ApiKeyRole.API_ONLY)
        assert await _status(url, {}) == 401
        assert await _status(url, {"authorization": "Bearer wrong"}) == 401
        assert await _status(url, {"authorization": f"Bearer {api_only}"}) == 403
        assert await _status(url, {"authorization": f"Bearer {admin}"}) == 200
        assert await _status(url, {"authorization": f"Bearer {token}"}) == 200
        # The scrape token opens /metrics and nothing else.
        async with httpx2.AsyncClient() as client:
            reply = await client.get(
                f"{url}/api/accounts", headers={"authorization": f"Bearer {token}"}
            )
        assert reply.status_code == 401


async def test_the_metrics_route_is_not_in_the_openapi_schema(tmp_path: Path) -> None:
    async with running_proxy(tmp_path) as (_, url), httpx2.AsyncClient() as client:
        schema = (await client.get(f"{url}/schema/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def test_failovers_and_cooldowns_are_counted_as_they_happen(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        accounts = (console_account("a", upstream), console_account("b", upstream))
        async with running_proxy(tmp_path, *accounts) as (service, url):
            before = await scrape(url)
            upstream.enqueue(quota_429(int(time.time()) + 3600), Reply.json(message_json()))
            await ask(url)
            await recorded(service, 1)
            after = await scrape(url)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("better_ccflare_failovers_total", reason="account_quota") == 1
    assert grew("better_ccflare_failovers_total") == 1
    assert grew("better_ccflare_cooldowns_started_total") == 1
    assert grew("better_ccflare_requests_total", status_class="2xx") == 1
    benched = [labels for (n, labels), v in after.items() if n.endswith("_state") and v == 1]
    assert sum(("state", "cooling_down") in labels for labels in benched) == 1


async def test_a_limited_keys_spend_and_remaining_budget_are_gauges(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (service, url):
            admin = await add_api_key(service, ApiKeyRole.ADMIN)
            dev = await add_api_key(service, ApiKeyRole.API_ONLY, name="dev")
            unlimited = await add_api_key(service, ApiKeyRole.API_ONLY, name="free")
            await set_api_key_limits(
                service.store, "dev", KeyLimits(budget_daily_usd=1.0, budget_monthly_usd=5.0)
            )
            service.auth.invalidate()
            for key in (dev, dev, unlimited):
                async with sdk(url, api_key=key) as client:
                    await client.messages.create(
                        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
                    )
            await recorded(service, 3)
            samples = await scrape(url, admin)

    cost = 2 * (12 * 3 + 5 * 15 + 100 * 0.3) / 1e6  # two of message_json()'s replies
    spend = "better_ccflare_api_key_spend_usd"
    remaining = "better_ccflare_api_key_budget_remaining_usd"
    for period in ("day", "week", "month"):
        assert value(samples, spend, key="dev", period=period) == pytest.approx(cost)
    assert value(samples, remaining, key="dev", period="day") == pytest.approx(1.0 - cost)
    assert value(samples, remaining, key="dev", period="month") == pytest.approx(5.0 - cost)
    assert (
        "better_ccflare_api_key_budget_remaining_usd",
        frozenset({("key", "dev"), ("period", "week")}),
    ) not in samples  # no weekly budget, no remaining
    assert not any(dict(labels).get("key") == "free" for _, labels in samples)
    assert value(samples, "better_ccflare_api_key_in_flight_requests", key="dev") == 0
