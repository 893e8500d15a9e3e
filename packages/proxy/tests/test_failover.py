"""The pipeline's failover rules, one per test, with ``ProxyApp`` called as a plain ASGI app.

No server and no sockets: each test scripts what the upstream answers to each attempt, in
order, through an in-memory :class:`UpstreamTransport`, and reads what the client got, what the
upstream was sent, the accounts' cooldowns and the recorded request. The same rules are proven
end to end, under uvicorn and against a real fake upstream, in ``tests/test_proxy_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
import pytest

from better_ccflare.core import (
    Account,
    AccountState,
    ApiKey,
    ApiKeyRole,
    Credentials,
    FakeClock,
    ProviderKind,
    RateLimitReason,
    RequestRecord,
    StrategyName,
)
from better_ccflare.database import SecretKey, Store
from better_ccflare.load_balancer import create_strategy
from better_ccflare.providers import (
    ProviderRegistry,
    RateLimitInfo,
    UpstreamRequest,
    builtin_providers,
)
from better_ccflare.proxy import (
    AccountPool,
    ApiKeyAuthenticator,
    CredentialsRejected,
    Failover,
    PoolEvent,
    ProxyApp,
    ProxyDeps,
    ProxySettings,
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransport,
    generate_api_key,
    hash_api_key,
)

NOW = 1_800_000_000_000
HOUR = 3_600_000
MODEL = "claude-sonnet-4-5"
REQUEST = json.dumps(
    {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
).encode()


def message(text: str) -> bytes:
    return json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 2},
        }
    ).encode()


def error(status: int, kind: str, headers: Sequence[tuple[str, str]] = ()) -> Canned:
    body = json.dumps({"type": "error", "error": {"type": kind, "message": "upstream says no"}})
    return Canned(status, [("content-type", "application/json"), *headers], [body.encode()])


def rate_limited(reset_ms: int) -> Canned:
    return error(
        429,
        "rate_limit_error",
        [
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-reset", str(reset_ms // 1000)),
        ],
    )


class Canned(UpstreamResponse):
    """One scripted upstream response: these chunks, then (optionally) the connection dies."""

    def __init__(
        self,
        status: int,
        headers: Sequence[tuple[str, str]],
        chunks: Sequence[bytes],
        *,
        dies_with: Exception | None = None,
    ) -> None:
        self.status = status
        self.headers = list(headers)
        self._chunks = chunks
        self._dies_with = dies_with
        self.closed = False

    @classmethod
    def ok(cls, text: str) -> Canned:
        return cls(200, [("content-type", "application/json")], [message(text)])

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._dies_with is not None:
            raise self._dies_with

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        self.closed = True


class Stall:
    """An upstream that never sends its headers."""


Attempt = Canned | Exception | Stall


class ScriptedTransport(UpstreamTransport):
    """Answers each attempt with the next item of its script, and remembers what was sent."""

    def __init__(self) -> None:
        self.script: list[Attempt] = []
        self.sent: list[UpstreamRequest] = []
        self.stalled = asyncio.Event()
        """Set when an attempt reaches a :class:`Stall`."""

    def answer(self, *attempts: Attempt) -> None:
        self.script.extend(attempts)

    def accounts_tried(self) -> list[str]:
        """The account of each attempt, in order (the host names the account)."""
        return [(urlsplit(r.url).hostname or "").split(".")[0] for r in self.sent]

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        self.sent.append(request)
        assert self.script, f"unscripted attempt: {request.url}"
        attempt = self.script.pop(0)
        if isinstance(attempt, Exception):
            raise attempt
        if isinstance(attempt, Stall):
            self.stalled.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")
        return attempt

    async def aclose(self) -> None:
        pass


class ScriptedCredentials:
    """The account's stored credentials; a forced refresh yields ``refreshed``."""

    def __init__(self) -> None:
        self.refreshed = Credentials(
            access_token="at-new", refresh_token="rt-new", expires_at_ms=NOW + 8 * HOUR
        )
        self.forced: list[tuple[str, Credentials]] = []

    async def credentials_for(self, account: Account) -> Credentials:
        return account.credentials

    async def force_refresh(self, account: Account, rejected: Credentials) -> Credentials:
        self.forced.append((account.id, rejected))
        return self.refreshed


def console(name: str, priority: int) -> Account:
    return Account(
        id=name,
        name=name,
        provider=ProviderKind.CONSOLE.value,
        created_at_ms=0,
        priority=priority,
        custom_endpoint=f"https://{name}.upstream.test",
        credentials=Credentials(api_key=f"sk-ant-api03-{name}"),
    )


def subscription(name: str, priority: int) -> Account:
    return Account(
        id=name,
        name=name,
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=0,
        priority=priority,
        custom_endpoint=f"https://{name}.upstream.test",
        credentials=Credentials(
            access_token="at-old", refresh_token="rt-old", expires_at_ms=NOW + 8 * HOUR
        ),
    )


