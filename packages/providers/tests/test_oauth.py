"""Claude OAuth: authorize URL, pasted code, and the token calls against a fake token server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from better_ccflare.core import DEFAULT_CLIENT_ID, OAuthMode
from better_ccflare.providers._oauth import (
    OAUTH_SCOPES,
    OAuthError,
    OAuthStateMismatchError,
    OAuthTransientError,
    ReauthRequiredError,
    build_authorize_url,
    create_console_api_key,
    exchange_code,
    parse_code_paste,
    refresh_access_token,
)
from better_ccflare.providers._pkce import PkcePair

NOW_MS = 1_767_225_600_000
STATE = "ab" * 32
PKCE = PkcePair.from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
REDIRECT_URI = "https://platform.claude.com/oauth/code/callback"


# --------------------------------------------------------------------------- fake server


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class FakeServer:
    """A tiny HTTP/1.1 loopback server: answers with queued responses, records the requests."""

    port: int = 0
    requests: list[Recorded] = field(default_factory=list[Recorded])
    responses: deque[tuple[int, dict[str, str], bytes]] = field(
        default_factory=deque[tuple[int, dict[str, str], bytes]]
    )
    _writers: set[asyncio.StreamWriter] = field(default_factory=set[asyncio.StreamWriter])

    def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self.responses.append((status, headers or {}, json.dumps(body).encode()))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while request_line := await reader.readline():
                method, target, _ = request_line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Recorded(method, target, headers, body))
                status, extra, payload = self.responses.popleft()
                head = [f"HTTP/1.1 {status} X", f"content-length: {len(payload)}"]
                head += ["content-type: application/json", *(f"{k}: {v}" for k, v in extra.items())]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
            await writer.wait_closed()


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    listener = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = listener.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{fake.port}"
    monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"{base}/v1/oauth/token")
    monkeypatch.setenv("BETTER_CCFLARE_ANTHROPIC_API_URL", base)
    yield fake
    listener.close()
    await fake.close_connections()
    await listener.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as http:
        yield http


def mock_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


def answering(
    status: int, body: object, headers: dict[str, str] | None = None
) -> httpx2.AsyncClient:
    return mock_client(lambda _: httpx2.Response(status, json=body, headers=headers))


async def refresh_with(http: httpx2.AsyncClient, token: str = "rt-old") -> None:
    async with http:
        await refresh_access_token(http, refresh_token=token, client_id="cid", now_ms=NOW_MS)


# --------------------------------------------------------------------------- authorize URL


def authorize_query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def test_claude_authorize_url_has_exactly_the_reference_query() -> None:
    url = build_authorize_url(
        mode=OAuthMode.CLAUDE_OAUTH, client_id=DEFAULT_CLIENT_ID, pkce=PKCE, state=STATE
    )

    assert url.startswith("https://claude.ai/oauth/authorize?")
    assert authorize_query(url) == [
        ("code", "true"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", OAUTH_SCOPES),
        ("code_challenge", PKCE.challenge),
        ("code_challenge_method", "S256"),
        ("state", STATE),
    ]


def test_console_authorize_url_goes_to_the_console_with_the_same_query() -> None:
    url = build_authorize_url(mode=OAuthMode.CONSOLE, client_id="cid", pkce=PKCE, state=STATE)

    assert url.startswith("https://console.anthropic.com/oauth/authorize?")
    assert dict(authorize_query(url))["client_id"] == "cid"
    assert len(authorize_query(url)) == 8


def test_scopes_are_claude_codes() -> None:
    assert OAUTH_SCOPES.split() == [
        "org:create_api_key",
        "user:profile",
        "user:inference",
        "user:sessions:claude_code",
        "user:mcp_servers",
        "user:file_upload",
    ]


def test_authorize_url_honours_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_CCFLARE_OAUTH_AUTHORIZE_URL", "http://127.0.0.1:9/authorize")

    url = build_authorize_url(mode=OAuthMode.CLAUDE_OAUTH, client_id="c", pkce=PKCE, state=STATE)

    assert url.startswith("http://127.0.0.1:9/authorize?code=true&")


def test_verifier_never_appears_in_the_authorize_url() -> None:
    url = build_authorize_url(mode=OAuthMode.CONSOLE, client_id="c", pkce=PKCE, state=STATE)

    assert PKCE.verifier not in url


# --------------------------------------------------------------------------- pasted code


def test_pasted_code_and_state_yield_the_code() -> None:
    assert parse_code_paste(f"the-code#{STATE}", expected_state=STATE) == "the-code"


def test_pasted_text_is_trimmed() -> None:
    assert parse_code_paste(f"  the-code#{STATE}\n", expected_state=STATE) == "the-code"


def test_pasted_callback_url_yields_the_code() -> None:
    url = f"{REDIRECT_URI}?code=the-code&state={STATE}"

    assert parse_code_paste(url, expected_state=STATE) == "the-code"


def test_pasted_state_from_another_login_is_refused() -> None:
    with pytest.raises(OAuthStateMismatchError, match="different login attempt"):
        parse_code_paste(f"the-code#{'cd' * 32}", expected_state=STATE)


def test_callback_url_with_another_state_is_refused() -> None:
    with pytest.raises(OAuthStateMismatchError):
        parse_code_paste(f"{REDIRECT_URI}?code=c&state=other", expected_state=STATE)


def test_state_mismatch_is_an_oauth_error() -> None:
    assert issubclass(OAuthStateMismatchError, OAuthError)


@pytest.mark.parametrize(
    ("pasted", "complaint"),
    [
        ("the-code-without-state", "no '#'"),
        (f"#{STATE}", "no code"),
        ("   ", "Nothing was pasted"),
        (f"{REDIRECT_URI}?state={STATE}", "no code= and state="),
    ],
)
def test_malformed_paste_says_what_to_paste(pasted: str, complaint: str) -> None:
    with pytest.raises(OAuthError, match=complaint) as caught:
        parse_code_paste(pasted, expected_state=STATE)

    assert "CODE#STATE" in str(caught.value)
    assert not isinstance(caught.value, OAuthStateMismatchError)


def test_paste_with_empty_state_is_a_mismatch() -> None:
    with pytest.raises(OAuthStateMismatchError):
        parse_code_paste("the-code#", expected_state=STATE)


# --------------------------------------------------------------------------- code exchange


async def test_exchange_posts_the_reference_json_body(
    server: FakeServer, client: httpx2.AsyncClient
) -> None:
    server.reply(200, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 28800})

    await exchange_code(
        client, code="the-code", state=STATE, verifier=PKCE.verifier, client_id="cid", now_ms=NOW_MS
    )

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/oauth/token")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "state": STATE,
        "client_id": "cid",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": PKCE.verifier,
    }


async def test_exchange_returns_tokens_with_expiry_and_issue_time(
    server: FakeServer, client: httpx2.AsyncClient
) -> None:
    server.reply(200, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 28800})

    credentials = await exchange_code(
        client, code="c", state=STATE, verifier=PKCE.verifier, client_id="cid", now_ms=NOW_MS
    )

    assert credentials.access_token == "at-1"
    assert credentials.refresh_token == "rt-1"
    assert credentials.expires_at_ms == NOW_MS + 28_800_000
    assert credentials.refresh_token_issued_at_ms == NOW_MS


async def test_exchange_without_refresh_token_has_no_issue_time() -> None:
    async with answering(200, {"access_token": "at", "expires_in": 60}) as http:
        credentials = await exchange_code(
            http, code="c", state=STATE, verifier=PKCE.verifier, client_id="c", now_ms=NOW_MS
        )

    assert credentials.refresh_token is None
    assert credentials.refresh_token_issued_at_ms is None


async def test_refused_code_asks_for_a_new_login_but_is_not_a_reauth() -> None:
    body = {"error": "invalid_grant", "error_description": "Invalid authorization code"}
    async with answering(400, body) as http:
        with pytest.raises(OAuthError, match="start the login again") as caught:
            await exchange_code(
                http, code="c", state=STATE, verifier=PKCE.verifier, client_id="c", now_ms=NOW_MS
            )

    assert not isinstance(caught.value, ReauthRequiredError)
    assert "Invalid authorization code" in str(caught.value)


async def test_exchange_error_never_echoes_the_code_or_verifier() -> None:
    body = {"error_description": f"code the-secret-code with verifier {PKCE.verifier} failed"}
    async with answering(400, body) as http:
        with pytest.raises(OAuthError) as caught:
            await exchange_code(
                http,
                code="the-secret-code",
                state=STATE,
                verifier=PKCE.verifier,
                client_id="c",
                now_ms=NOW_MS,
            )

    assert "the-secret-code" not in str(caught.value)
    assert PKCE.verifier not in str(caught.value)
    assert "<redacted>" in str(caught.value)


# --------------------------------------------------------------------------- refresh


async def test_refresh_posts_the_reference_json_body(
    server: FakeServer, client: httpx2.AsyncClient
) -> None:
    server.reply(200, {"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600})

    await refresh_access_token(client, refresh_token="rt-1", client_id="cid", now_ms=NOW_MS)

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/oauth/token")
    assert request.json() == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "client_id": "cid",
    }


async def test_refresh_with_rotation_stores_the_new_token_and_its_issue_time(
    server: FakeServer, client: httpx2.AsyncClient
) -> None:
    server.reply(200, {"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600})

    credentials = await refresh_access_token(
        client, refresh_token="rt-1", client_id="cid", now_ms=NOW_MS
    )

    assert credentials.access_token == "at-2"
    assert credentials.refresh_token == "rt-2"
    assert credentials.expires_at_ms == NOW_MS + 3_600_000
    assert credentials.refresh_token_issued_at_ms == NOW_MS


async def test_refresh_without_new_refresh_token_keeps_the_old_one(
    server: FakeServer, client: httpx2.AsyncClient
) -> None:
    server.reply(200, {"access_token": "at-2", "expires_in": 3600})

    credentials = await refresh_access_token(
        client, refresh_token="rt-1", client_id="cid", now_ms=NOW_MS
    )

    assert credentials.refresh_token == "rt-1"
    assert credentials.refresh_token_issued_at_ms is None


async def test_refresh_echoing_the_same_refresh_token_is_not_a_rotation() -> None:
    body = {"access_token": "at-2", "refresh_token": "rt-1", "expires_in": 3600}
    async with answering(200, body) as http:
        credentials = await refresh_access_token(
            http, refresh_token="rt-1", client_id="c", now_ms=NOW_MS
        )

    assert credentials.refresh_token == "rt-1"
    assert credentials.refresh_token_issued_at_ms is None


@pytest.mark.parametrize(
    "code",
    ["invalid_grant", "invalid_refresh_token", "refresh_token_reused", "unauthorized_client"],
)
async def test_dead_refresh_token_codes_require_reauth(code: str) -> None:
    with pytest.raises(ReauthRequiredError, match="log in to this account again"):
        await refresh_with(answering(400, {"error": code, "error_description": "Nope"}))


@pytest.mark.parametrize(
    "body",
    [
        {"type": "error", "error": {"type": "invalid_grant", "message": "Refresh token expired"}},
        {"error": "invalid_request", "error_description": "refresh_token_reused: already used"},
        {"error": {"message": "Token is invalid (invalid_refresh_token)"}},
    ],
)
async def test_401_whose_error_says_the_token_is_dead_requires_reauth(body: object) -> None:
    with pytest.raises(ReauthRequiredError):
        await refresh_with(answering(401, body))


async def test_other_refresh_refusals_are_not_reauth() -> None:
    body = {"error": "invalid_request", "error_description": "client_id is required"}
    with pytest.raises(OAuthError, match="client_id is required") as caught:
        await refresh_with(answering(400, body))

    assert not isinstance(caught.value, ReauthRequiredError | OAuthTransientError)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ({"error": "invalid_grant", "error_description": "described"}, "described"),
        ({"error": "invalid_grant"}, "invalid_grant"),
        ({"error": {"type": "invalid_grant", "message": "nested message"}}, "nested message"),
    ],
)
async def test_error_message_comes_from_description_error_or_nested_message(
    body: object, shown: str
) -> None:
    with pytest.raises(OAuthError, match=shown):
        await refresh_with(answering(400, body))


async def test_refresh_error_never_echoes_the_refresh_token() -> None:
    body = {"error": "invalid_grant", "error_description": "token sk-ant-ort01-SECRET is revoked"}
    with pytest.raises(ReauthRequiredError) as caught:
        await refresh_with(answering(400, body), token="sk-ant-ort01-SECRET")

    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_server_errors_are_transient(status: int) -> None:
    with pytest.raises(OAuthTransientError) as caught:
        await refresh_with(answering(status, {"error": "invalid_grant"}))

    assert caught.value.status == status


async def test_429_is_transient_and_carries_retry_after() -> None:
    with pytest.raises(OAuthTransientError) as caught:
        await refresh_with(answering(429, {"error": "rate_limited"}, {"retry-after": "30"}))

    assert caught.value.retry_after_ms == 30_000


async def test_429_without_retry_after_has_none() -> None:
    with pytest.raises(OAuthTransientError) as caught:
        await refresh_with(answering(429, {}))

    assert caught.value.retry_after_ms is None


async def test_timeout_is_transient() -> None:
    def hang(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    with pytest.raises(OAuthTransientError, match="did not answer"):
        await refresh_with(mock_client(hang))


async def test_connection_refused_is_transient(
    monkeypatch: pytest.MonkeyPatch, client: httpx2.AsyncClient
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("BETTER_CCFLARE_OAUTH_TOKEN_URL", f"http://127.0.0.1:{closed_port}/token")

    with pytest.raises(OAuthTransientError, match="Could not reach"):
        await refresh_access_token(client, refresh_token="rt", client_id="c", now_ms=NOW_MS)


async def test_token_calls_use_a_short_explicit_timeout() -> None:
    seen: list[object] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.extensions["timeout"])
        return httpx2.Response(200, json={"access_token": "a", "expires_in": 1})

    await refresh_with(mock_client(record))

    assert seen == [{"connect": 15.0, "read": 15.0, "write": 15.0, "pool": 15.0}]


async def test_malformed_success_body_is_an_oauth_error() -> None:
    with pytest.raises(OAuthError, match="not understood"):
        await refresh_with(answering(200, {"token": "x"}))


# --------------------------------------------------------------------------- console API key


async def test_console_key_is_created_with_the_access_token(
    server: FakeServer, client: httpx2.AsyncClient
) -> None:
    server.reply(200, {"raw_key": "sk-ant-api03-key"})

    key = await create_console_api_key(client, access_token="at-console")

    assert key == "sk-ant-api03-key"
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/api/oauth/claude_cli/create_api_key")
    assert request.headers["authorization"] == "Bearer at-console"


async def test_console_key_refusal_says_to_log_in_again_in_console_mode() -> None:
    async with answering(403, {"error": {"type": "permission_error", "message": "denied"}}) as http:
        with pytest.raises(OAuthError, match="console mode"):
            await create_console_api_key(http, access_token="at")
