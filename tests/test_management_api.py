"""The management API end to end: the real service under uvicorn, real HTTP, fake upstreams.

Each test drives the API the way the dashboard or a script does, and checks the effect where it
matters: in the store, in the proxy's routing, or in what a later API call returns.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from better_ccflare.core import (
    Account,
    Credentials,
    ProviderKind,
    RateLimitState,
    RequestRecord,
    UsageSnapshot,
    UsageWindow,
    update_config_file,
)
from better_ccflare.server import Service

from .support.fake_upstream import FakeUpstream, RecordedRequest, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy


async def proxied(url: str, text: str = "Hello", **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
        return await client.post(
            "/v1/messages",
            json={
                "model": MODEL,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": text}],
            },
            headers={"x-api-key": "client", **headers},
        )


async def wait_recorded(service: Service, count: int) -> None:
    for _ in range(200):
        await service.store.flush()
        if await service.store.requests.count() >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} requests were not recorded")


@pytest.fixture
async def upstream() -> AsyncGenerator[FakeUpstream]:
    async with FakeUpstream() as server:
        server.set_default(Reply.json(message_json()))
        yield server


@pytest.fixture
async def api(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> AsyncGenerator[tuple[Service, httpx2.AsyncClient]]:
    monkeypatch.setenv("HOME", str(tmp_path))  # no agent files but the test's own
    async with (
        running_proxy(tmp_path, console_account("alpha", upstream)) as (service, url),
        httpx2.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield service, client


# --------------------------------------------------------------------------- accounts


async def test_accounts_list_shows_live_state_without_secrets(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    response = await client.get("/api/accounts")
    assert response.status_code == 200
    [account] = response.json()
    assert account["name"] == "alpha"
    assert account["tokenStatus"] == "api-key"
    assert account["isAvailable"] is True
    # An API-key account has no usage window for auto-refresh or auto-fallback to act on.
    assert (account["autoRefreshApplies"], account["autoFallbackApplies"]) == (False, False)
    assert "sk-ant-api03-alpha" not in response.text


async def test_every_iso_time_has_an_epoch_ms_twin(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    service, client = api
    assert (await proxied(str(client.base_url))).status_code == 200
    await wait_recorded(service, 1)
    created = await client.post("/api/api-keys", json={"name": "ops"})
    headers = {"x-api-key": created.json()["data"]["apiKey"]}
    [account] = (await client.get("/api/accounts", headers=headers)).json()
    [request] = (await client.get("/api/requests", headers=headers)).json()
    [key] = (await client.get("/api/api-keys", headers=headers)).json()["data"]
    pairs = [
        (account["lastUsed"], account["lastUsedMs"]),
        (account["created"], account["createdMs"]),
        (request["timestamp"], request["timestampMs"]),
        (key["createdAt"], key["createdAtMs"]),
        (key["lastUsed"], key["lastUsedMs"]),
    ]
    assert account["lastUsed"] is not None
    for iso, ms in pairs:
        if iso is None:  # the key's first use may not be written yet
            assert ms is None
            continue
        assert datetime.fromisoformat(iso) == datetime.fromtimestamp(ms / 1000, UTC), (iso, ms)


async def test_adding_an_account_routes_to_it_at_once(
    api: tuple[Service, httpx2.AsyncClient], upstream: FakeUpstream
) -> None:
    service, client = api
    await client.post("/api/accounts/alpha/pause")
    added = await client.post(
        "/api/accounts/anthropic-compatible",
        json={"name": "beta", "apiKey": "beta-key-123", "customEndpoint": upstream.url},
    )
    assert added.status_code == 201, added.text
    assert added.json()["provider"] == ProviderKind.ANTHROPIC_COMPATIBLE.value
    reply = await proxied(str(client.base_url))
    assert reply.status_code == 200
    assert upstream.requests[-1].headers.get("x-api-key") == "beta-key-123"
    await wait_recorded(service, 1)


async def test_bad_input_is_a_400_naming_the_field(
    api: tuple[Service, httpx2.AsyncClient], upstream: FakeUpstream
) -> None:
    _, client = api
    cases = [
        ({"name": "bad/name", "apiKey": "k"}, "name"),
        ({"name": "ok", "apiKey": "k", "priority": "high"}, "priority"),
        ({"name": "ok", "apiKey": "k", "priority": 101}, "priority"),
        ({"name": "ok"}, "apiKey"),
    ]
    for body, field in cases:
        response = await client.post("/api/accounts/console", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
        assert field in response.json()["error"]
    duplicate = await client.post(
        "/api/accounts/console",
        json={"name": "alpha", "apiKey": "k", "customEndpoint": upstream.url},
    )
    assert duplicate.status_code == 409
    assert "already taken" in duplicate.json()["error"]
    unknown = await client.post("/api/accounts/bedrock", json={"name": "x", "apiKey": "k"})
    assert unknown.status_code == 404
    assert (await client.post("/api/accounts/nope/pause")).status_code == 404


@pytest.mark.parametrize("account_type", ["claude-console-api", "console"])
async def test_a_type_is_added_by_its_name_or_its_older_alias(
    api: tuple[Service, httpx2.AsyncClient], upstream: FakeUpstream, account_type: str
) -> None:
    _, client = api
    added = await client.post(
        f"/api/accounts/{account_type}",
        json={"name": "beta", "apiKey": "beta-key-123", "customEndpoint": upstream.url},
    )
    assert added.status_code == 201, added.text
    assert added.json()["provider"] == "claude-console-api"
    refused = await client.post(
        f"/api/accounts/{account_type}", json={"name": "gamma", "projectId": "p"}
    )
    assert "is not accepted for claude-console-api accounts" in refused.json()["error"]


@pytest.mark.parametrize(
    ("mode", "login_host"),
    [
        ("anthropic", "claude.ai"),
        ("claude-oauth", "claude.ai"),
        ("max", "claude.ai"),
        ("claude-console-api", "console.anthropic.com"),
        ("console", "console.anthropic.com"),
    ],
)
async def test_a_login_starts_for_an_account_type_by_its_name_or_alias(
    api: tuple[Service, httpx2.AsyncClient], mode: str, login_host: str
) -> None:
    _, client = api
    init = await client.post("/api/oauth/init", json={"name": "new", "mode": mode})
    assert init.status_code == 200, init.text
    auth_url: str = init.json()["authUrl"]
    assert urlsplit(auth_url).hostname == login_host


async def test_account_actions_change_routing_and_state(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    service, client = api
    paused = await client.post("/api/accounts/alpha/pause")
    assert paused.json()["paused"] is True
    alpha = service.pool.get("alpha")
    assert alpha is not None
    assert not alpha.is_available(service.clock.now_ms())
    assert (await proxied(str(client.base_url))).status_code in (429, 503)
    resumed = await client.post("/api/accounts/alpha/resume")
    assert resumed.json()["paused"] is False
    assert (await proxied(str(client.base_url))).status_code == 200

    renamed = await client.post("/api/accounts/alpha/rename", json={"name": "primary"})
    assert renamed.json()["name"] == "primary"
    prio = await client.post("/api/accounts/alpha/priority", json={"priority": 7})
    assert prio.json()["priority"] == 7
    flags = await client.post("/api/accounts/alpha/auto-fallback", json={"enabled": True})
    assert flags.json()["autoFallbackEnabled"] is True
    refresh = await client.post("/api/accounts/alpha/auto-refresh", json={"enabled": True})
    assert refresh.json()["autoRefreshEnabled"] is True
    maps = await client.post(
        "/api/accounts/alpha/model-mappings", json={"modelMappings": {"opus": ["claude-opus-5"]}}
    )
    assert maps.json()["modelMappings"] == {"opus": ["claude-opus-5"]}
    bad_endpoint = await client.post(
        "/api/accounts/alpha/custom-endpoint", json={"customEndpoint": "ftp://x"}
    )
    assert bad_endpoint.status_code == 400
    stored = await service.store.accounts.get("alpha")
    assert stored is not None
    assert (stored.name, stored.priority, stored.auto_fallback_enabled) == ("primary", 7, True)


async def test_patch_changes_several_settings_at_once(
    api: tuple[Service, httpx2.AsyncClient], upstream: FakeUpstream
) -> None:
    service, client = api
    changed = await client.patch(
        "/api/accounts/alpha",
        json={
            "name": "main",
            "priority": 3,
            "customEndpoint": upstream.url + "/",
            "modelMappings": {"sonnet": ["claude-sonnet-4-5"]},
            "autoPauseOnOverageEnabled": True,
            "billingType": "plan",
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["priority"], body["customEndpoint"]) == ("main", 3, upstream.url)
    assert body["modelMappings"] == {"sonnet": ["claude-sonnet-4-5"]}
    assert (body["autoPauseOnOverageEnabled"], body["billingType"]) == (True, "plan")
    assert body["autoFallbackEnabled"] is False  # left out, so left alone
    cleared = await client.patch(
        "/api/accounts/alpha", json={"customEndpoint": None, "billingType": None}
    )
    assert (cleared.json()["customEndpoint"], cleared.json()["billingType"]) == (None, None)
    stored = await service.store.accounts.get("alpha")
    assert stored is not None
    assert (stored.name, stored.priority, stored.custom_endpoint) == ("main", 3, None)


async def test_a_refused_edit_is_a_400_naming_the_field_and_changes_nothing(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    service, client = api
    zai = await client.post("/api/accounts/zai", json={"name": "glm", "apiKey": "zai-key"})
    refused = await client.patch(
        f"/api/accounts/{zai.json()['id']}",
        json={"priority": 9, "customEndpoint": "https://elsewhere.example"},
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "customEndpoint"
    assert "not accepted for zai accounts" in refused.json()["error"]
    stored = await service.store.accounts.get(zai.json()["id"])
    assert stored is not None
    assert (stored.priority, stored.custom_endpoint) == (0, None)
    billing = await client.post("/api/accounts/alpha/billing-type", json={"billingType": "free"})
    assert billing.status_code == 400


async def test_force_reset_ends_a_cooldown(api: tuple[Service, httpx2.AsyncClient]) -> None:
    service, client = api

    until = service.clock.now_ms() + 3_600_000
    await service.store.accounts.update_rate_limit(
        "alpha", RateLimitState(limited_until_ms=until, status="rate_limited")
    )
    await service.pool.reload()
    listed = (await client.get("/api/accounts")).json()[0]
    assert listed["rateLimitedUntil"] == until
    reset = await client.post("/api/accounts/alpha/force-reset-rate-limit")
    assert reset.json() == {"success": True, "usagePollTriggered": True}
    assert (await client.get("/api/accounts")).json()[0]["rateLimitedUntil"] is None
    assert (await proxied(str(client.base_url))).status_code == 200


async def test_delete_needs_the_name_typed_again(api: tuple[Service, httpx2.AsyncClient]) -> None:
    service, client = api
    wrong = await client.request("DELETE", "/api/accounts/alpha", json={"confirm": "alpah"})
    assert wrong.status_code == 400
    assert wrong.json()["field"] == "confirm"
    assert await service.store.accounts.get("alpha") is not None
    done = await client.request("DELETE", "/api/accounts/alpha", json={"confirm": "alpha"})
    assert done.status_code == 200
    assert await service.store.accounts.get("alpha") is None
    assert service.pool.get("alpha") is None


# --------------------------------------------------------------------------- OAuth


def token_server(request: RecordedRequest) -> Reply:
    body = request.json()
    if body.get("code") != "good-code":
        return Reply.json({"error": "invalid_grant"}, status=400)
    return Reply.json({"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 3600})


async def test_oauth_login_in_the_browser_flow_adds_a_subscription(
    api: tuple[Service, httpx2.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, client = api
    async with FakeUpstream() as tokens:
        tokens.set_default(token_server)
        monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"{tokens.url}/v1/oauth/token")
        init = await client.post("/api/oauth/init", json={"name": "max", "priority": 2})
        assert init.status_code == 200, init.text
        session_id = init.json()["sessionId"]
        auth_url: str = init.json()["authUrl"]
        query = parse_qs(urlsplit(auth_url).query)
        assert query["state"] == [session_id]

        wrong_state = await client.post(
            "/api/oauth/callback", json={"sessionId": session_id, "code": "good-code#other"}
        )
        assert wrong_state.status_code == 400
        assert wrong_state.json()["field"] == "code"
        assert tokens.requests == []  # refused before any exchange

        init = await client.post("/api/oauth/init", json={"name": "max", "priority": 2})
        session_id = init.json()["sessionId"]
        done = await client.post(
            "/api/oauth/callback", json={"sessionId": session_id, "code": f"good-code#{session_id}"}
        )
        assert done.status_code == 200, done.text
        assert done.json()["account"]["tokenStatus"] == "valid"
        assert done.json()["account"]["autoRefreshApplies"] is True
        assert done.json()["account"]["autoFallbackApplies"] is True
        assert "at-new" not in done.text
        again = await client.post(
            "/api/oauth/callback", json={"sessionId": session_id, "code": f"good-code#{session_id}"}
        )
        assert again.status_code == 400  # a login is single-use

    stored = await service.store.accounts.get_by_name("max")
    assert stored is not None
    assert stored.provider == ProviderKind.CLAUDE_OAUTH.value
    assert stored.priority == 2
    assert stored.credentials.refresh_token == "rt-new"


async def test_reauth_keeps_the_account_and_its_history(
    api: tuple[Service, httpx2.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, client = api
    old = Account(
        id="sub",
        name="sub",
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=1,
        priority=4,
        requires_reauth=True,
        total_requests=42,
        credentials=Credentials(access_token="at-old", refresh_token="rt-old", expires_at_ms=1),
    )
    await service.store.accounts.add(old)
    console = await client.post("/api/oauth/anthropic/reauth/init", json={"accountId": "alpha"})
    assert console.status_code == 400  # an API-key account has no login
    async with FakeUpstream() as tokens:
        tokens.set_default(token_server)
        monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"{tokens.url}/v1/oauth/token")
        init = await client.post("/api/oauth/anthropic/reauth/init", json={"accountId": "sub"})
        session_id = init.json()["sessionId"]
        wrong_route = await client.post(
            "/api/oauth/callback", json={"sessionId": session_id, "code": f"good-code#{session_id}"}
        )
        assert wrong_route.status_code == 400
        done = await client.post(
            "/api/oauth/anthropic/reauth/callback",
            json={"sessionId": session_id, "code": f"good-code#{session_id}"},
        )
    assert done.status_code == 200, done.text
    assert done.json()["account"]["requiresReauth"] is False
    stored = await service.store.accounts.get("sub")
    assert stored is not None
    assert (stored.priority, stored.total_requests) == (4, 42)
    assert stored.credentials.refresh_token == "rt-new"
    assert len(await service.store.accounts.list_all()) == 2


# --------------------------------------------------------------------------- auth


async def test_api_needs_an_admin_key_once_keys_exist(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    admin = (await client.post("/api/api-keys", json={"name": "ops"})).json()["data"]
    assert admin["role"] == "admin"
    assert (await client.get("/api/accounts")).status_code == 401
    as_admin = {"x-api-key": admin["apiKey"]}
    created = await client.post(
        "/api/api-keys", json={"name": "app", "role": "api-only"}, headers=as_admin
    )
    app_key = created.json()["data"]["apiKey"]
    forbidden = await client.get("/api/accounts", headers={"x-api-key": app_key})
    assert forbidden.status_code == 403
    assert "error" in forbidden.json()
    assert (await client.get("/api/accounts", headers=as_admin)).status_code == 200
    assert (await client.get("/health")).status_code == 200  # health stays open
    assert (await client.head("/health")).status_code == 200  # monitors often probe with HEAD

    listed = (await client.get("/api/api-keys", headers=as_admin)).json()
    assert listed["count"] == 2
    assert admin["apiKey"] not in json.dumps(listed)
    last_admin = await client.post("/api/api-keys/ops/disable", headers=as_admin)
    assert last_admin.status_code == 409
    demote = await client.patch(
        "/api/api-keys/ops/role", json={"role": "api-only"}, headers=as_admin
    )
    assert demote.status_code == 409
    promote = await client.patch("/api/api-keys/app/role", json={"role": "admin"}, headers=as_admin)
    assert promote.json()["data"]["role"] == "admin"
    gone = await client.delete("/api/api-keys/ops", headers=as_admin)
    assert gone.status_code == 200
    assert (await client.get("/api/accounts", headers=as_admin)).status_code == 401


# --------------------------------------------------------------------------- stats, requests


async def three_served_one_refused(
    service: Service, client: httpx2.AsyncClient, upstream: FakeUpstream
) -> None:
    """Three requests answered 200 and then one answered 400, all recorded."""
    for _ in range(3):
        assert (await proxied(str(client.base_url))).status_code == 200
    upstream.enqueue(Reply.json({"type": "error", "error": {"type": "x"}}, status=400))
    assert (await proxied(str(client.base_url))).status_code == 400
    await wait_recorded(service, 4)


async def test_stats_and_analytics_count_what_the_proxy_served(
    api: tuple[Service, httpx2.AsyncClient], upstream: FakeUpstream
) -> None:
    service, client = api
    await three_served_one_refused(service, client, upstream)

    stats = (await client.get("/api/stats")).json()
    assert stats["totalRequests"] == 4
    assert stats["successRate"] == 75
    assert stats["totalTokens"] == 3 * 117  # the error reply carries no usage
    assert stats["topModels"][0]["model"] == MODEL
    assert stats["accounts"][0]["name"] == "alpha"
    assert stats["recentErrors"][0]["statusCode"] == 400

    analytics = (await client.get("/api/analytics", params={"range": "1h"})).json()
    assert analytics["meta"] == {"range": "1h", "bucket": "1m", "cumulative": False}
    assert analytics["totals"]["requests"] == 4
    assert sum(p["requests"] for p in analytics["timeSeries"]) == 4
    assert analytics["tokenBreakdown"]["inputTokens"] == 36
    errors = await client.get("/api/analytics", params={"range": "1h", "status": "error"})
    assert errors.json()["totals"]["requests"] == 1
    by_account = await client.get("/api/analytics", params={"accounts": "no_account"})
    assert by_account.json()["totals"]["requests"] == 0
    unknown = await client.get("/api/analytics", params={"accounts": "ghost"})
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "accounts"

    rows = (await client.get("/api/requests", params={"limit": 10})).json()
    assert len(rows) == 4
    assert rows[0]["accountUsed"] == "alpha"
    failed = (await client.get("/api/requests", params={"status": "error"})).json()
    assert [r["statusCode"] for r in failed] == [400]

    payload = await client.get(f"/api/requests/payload/{rows[0]['id']}")
    assert payload.status_code == 200
    assert payload.json()["response"]["status"] in (200, 400)
    assert (await client.get("/api/requests/payload/missing")).status_code == 404
    details = (await client.get("/api/requests/detail", params={"limit": 5})).json()
    assert {d["id"] for d in details} <= {r["id"] for r in rows}

    reset = await client.post("/api/stats/reset")
    assert reset.json() == {"success": True, "deletedRequests": 4}
    assert (await client.get("/api/stats")).json()["totalRequests"] == 0


async def test_requests_are_paged_and_searched_over_the_whole_history(
    api: tuple[Service, httpx2.AsyncClient], upstream: FakeUpstream
) -> None:
    service, client = api
    await three_served_one_refused(service, client, upstream)

    async def ids(**params: str | int) -> list[str]:
        response = await client.get("/api/requests", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    every = await ids(limit=10)
    assert len(every) == 4
    assert await ids(limit=2) + await ids(limit=2, offset=2) == every
    assert await ids(limit=2, offset=4) == []
    # The account's name, in another case; the status code; a part of an id; nothing.
    assert await ids(q="ALPHA") == every
    [failed] = await ids(q="400")
    assert failed == every[0]
    assert await ids(q=every[2][-12:]) == [every[2]]
    assert await ids(q="no-such-thing") == []
    assert await ids(q="400", offset=1) == []
    too_long = await client.get("/api/requests", params={"q": "x" * 201})
    assert too_long.status_code == 400
    assert too_long.json()["field"] == "q"


async def test_request_stream_delivers_new_requests_live(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    async with client.stream("GET", "/api/requests/stream") as stream:
        lines = stream.aiter_lines()
        assert await anext(lines) == "event: connected"
        assert await anext(lines) == "data: ok"
        reply = asyncio.create_task(proxied(str(client.base_url), "streamed"))
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "summary":
            data = await asyncio.wait_for(anext(lines), 5)
            if data.startswith("data: "):
                events.append(json.loads(data.removeprefix("data: ")))
        start, event = events
        assert event["type"] == "summary"
        assert event["payload"]["accountUsed"] == "alpha"
        assert event["payload"]["statusCode"] == 200
        assert (await reply).status_code == 200
        # The start came first, as the dashboard shows a request in flight.
        assert start["type"] == "start"
        assert start["id"] == event["payload"]["id"]
        assert (start["accountUsed"], start["statusCode"]) == ("alpha", None)
        assert start["model"] == event["payload"]["model"]


async def test_session_account_names_the_account_serving_a_session(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    service, client = api
    unknown = await client.get("/api/sessions/s-1/account")
    assert unknown.json() == {"status": "unknown"}
    service.store.requests.record(
        RequestRecord(
            id="r1",
            timestamp_ms=service.clock.now_ms(),
            method="POST",
            path="/v1/messages",
            account_id="alpha",
            client_session_id="s-1",
        )
    )
    await service.store.flush()
    known = (await client.get("/api/sessions/s-1/account")).json()
    assert known["status"] == "known"
    assert known["account"]["name"] == "alpha"


# --------------------------------------------------------------------------- config


async def test_strategy_change_applies_at_once_and_persists(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    service, client = api
    strategies = (await client.get("/api/strategies")).json()
    assert [s["name"] for s in strategies] == [
        "session",
        "least-used",
        "session-affinity",
        "session-drain-soonest",
    ]
    least_used = next(s["description"] for s in strategies if s["name"] == "least-used")
    assert "lowest priority number, then the account with the most quota" in least_used
    bad = await client.post("/api/config/strategy", json={"strategy": "random"})
    assert bad.status_code == 400
    # running_proxy sets LB_STRATEGY in the environment, which wins over the file.
    env_wins = await client.post("/api/config/strategy", json={"strategy": "least-used"})
    assert env_wins.status_code == 400
    assert "LB_STRATEGY" in env_wins.json()["error"]
    assert service.strategy.name == "session"


async def test_settings_from_the_api_and_from_the_file_apply_live(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    # An empty LB_STRATEGY counts as unset, so the strategy comes from the file.
    async with (
        running_proxy(tmp_path, console_account("alpha", upstream), LB_STRATEGY="") as (
            service,
            url,
        ),
        httpx2.AsyncClient(base_url=url) as client,
    ):
        changed = await client.post("/api/config/strategy", json={"strategy": "least-used"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["strategySource"].startswith("file")
        assert service.strategy.name == "least-used"
        saved = json.loads(service.config.config_path.read_text())
        assert saved["lb_strategy"] == "least-used"

        retention = await client.post(
            "/api/config/retention", json={"payloadDays": 3, "storePayloads": False}
        )
        assert retention.json() == {"payloadDays": 3, "requestDays": 90, "storePayloads": False}
        assert (await proxied(url)).status_code == 200
        await service.store.flush()
        assert await service.store.requests.count() == 1

        # An edit to the file (what `better-ccflare strategy set` does) is picked up too.
        update_config_file(service.config.config_path, {"lb_strategy": "session-affinity"})
        await service.settings.reload_if_changed()
        assert service.strategy.name == "session-affinity"
        assert (await client.get("/api/config")).json()["lb_strategy"] == "session-affinity"
        bad_days = await client.post("/api/config/retention", json={"requestDays": 0})
        assert bad_days.status_code == 400


# --------------------------------------------------------------------------- the rest


async def test_token_health_usage_history_agents_and_logs(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    service, client = api
    health = (await client.get("/api/token-health")).json()
    assert health["data"]["summary"]["total"] == 1
    assert health["data"]["summary"]["noRefreshToken"] == 1
    assert (await client.get("/api/token-health/account/alpha")).json()["status"] == (
        "no-refresh-token"
    )
    assert (await client.get("/api/token-health/account/ghost")).status_code == 404

    now = service.clock.now_ms()
    await service.store.usage.record(
        UsageSnapshot(
            account_id="alpha",
            timestamp_ms=now,
            windows=(UsageWindow(key="five_hour", utilization=42.0, resets_at_ms=now + 1),),
        )
    )
    history = (await client.get("/api/usage-history", params={"account": "alpha"})).json()
    assert history == [
        {"timestamp": now, "window": "five_hour", "utilization": 42.0, "resetsAt": now + 1}
    ]

    pinned = await client.post("/api/agents/reviewer/preference", json={"model": "claude-opus-5"})
    assert pinned.json()["model"] == "claude-opus-5"
    assert (await client.get("/api/agents")).json()["agents"][0]["id"] == "reviewer"
    assert (await client.delete("/api/agents/reviewer/preference")).status_code == 200
    assert (await client.delete("/api/agents/reviewer/preference")).status_code == 404

    assert (await client.get("/api/logs/history")).status_code == 200
    cleanup = await client.post("/api/maintenance/cleanup")
    assert cleanup.json()["success"] is True


async def test_openapi_schema_covers_every_management_route(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    schema = (await client.get("/schema/openapi.json")).json()
    paths = set(schema["paths"])
    for path in (
        "/api/accounts",
        "/api/accounts/{account_id}/pause",
        "/api/oauth/init",
        "/api/analytics",
        "/api/requests/stream",
        "/api/api-keys/{id_or_name}/role",
        "/api/config/strategy",
        "/api/sessions/{session_id}/account",
        "/health",
    ):
        assert path in paths, path
    assert not any(p.startswith("/v1") for p in paths)


async def test_config_names_the_source_of_every_value_it_shows(
    api: tuple[Service, httpx2.AsyncClient],
) -> None:
    _, client = api
    config = (await client.get("/api/config")).json()
    shown = set(config) - {"sources", "tls_enabled"}
    assert shown == set(config["sources"])
    assert config["sources"]["lb_strategy"] == "environment (LB_STRATEGY)"
    assert config["sources"]["sessionDurationMs"] == "default"