@dataclass
class Answer:
    """What the client received."""

    status: int
    headers: dict[str, str]
    body: bytes
    ended: bool
    """Whether the last body message closed the response (``more_body`` false)."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Proxy:
    app: ProxyApp
    transport: ScriptedTransport
    credentials: ScriptedCredentials
    pool: AccountPool
    store: Store
    clock: FakeClock
    auth: ApiKeyAuthenticator

    async def ask(
        self,
        headers: Sequence[tuple[str, str]] = (),
        *,
        leaves: asyncio.Event | None = None,
        raw_path: bytes = b"/v1/messages",
        request: bytes = REQUEST,
    ) -> Answer:
        """One ``POST`` (to ``/v1/messages`` unless ``raw_path`` says otherwise, decoded the
        way uvicorn does); the client hangs up once ``leaves`` is set."""
        pending = [{"type": "http.request", "body": request, "more_body": False}]
        gone = leaves or asyncio.Event()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                *((k.encode(), v.encode()) for k, v in headers),
            ],
        }
        await self.app(scope, receive, send)
        if not sent:
            return Answer(status=0, headers={}, body=b"", ended=False)
        start, *body = sent
        return Answer(
            status=start["status"],
            headers={k.decode(): v.decode() for k, v in start["headers"]},
            body=b"".join(m["body"] for m in body),
            ended=bool(body) and not body[-1]["more_body"],
        )

    async def admin(self) -> tuple[str, str]:
        """The header of a new admin key: a client that may see the pool's detail."""
        key = generate_api_key()
        await self.store.api_keys.add(
            ApiKey(
                id="admin",
                name="admin",
                hashed_key=hash_api_key(key),
                prefix_last_8=key[-8:],
                created_at_ms=0,
                role=ApiKeyRole.ADMIN,
            )
        )
        self.auth.invalidate()
        return ("x-api-key", key)

    async def records(self) -> list[RequestRecord]:
        """Every recorded request, oldest first."""
        await self.store.flush()
        return list(reversed(await self.store.requests.list_recent(100)))

    def cooldown(self, account_id: str) -> tuple[int | None, RateLimitReason | None]:
        account = self.pool.get(account_id)
        assert account is not None
        return account.rate_limit.limited_until_ms, account.rate_limit.reason


@pytest.fixture
async def store(tmp_path: Path) -> AsyncGenerator[Store]:
    async with await Store.open(tmp_path / "db.sqlite", key=SecretKey.generate()) as opened:
        yield opened


ProxyWith = Callable[..., Awaitable[Proxy]]
"""Builds the proxy over the given accounts (the fixture below)."""


@pytest.fixture
def proxy_with(store: Store) -> ProxyWith:
    async def build(*accounts: Account) -> Proxy:
        clock = FakeClock(now_ms=NOW)
        for account in accounts:
            await store.accounts.add(account)
        pool = AccountPool(store, clock, session_duration_ms=5 * HOUR)
        await pool.reload()
        transport = ScriptedTransport()
        credentials = ScriptedCredentials()
        strategy = create_strategy(StrategyName.SESSION)
        auth = ApiKeyAuthenticator(store, clock)
        app = ProxyApp(
            ProxyDeps(
                pool=pool,
                registry=ProviderRegistry(builtins=builtin_providers(), plugins=()),
                transport=transport,
                credentials=credentials,
                strategy=lambda: strategy,
                usage=dict,
                store=store,
                clock=clock,
                # No in-place 529 retries unless a test turns them on: each scripted 529 is
                # then one account's whole attempt.
                settings=ProxySettings(overload_retries=0),
                auth=auth,
            )
        )
        return Proxy(app, transport, credentials, pool, store, clock, auth)

    return build


async def test_a_429_with_a_reset_fails_over_and_benches_the_account_until_the_reset(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    reset_ms = NOW + HOUR
    proxy.transport.answer(rate_limited(reset_ms), Canned.ok("from b"), Canned.ok("b again"))

    first = await proxy.ask()
    second = await proxy.ask()

    assert first.json()["content"][0]["text"] == "from b"
    assert second.json()["content"][0]["text"] == "b again"
    assert proxy.transport.accounts_tried() == ["a", "b", "b"]
    assert proxy.cooldown("a") == (reset_ms, RateLimitReason.UPSTREAM_429_WITH_RESET)


async def test_a_benched_account_serves_again_exactly_at_its_reset(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    reset_ms = NOW + 600_000
    proxy.transport.answer(rate_limited(reset_ms), Canned.ok("b"), Canned.ok("b"))
    await proxy.ask()
    proxy.clock.set(reset_ms - 1)
    await proxy.ask()
    proxy.clock.set(reset_ms)
    proxy.transport.answer(Canned.ok("a"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "a"
    assert proxy.transport.accounts_tried() == ["a", "b", "b", "a"]


async def test_a_529_fails_over(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(error(529, "overloaded_error"), Canned.ok("from b"))

    answer = await proxy.ask()

    assert answer.status == 200
    assert answer.json()["content"][0]["text"] == "from b"
    assert proxy.transport.accounts_tried() == ["a", "b"]


async def test_a_connection_error_fails_over(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(UpstreamConnectError("connection refused"), Canned.ok("from b"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert proxy.transport.accounts_tried() == ["a", "b"]


async def test_a_first_byte_timeout_fails_over(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(UpstreamTimeoutError("first_byte"), Canned.ok("from b"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert proxy.transport.accounts_tried() == ["a", "b"]


async def test_an_error_body_cut_off_by_the_upstream_fails_over(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    dying = Canned(
        500,
        [("content-type", "application/json")],
        [b'{"type": "error", '],
        dies_with=UpstreamConnectError("connection reset"),
    )
    proxy.transport.answer(dying, Canned.ok("from b"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert dying.closed


async def test_the_failover_count_and_the_serving_account_are_recorded(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1), console("c", 2))
    proxy.transport.answer(
        UpstreamConnectError("refused"), error(529, "overloaded_error"), Canned.ok("from c")
    )

    await proxy.ask()

    [record] = await proxy.records()
    assert (record.account_id, record.failover_attempts) == ("c", 2)
    assert record.success


async def test_a_401_forces_one_refresh_and_retries_the_same_account(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(subscription("sub", 0), console("b", 1))
    proxy.transport.answer(error(401, "authentication_error"), Canned.ok("authorized"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "authorized"
    assert proxy.transport.accounts_tried() == ["sub", "sub"]
    assert [r.headers["authorization"] for r in proxy.transport.sent] == [
        "Bearer at-old",
        "Bearer at-new",
    ]
    assert [(account, rejected.access_token) for account, rejected in proxy.credentials.forced] == [
        ("sub", "at-old")
    ]
    [record] = await proxy.records()
    assert (record.account_id, record.failover_attempts) == ("sub", 0)


async def test_a_401_after_the_forced_refresh_fails_over(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(subscription("sub", 0), console("b", 1))
    proxy.transport.answer(
        error(401, "authentication_error"),
        error(401, "authentication_error"),
        Canned.ok("from b"),
    )

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert proxy.transport.accounts_tried() == ["sub", "sub", "b"]
    assert len(proxy.credentials.forced) == 1


async def test_a_401_on_an_api_key_account_fails_over_without_a_refresh(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(error(401, "authentication_error"), Canned.ok("from b"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert proxy.transport.accounts_tried() == ["a", "b"]
    assert proxy.credentials.forced == []


async def test_an_ordinary_error_is_passed_through_without_failover(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    invalid = error(400, "invalid_request_error")
    proxy.transport.answer(invalid)

    answer = await proxy.ask()

    assert answer.status == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert proxy.transport.accounts_tried() == ["a"]


async def test_no_failover_once_the_response_has_started(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    first_half = b'event: message_start\ndata: {"type": "message_start"}\n\n'
    breaking = Canned(
        200,
        [("content-type", "text/event-stream")],
        [first_half],
        dies_with=UpstreamConnectError("connection reset"),
    )
    proxy.transport.answer(breaking, Canned.ok("never sent"))

    answer = await proxy.ask()

    # The client sees the stream break: an error event ends it (tests below).
    assert (answer.status, answer.ended) == (200, True)
    assert answer.body.startswith(first_half + b"\nevent: error\n")
    assert proxy.transport.accounts_tried() == ["a"]
    [record] = await proxy.records()
    assert record.stream_terminal_state == "upstream_closed"
    assert not record.success


async def test_when_every_account_fails_the_client_gets_a_502_naming_each_failure(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(UpstreamConnectError("refused"), UpstreamTimeoutError("first_byte"))

    answer = await proxy.ask([await proxy.admin()])

    assert answer.status == 502
    assert answer.json() == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "Every account failed: a: connection failed (refused); "
            "b: upstream first_byte timeout",
        },
    }
    [record] = await proxy.records()
    assert (record.status_code, record.account_id) == (502, None)


async def test_when_every_account_is_rate_limited_the_client_gets_the_pools_429(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(rate_limited(NOW + 2 * HOUR), rate_limited(NOW + HOUR))

    answer = await proxy.ask([await proxy.admin()])

    assert answer.status == 429
    assert answer.headers["anthropic-ratelimit-unified-reset"] == str((NOW + HOUR) // 1000)
    assert answer.headers["retry-after"] == "3600"
    assert [a["reason"] for a in answer.json()["error"]["accounts"]] == [
        "rate_limited",
        "rate_limited",
    ]


async def test_the_clients_credentials_are_replaced_by_the_accounts(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0))
    proxy.transport.answer(Canned.ok("hi"))

    await proxy.ask([("x-api-key", "client-key"), ("authorization", "Bearer client-token")])

    [sent] = proxy.transport.sent
    assert sent.headers["x-api-key"] == "sk-ant-api03-a"
    assert "client-key" not in str(sent.headers)
    assert "client-token" not in str(sent.headers)


async def test_a_client_leaving_before_the_upstream_answers_ends_the_request(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(Stall(), Canned.ok("never asked"))
    leaves = asyncio.Event()
    request = asyncio.create_task(proxy.ask(leaves=leaves))
    await proxy.transport.stalled.wait()

    leaves.set()
    done, _ = await asyncio.wait({request}, timeout=5)

    assert done, "the request went on waiting for the upstream after the client left"
    answer = request.result()

    assert answer.status == 0  # nothing was sent to a client that is gone
    assert proxy.transport.accounts_tried() == ["a"]
    [record] = await proxy.records()
    assert (record.status_code, record.stream_terminal_state) == (499, "client_disconnected")


# A response the upstream breaks after the first byte


def upstream_error_event(message: str) -> bytes:
    error = {"type": "error", "error": {"type": "api_error", "message": message}}
    return b"\nevent: error\ndata: %s\n\n" % json.dumps(error, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("cause", "message"),
    [
        (
            UpstreamConnectError("connection reset"),
            "The upstream connection closed mid-response; the response is incomplete.",
        ),
        (
            UpstreamTimeoutError("idle"),
            "The upstream stopped sending (upstream idle timeout); the response is incomplete.",
        ),
    ],
)
async def test_a_stream_broken_after_the_first_byte_ends_with_an_error_event(
    proxy_with: ProxyWith, cause: Exception, message: str
) -> None:
    proxy = await proxy_with(console("a", 0))
    # Cut in the middle of an event: the leading newline ends its line, and the error event's
    # own ``event:`` line makes the whole event an error.
    partial = b'event: message_start\ndata: {"type": "message_start"}\n\nevent: ping\ndata: {"ty'
    proxy.transport.answer(
        Canned(200, [("content-type", "text/event-stream")], [partial], dies_with=cause)
    )

    answer = await proxy.ask()

    assert (answer.status, answer.ended) == (200, True)
    assert answer.body == partial + upstream_error_event(message)


async def test_a_json_body_broken_after_the_first_byte_is_never_ended(
    proxy_with: ProxyWith,
) -> None:
    """Without the end of the body the server drops the connection, so the client's HTTP
    library raises instead of handing over truncated JSON."""
    proxy = await proxy_with(console("a", 0), console("b", 1))
    half = message("cut")[:30]
    proxy.transport.answer(
        Canned(
            200,
            [("content-type", "application/json")],
            [half],
            dies_with=UpstreamConnectError("connection reset"),
        )
    )

    answer = await proxy.ask()

    assert (answer.status, answer.body, answer.ended) == (200, half, False)
    [record] = await proxy.records()
    assert (record.stream_terminal_state, record.success) == ("upstream_closed", False)


# The answer when every attempt failed


def windowless_429(text: str) -> Canned:
    """A request-scoped 429: no window and no reset, so it benches no account."""
    body = json.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": text}})
    headers = [
        ("content-type", "application/json"),
        ("x-should-retry", "true"),
        ("anthropic-ratelimit-tokens-remaining", "0"),
    ]
    return Canned(429, headers, [body.encode()])


async def test_with_no_account_left_the_best_upstream_reply_is_relayed_with_its_hints(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1), console("c", 2))
    proxy.transport.answer(
        UpstreamConnectError("refused"),
        error(529, "overloaded_error", [("retry-after", "3")]),
        windowless_429("too many requests at once"),
    )

    answer = await proxy.ask()

    assert answer.status == 429
    assert answer.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "too many requests at once"},
    }
    assert answer.headers == {
        "content-type": "application/json",
        "x-should-retry": "true",
        "anthropic-ratelimit-tokens-remaining": "0",
    }
    [record] = await proxy.records()
    assert (record.status_code, record.account_id, record.failover_attempts) == (429, None, 3)
    assert record.error_message == (
        "Every account failed: a: connection failed (refused); b: upstream answered 529; "
        "c: upstream answered 429"
    )


async def test_an_overload_is_relayed_over_a_dead_connection(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(
        error(529, "overloaded_error", [("retry-after", "3")]), UpstreamConnectError("refused")
    )
    # The 529 benches its account briefly; the other could still serve, so the pool is not
    # exhausted and the upstream's own answer is the most useful one.

    answer = await proxy.ask()

    assert (answer.status, answer.headers.get("retry-after")) == (529, "3")
    assert answer.json()["error"]["type"] == "overloaded_error"


async def test_an_upstream_reply_not_in_anthropics_shape_is_wrapped_in_it(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0))
    html = Canned(429, [("content-type", "text/html")], [b"<html>Slow down</html>"])
    proxy.transport.answer(html)

    answer = await proxy.ask()

    assert answer.status == 429
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "The upstream answered 429: <html>Slow down</html>",
        },
    }


async def test_a_timeout_as_the_best_failure_is_a_504(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0))
    proxy.transport.answer(UpstreamTimeoutError("first_byte"))

    answer = await proxy.ask()

    assert answer.status == 504
    assert answer.json() == {
        "type": "error",
        "error": {"type": "timeout_error", "message": "Every account failed: upstream timeout."},
    }


async def test_the_pool_the_breaker_benched_is_what_the_next_request_hears_about(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(UpstreamConnectError("refused"), UpstreamConnectError("refused"))

    first = await proxy.ask()
    second = await proxy.ask()

    # The request that tried every account hears how they failed; the next finds them benched.
    assert first.status == 502
    assert (second.status, second.headers["retry-after"]) == (503, "5")
    assert second.json()["error"]["message"] == (
        "No account can serve this request now (unreachable); "
        "the first is available again at 2027-01-15T08:00:05Z."
    )
    assert proxy.transport.accounts_tried() == ["a", "b"]


async def test_a_plain_client_learns_the_kind_of_each_failure_but_no_account(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), subscription("sub", 1))
    proxy.transport.answer(
        UpstreamConnectError("refused by 10.0.0.7"),
        error(401, "authentication_error"),
        error(401, "authentication_error"),
    )

    answer = await proxy.ask()

    assert answer.status == 502
    assert answer.json()["error"] == {
        "type": "api_error",
        "message": "Every account failed: connection failed; upstream answered 401.",
    }


async def test_a_plain_client_of_an_exhausted_pool_learns_only_the_kind_and_the_reset(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(rate_limited(NOW + 2 * HOUR), rate_limited(NOW + HOUR))

    answer = await proxy.ask()

    assert answer.status == 429
    assert answer.headers["retry-after"] == "3600"
    assert answer.json() == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "No account can serve this request now (rate limited); "
            "the first is available again at 2027-01-15T09:00:00Z.",
            "next_available_at": "2027-01-15T09:00:00Z",
        },
    }


# Requests refused before any attempt


@pytest.mark.parametrize(
    "raw_path", [b"/v1/../api/oauth/usage", b"/v1/%2e%2e/api", b"/v1/..%2Fapi", b"/v1/x%ff"]
)
async def test_a_path_that_could_leave_v1_is_refused_before_any_attempt(
    proxy_with: ProxyWith, raw_path: bytes
) -> None:
    proxy = await proxy_with(console("a", 0))

    answer = await proxy.ask(raw_path=raw_path)

    assert answer.status == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert proxy.transport.sent == []


@pytest.mark.parametrize(
    "body",
    [b'{"model": "\xff"}', b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"[1]", b"{"],
)
async def test_a_body_the_proxy_cannot_read_is_refused_before_any_attempt(
    proxy_with: ProxyWith, body: bytes
) -> None:
    proxy = await proxy_with(console("a", 0))

    answer = await proxy.ask(request=body)

    assert answer.status == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert proxy.transport.sent == []


# --- The circuit breaker: accounts that fail, rather than answer, are benched -------------


def state(proxy: Proxy, account_id: str) -> AccountState:
    account = proxy.pool.get(account_id)
    assert account is not None
    return account.state(proxy.clock.now_ms())


def no_credit(status: int) -> Canned:
    body = json.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "Your credit balance is too low to access the Anthropic API.",
            },
        }
    )
    return Canned(status, [("content-type", "application/json")], [body.encode()])


async def test_a_401_on_an_api_key_account_benches_it_as_credentials_rejected(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(error(401, "authentication_error"), Canned.ok("b"), Canned.ok("b"))

    await proxy.ask()
    await proxy.ask()

    assert proxy.transport.accounts_tried() == ["a", "b", "b"]
    assert state(proxy, "a") is AccountState.CREDENTIALS_REJECTED
    assert proxy.cooldown("a") == (NOW + 600_000, RateLimitReason.CREDENTIALS_REJECTED)


async def test_a_403_permission_error_is_a_rejection_of_the_credentials(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(error(403, "permission_error"), Canned.ok("from b"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert state(proxy, "a") is AccountState.CREDENTIALS_REJECTED


async def test_rejected_credentials_are_probed_later_and_a_success_clears_them(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(error(401, "authentication_error"), Canned.ok("b"))
    await proxy.ask()
    proxy.clock.advance(600_000)
    assert state(proxy, "a") is AccountState.CREDENTIALS_REJECTED  # until the probe passes
    proxy.transport.answer(Canned.ok("a is back"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "a is back"
    assert state(proxy, "a") is AccountState.READY


async def test_a_subscription_refused_after_its_forced_refresh_is_credentials_rejected(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(subscription("sub", 0), console("b", 1))
    proxy.transport.answer(
        error(401, "authentication_error"), error(401, "authentication_error"), Canned.ok("b")
    )

    await proxy.ask()

    assert state(proxy, "sub") is AccountState.CREDENTIALS_REJECTED


async def test_a_timeout_benches_the_account_so_the_next_request_does_not_wait_for_it(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(UpstreamTimeoutError("first_byte"), Canned.ok("b"), Canned.ok("b"))

    await proxy.ask()
    await proxy.ask()

    assert proxy.transport.accounts_tried() == ["a", "b", "b"]
    assert proxy.cooldown("a") == (NOW + 5_000, RateLimitReason.UPSTREAM_TIMEOUT)
    assert state(proxy, "a") is AccountState.COOLING_DOWN


async def test_failed_connections_bench_for_longer_each_time_until_an_answer_resets_it(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    refused = UpstreamConnectError("connection refused")
    proxy.transport.answer(refused, Canned.ok("b"))
    await proxy.ask()
    proxy.clock.advance(5_000)
    proxy.transport.answer(refused, Canned.ok("b"))
    await proxy.ask()
    assert proxy.cooldown("a") == (NOW + 5_000 + 10_000, RateLimitReason.CONNECT_FAILED)
    proxy.clock.advance(10_000)
    proxy.transport.answer(Canned.ok("a"))

    await proxy.ask()

    account = proxy.pool.get("a")
    assert account is not None
    assert (account.rate_limit.limited_until_ms, account.rate_limit.failures) == (None, 0)


async def test_an_account_without_credit_is_benched_until_a_probe_finds_credit(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(no_credit(400), Canned.ok("b"), Canned.ok("b"))
    await proxy.ask()
    await proxy.ask()
    assert proxy.transport.accounts_tried() == ["a", "b", "b"]
    assert state(proxy, "a") is AccountState.OUT_OF_CREDITS
    proxy.clock.advance(600_000)
    proxy.transport.answer(Canned.ok("a"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "a"
    assert state(proxy, "a") is AccountState.READY


async def test_a_benched_account_survives_a_restart(proxy_with: ProxyWith, store: Store) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(error(401, "authentication_error"), Canned.ok("b"))
    await proxy.ask()
    await proxy.pool.drain()

    restarted = AccountPool(store, proxy.clock, session_duration_ms=5 * HOUR)
    await restarted.reload()

    account = restarted.get("a")
    assert account is not None
    assert account.state(NOW) is AccountState.CREDENTIALS_REJECTED
    assert account.rate_limit.failures == 1


# --- Pool events: each logged once, with its fields ---------------------------------------


def events_logged(caplog: pytest.LogCaptureFixture, message_start: str) -> list[dict[str, Any]]:
    return [vars(r)["data"] for r in caplog.records if r.getMessage().startswith(message_start)]


async def test_a_failover_is_logged_once_with_its_request_account_status_and_reason(
    proxy_with: ProxyWith, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(rate_limited(NOW + HOUR), Canned.ok("b"))

    with caplog.at_level(logging.INFO, logger="better_ccflare.proxy"):
        answer = await proxy.ask()

    [failover] = events_logged(caplog, "Failover")
    assert failover == {
        "type": "failover",
        "request_id": answer.headers["x-better-ccflare-request-id"],
        "account_id": "a",
        "account": "a",
        "status": 429,
        "reason": "account_quota",
    }
    [started] = events_logged(caplog, "Cooldown started")
    assert (started["account"], started["reason"], started["until_ms"]) == (
        "a",
        "upstream_429_with_reset",
        NOW + HOUR,
    )


async def test_a_cooldown_ending_by_itself_is_logged_once(
    proxy_with: ProxyWith, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(UpstreamConnectError("refused"), Canned.ok("b"))
    await proxy.ask()

    with caplog.at_level(logging.INFO, logger="better_ccflare.proxy"):
        proxy.clock.advance(5_000)
        proxy.clock.advance(60_000)

    [ended] = events_logged(caplog, "Cooldown ended")
    assert (ended["account"], ended["reason"], ended["cause"]) == ("a", "connect_failed", "expired")


async def test_a_cooldown_ended_by_an_answer_is_logged_once(
    proxy_with: ProxyWith, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await proxy_with(console("a", 0))
    proxy.transport.answer(error(529, "overloaded_error"))
    await proxy.ask()
    # A request that reaches a benched account anyway (one already on its way) ends it.
    proxy.transport.answer(Canned.ok("a"))
    account = proxy.pool.get("a")
    assert account is not None

    with caplog.at_level(logging.INFO, logger="better_ccflare.proxy"):
        proxy.clock.advance(5_000)
        proxy.pool.apply_rate_limit("a", RateLimitInfo(), proxy.clock.now_ms(), None)
        proxy.clock.advance(60_000)

    [ended] = events_logged(caplog, "Cooldown ended")
    assert ended["cause"] == "served"


async def test_rejected_credentials_are_a_warning_logged_once(
    proxy_with: ProxyWith, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(error(401, "authentication_error"), Canned.ok("b"), Canned.ok("b"))

    with caplog.at_level(logging.INFO, logger="better_ccflare.proxy"):
        await proxy.ask()
        await proxy.ask()

    [rejected] = [r for r in caplog.records if r.getMessage().startswith("Credentials rejected")]
    assert rejected.levelno == logging.WARNING
    assert vars(rejected)["data"] == {
        "type": "credentials_rejected",
        "account_id": "a",
        "account": "a",
        "probe_at_ms": NOW + 600_000,
        "failures": 1,
    }
    assert events_logged(caplog, "Cooldown started") == []


async def test_every_account_failing_is_logged_once_with_the_attempts(
    proxy_with: ProxyWith, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.transport.answer(UpstreamConnectError("refused"), UpstreamTimeoutError("first_byte"))

    with caplog.at_level(logging.INFO, logger="better_ccflare.proxy"):
        await proxy.ask()

    [[record]] = [await proxy.records()]
    [failed] = events_logged(caplog, "Every account failed")
    assert failed == {
        "type": "all_accounts_failed",
        "request_id": record.id,
        "attempts": 2,
        "status": None,  # the last attempt's: b timed out
        "reason": "timeout",
    }
    assert [f["account"] for f in events_logged(caplog, "Failover")] == ["a"]


async def test_a_listener_hears_the_same_events_as_the_log(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    heard: list[PoolEvent] = []
    unsubscribe = proxy.pool.events.subscribe(heard.append)
    proxy.transport.answer(error(401, "authentication_error"), Canned.ok("b"))

    await proxy.ask()
    unsubscribe()
    proxy.clock.advance(HOUR)

    assert [type(event) for event in heard] == [CredentialsRejected, Failover]


# --- Shutdown: a request the server cuts is still recorded --------------------------------


class Endless(Canned):
    """A stream that sends its first chunks, then nothing more, ever."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        super().__init__(200, [("content-type", "text/event-stream")], chunks)
        self.sent_all = asyncio.Event()

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        async for chunk in super().aiter_raw():
            yield chunk
        self.sent_all.set()
        await asyncio.Event().wait()


MESSAGE_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
    b'"role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":20,'
    b'"output_tokens":1}}}\n\n'
)


async def test_a_stream_cut_by_shutdown_is_recorded_as_interrupted_with_what_was_seen(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0))
    endless = Endless([MESSAGE_START])
    proxy.transport.answer(endless)
    request = asyncio.create_task(proxy.ask())
    await endless.sent_all.wait()

    request.cancel()  # what uvicorn does once the grace period is over
    answer = await request

    # Like any stream broken after the first byte, it ends with an error event clients raise on.
    cut = upstream_error_event("The proxy shut down mid-response; the response is incomplete.")
    assert (answer.status, answer.body, answer.ended) == (200, MESSAGE_START + cut, True)
    assert endless.closed
    [record] = await proxy.records()
    assert (record.status_code, record.stream_terminal_state) == (200, "interrupted")
    assert (record.model, record.usage.input_tokens) == (MODEL, 20)
    assert not record.success


async def test_a_request_cut_by_shutdown_before_any_answer_gets_a_503_and_is_recorded(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0))
    proxy.transport.answer(Stall())
    request = asyncio.create_task(proxy.ask())
    await proxy.transport.stalled.wait()

    request.cancel()
    answer = await request

    assert answer.status == 503
    assert answer.json()["error"]["type"] == "overloaded_error"
    [record] = await proxy.records()
    assert (record.status_code, record.stream_terminal_state) == (503, "interrupted")


def stream(*events: tuple[str, object]) -> list[bytes]:
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


STOPPED_STREAM = stream(
    ("message_start", {"type": "message_start", "message": {"model": MODEL, "usage": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "Hi"}}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
)
"""A stream that reached its stop reason; its ``message_stop`` never comes."""
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


async def test_a_stream_ending_after_its_stop_reason_is_completed_with_message_stop(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0))
    proxy.transport.answer(Canned(200, [("content-type", "text/event-stream")], STOPPED_STREAM))

    answer = await proxy.ask()

    assert (answer.status, answer.ended) == (200, True)
    assert answer.body == b"".join(STOPPED_STREAM) + MESSAGE_STOP
    [record] = await proxy.records()
    assert (record.stream_terminal_state, record.success) == ("recovered", True)


async def test_a_stream_cut_after_its_stop_reason_is_completed_too(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0))
    cut = Canned(
        200,
        [("content-type", "text/event-stream")],
        STOPPED_STREAM,
        dies_with=UpstreamConnectError("connection reset"),
    )
    proxy.transport.answer(cut)

    answer = await proxy.ask()

    assert answer.body == b"".join(STOPPED_STREAM) + MESSAGE_STOP
    [record] = await proxy.records()
    assert (record.stream_terminal_state, record.success) == ("recovered", True)


async def test_a_stream_with_its_message_stop_is_passed_on_untouched(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0))
    whole = [*STOPPED_STREAM, *stream(("message_stop", {"type": "message_stop"}))]
    proxy.transport.answer(Canned(200, [("content-type", "text/event-stream")], whole))

    answer = await proxy.ask()

    assert answer.body == b"".join(whole)
    [record] = await proxy.records()
    assert record.stream_terminal_state == "completed"


async def test_a_stream_ending_before_any_stop_reason_is_not_completed(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0))
    unfinished = STOPPED_STREAM[:2]
    proxy.transport.answer(Canned(200, [("content-type", "text/event-stream")], unfinished))

    answer = await proxy.ask()

    assert answer.body == b"".join(unfinished)
    [record] = await proxy.records()
    assert record.stream_terminal_state == "completed"


@pytest.mark.parametrize(
    ("kind", "until", "reason"),
    [
        ("rate_limit_error", NOW + 30_000, RateLimitReason.UPSTREAM_429_NO_RESET_PROBE_COOLDOWN),
        ("overloaded_error", NOW + 10_000, RateLimitReason.UPSTREAM_529_OVERLOADED_NO_RESET),
    ],
)
async def test_a_rate_limit_error_mid_stream_benches_the_account_like_a_429_or_529(
    proxy_with: ProxyWith, kind: str, until: int, reason: RateLimitReason
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    limited = [
        *STOPPED_STREAM[:2],
        *stream(("error", {"type": "error", "error": {"type": kind, "message": "slow down"}})),
    ]
    proxy.transport.answer(Canned(200, [("content-type", "text/event-stream")], limited))

    answer = await proxy.ask()

    assert answer.body == b"".join(limited)
    assert proxy.transport.accounts_tried() == ["a"]
    assert proxy.cooldown("a") == (until, reason)
    [record] = await proxy.records()
    assert (record.stream_terminal_state, record.error_message) == ("upstream_error", kind)


async def test_another_error_mid_stream_leaves_the_account_ready(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0))
    failed = [
        *STOPPED_STREAM[:2],
        *stream(("error", {"type": "error", "error": {"type": "api_error", "message": "oops"}})),
    ]
    proxy.transport.answer(Canned(200, [("content-type", "text/event-stream")], failed))

    await proxy.ask()

    assert proxy.cooldown("a") == (None, None)


RETRYING = ProxySettings(overload_retry_base_ms=0)
"""The default one in-place retry of a 529 without a reset hint, without the wait."""


async def test_a_529_without_a_reset_is_retried_once_on_the_same_account(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.app.reconfigure(RETRYING)
    proxy.transport.answer(error(529, "overloaded_error"), Canned.ok("from a"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from a"
    assert proxy.transport.accounts_tried() == ["a", "a"]
    assert proxy.cooldown("a")[0] is None
    [record] = await proxy.records()
    assert (record.account_id, record.failover_attempts, record.success) == ("a", 0, True)


async def test_a_second_529_fails_over(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.app.reconfigure(RETRYING)
    overloaded = error(529, "overloaded_error")
    proxy.transport.answer(overloaded, error(529, "overloaded_error"), Canned.ok("from b"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert proxy.transport.accounts_tried() == ["a", "a", "b"]
    assert proxy.cooldown("a") == (NOW + 10_000, RateLimitReason.UPSTREAM_529_OVERLOADED_NO_RESET)


async def test_a_529_with_a_reset_hint_fails_over_at_once(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(console("a", 0), console("b", 1))
    proxy.app.reconfigure(RETRYING)
    proxy.transport.answer(
        error(529, "overloaded_error", [("retry-after", "20")]), Canned.ok("from b")
    )

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert proxy.transport.accounts_tried() == ["a", "b"]


async def test_the_wait_before_a_529_retry_is_jittered_under_the_base(
    proxy_with: ProxyWith, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await proxy_with(console("a", 0))
    proxy.app.reconfigure(ProxySettings(overload_retry_base_ms=750))
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("better_ccflare.proxy._pipeline._jitter", lambda: 0.5)
    monkeypatch.setattr("better_ccflare.proxy._pipeline.asyncio.sleep", sleep)
    proxy.transport.answer(error(529, "overloaded_error"), Canned.ok("from a"))

    await proxy.ask()

    assert waits == [0.375]


def with_models(account: Account, *models: str) -> Account:
    """``account`` with ``--model-map sonnet=models...``."""
    return msgspec.structs.replace(account, model_mappings={"sonnet": models})


def model_not_found(model: str) -> Canned:
    body = {"type": "error", "error": {"type": "not_found_error", "message": f"model: {model}"}}
    return Canned(404, [("content-type", "application/json")], [json.dumps(body).encode()])


def models_sent(transport: ScriptedTransport) -> list[str]:
    return [json.loads(r.body)["model"] for r in transport.sent]


async def test_a_model_not_found_tries_the_next_model_on_the_same_account(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(with_models(console("a", 0), "m-one", "m-two"), console("b", 1))
    proxy.transport.answer(model_not_found("m-one"), Canned.ok("m-two on a"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "m-two on a"
    assert proxy.transport.accounts_tried() == ["a", "a"]
    assert models_sent(proxy.transport) == ["m-one", "m-two"]
    [record] = await proxy.records()
    assert (record.account_id, record.failover_attempts, record.success) == ("a", 0, True)
    assert (record.original_model, record.applied_model) == (MODEL, "m-two")


async def test_a_429_for_the_first_model_tries_the_next_one(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(with_models(console("a", 0), "m-one", "m-two"))
    proxy.transport.answer(error(429, "rate_limit_error"), Canned.ok("m-two on a"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "m-two on a"
    assert models_sent(proxy.transport) == ["m-one", "m-two"]


async def test_when_every_model_of_the_list_fails_the_next_account_is_tried(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(with_models(console("a", 0), "m-one", "m-two"), console("b", 1))
    proxy.transport.answer(model_not_found("m-one"), model_not_found("m-two"), Canned.ok("from b"))

    answer = await proxy.ask()

    assert answer.json()["content"][0]["text"] == "from b"
    assert proxy.transport.accounts_tried() == ["a", "a", "b"]
    assert models_sent(proxy.transport) == ["m-one", "m-two", MODEL]
    [record] = await proxy.records()
    assert (record.account_id, record.failover_attempts) == ("b", 1)


async def test_a_404_about_something_else_is_passed_through(proxy_with: ProxyWith) -> None:
    proxy = await proxy_with(with_models(console("a", 0), "m-one", "m-two"), console("b", 1))
    proxy.transport.answer(error(404, "not_found_error"))

    answer = await proxy.ask()

    assert answer.status == 404
    assert proxy.transport.accounts_tried() == ["a"]


async def test_without_a_fallback_list_a_model_not_found_is_passed_through(
    proxy_with: ProxyWith,
) -> None:
    proxy = await proxy_with(with_models(console("a", 0), "m-one"), console("b", 1))
    proxy.transport.answer(model_not_found("m-one"))

    answer = await proxy.ask()

    assert answer.status == 404
    assert proxy.transport.accounts_tried() == ["a"]
