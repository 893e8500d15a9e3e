"""Vertex AI: URL and body rewriting, model restore, and Google token refresh without Google."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import google.auth
import httpx2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import DefaultCredentialsError, RefreshError

from better_ccflare.core import Account, Credentials
from better_ccflare.providers import (
    AccountConfigError,
    ClientRequest,
    RateLimitKind,
    UnsupportedRequestError,
    UpstreamRequest,
)
from better_ccflare.providers._vertex_ai import (
    GoogleCredentials,
    VertexAIProvider,
    VertexCredentialsError,
    VertexExtraMissingError,
)

VERTEX_EXTRA_HINT = "pip install 'better-ccflare-providers[vertex]'"

NOW_MS = 1_767_225_600_000
LOCATION = '{"projectId": "acme-ml", "region": "us-east5"}'
MESSAGES: dict[str, object] = {
    "model": "claude-sonnet-4-5-20250929",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "hi"}],
}


def vertex_account(
    custom_endpoint: str | None = LOCATION,
    *,
    credentials: Credentials | None = None,
    model_mappings: dict[str, tuple[str, ...]] | None = None,
) -> Account:
    return Account(
        id="acc-vertex",
        name="vertex",
        provider="vertex-ai",
        created_at_ms=0,
        custom_endpoint=custom_endpoint,
        credentials=credentials or Credentials(access_token="ya29.token"),
        model_mappings=model_mappings or {},
    )


def build(
    body: Mapping[str, object] | bytes,
    *,
    account: Account | None = None,
    path: str = "/v1/messages",
    method: str = "POST",
) -> UpstreamRequest:
    account = account or vertex_account()
    return VertexAIProvider().build_request(
        ClientRequest(
            method=method,
            path=path,
            query="beta=true",
            headers={
                "x-api-key": "proxy",
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "claude-code-20250219",
                "content-type": "application/json",
            },
            body=body if isinstance(body, bytes) else json.dumps(body).encode(),
        ),
        account,
        account.credentials,
    )


MODELS = "https://us-east5-aiplatform.googleapis.com/v1/projects/acme-ml/locations/us-east5/publishers/anthropic/models"


def test_non_streaming_request_goes_to_raw_predict_with_vertex_model_name() -> None:
    assert build(MESSAGES).url == f"{MODELS}/claude-sonnet-4-5@20250929:rawPredict"


def test_body_stream_flag_selects_stream_raw_predict() -> None:
    request = build({**MESSAGES, "stream": True})
    assert request.url == f"{MODELS}/claude-sonnet-4-5@20250929:streamRawPredict"
    assert json.loads(request.body)["stream"] is True


def test_global_region_has_no_host_prefix() -> None:
    account = vertex_account('{"projectId": "acme-ml", "region": "global"}')
    assert build(MESSAGES, account=account).url == (
        "https://aiplatform.googleapis.com/v1/projects/acme-ml/locations/global"
        "/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    )


def test_body_loses_model_and_gains_vertex_version() -> None:
    body = json.loads(build(MESSAGES).body)
    assert body == {
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
        "anthropic_version": "vertex-2023-10-16",
    }


def test_headers_drop_anthropic_version_and_beta_and_carry_the_google_token() -> None:
    assert build(MESSAGES).headers == {
        "content-type": "application/json",
        "accept-encoding": "identity",
        "authorization": "Bearer ya29.token",
    }


def test_model_mapping_applies_before_the_date_rewrite() -> None:
    account = vertex_account(model_mappings={"sonnet": ("claude-opus-4-1-20250805",)})
    request = build(MESSAGES, account=account)
    assert request.url == f"{MODELS}/claude-opus-4-1@20250805:rawPredict"
    assert (request.client_model, request.upstream_model) == (
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-1@20250805",
    )


def test_undated_model_is_used_as_is() -> None:
    assert (
        build({**MESSAGES, "model": "claude-haiku-4-5"}).url
        == f"{MODELS}/claude-haiku-4-5:rawPredict"
    )


def test_count_tokens_keeps_the_model_in_the_body() -> None:
    request = build(MESSAGES, path="/v1/messages/count_tokens")
    assert request.url == f"{MODELS}/count-tokens:rawPredict"
    assert json.loads(request.body)["model"] == "claude-sonnet-4-5@20250929"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", b""),
        ("POST", "/v1/complete", b"{}"),
        ("POST", "/v1/messages", b"not json"),
        ("POST", "/v1/messages", b'{"messages": []}'),
    ],
)
def test_unservable_requests_are_refused(method: str, path: str, body: bytes) -> None:
    with pytest.raises(UnsupportedRequestError):
        build(body, path=path, method=method)


@pytest.mark.parametrize(
    "location",
    [
        None,
        "https://not-json",
        '{"projectId": "p"}',
        '{"projectId": "p/../x", "region": "us-east5"}',
    ],
)
def test_bad_location_is_an_account_error(location: str | None) -> None:
    with pytest.raises(AccountConfigError, match="'vertex'"):
        build(MESSAGES, account=vertex_account(location))


def test_missing_token_is_an_account_error() -> None:
    with pytest.raises(AccountConfigError, match="no Google access token"):
        build(MESSAGES, account=vertex_account(credentials=Credentials()))


VERTEX_JSON_RESPONSE: dict[str, object] = {
    "id": "msg_vrtx_01ABCD",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 3},
}


def transform(request: UpstreamRequest, body: bytes, content_type: str) -> bytes | None:
    transformer = VertexAIProvider().response_transformer(
        path="/v1/messages", status=200, headers={"content-type": content_type}, request=request
    )
    if transformer is None:
        return None
    return (
        b"".join(transformer.feed(body[i : i + 7]) for i in range(0, len(body), 7))
        + transformer.close()
    )


def test_json_response_model_is_restored_to_the_clients() -> None:
    account = vertex_account(model_mappings={"sonnet": ("claude-opus-4-1-20250805",)})
    request = build(MESSAGES, account=account)
    upstream = json.dumps({**VERTEX_JSON_RESPONSE, "model": "claude-opus-4-1-20250805"}).encode()
    restored = transform(request, upstream, "application/json")
    assert restored is not None
    assert json.loads(restored) == {**VERTEX_JSON_RESPONSE, "model": "claude-sonnet-4-5-20250929"}


def test_error_json_without_model_passes_unchanged() -> None:
    error = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert transform(build(MESSAGES), error, "application/json") == error


def test_streams_are_not_transformed() -> None:
    assert transform(build({**MESSAGES, "stream": True}), b"", "text/event-stream") is None


def test_vertex_stream_usage_is_read() -> None:
    parser = VertexAIProvider().usage_parser(streaming=True)
    parser.feed(
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"id":"msg_vrtx_01","type":"message",'
        b'"role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],'
        b'"stop_reason":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,'
        b'"cache_read_input_tokens":0,"output_tokens":1}}}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b"event: message_delta\n"
        b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
        b'"usage":{"output_tokens":19}}\n\n'
    )
    assert (parser.result().usage.input_tokens, parser.result().usage.output_tokens) == (25, 19)


def test_vertex_quota_429_is_request_scoped() -> None:
    info = VertexAIProvider().classify_rate_limit(
        status=429,
        headers={"content-type": "application/json"},
        body=(
            b'{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/'
            b'online_prediction_requests_per_base_model","status":"RESOURCE_EXHAUSTED"}}'
        ),
        now_ms=NOW_MS,
    )
    assert info.kind is RateLimitKind.REQUEST_SCOPED


# --- Token refresh ------------------------------------------------------------------------


class FakeCredentials:
    """Stands in for google-auth credentials; refresh never leaves the process."""

    def __init__(self, expiry: datetime | None) -> None:
        self.token: str | None = None
        self.expiry = expiry
        self.refreshed_on: int | None = None

    def refresh(self, request: Any) -> None:
        self.refreshed_on = threading.get_ident()
        self.token = "ya29.fresh"


async def refresh(provider: VertexAIProvider, account: Account) -> Credentials:
    async with httpx2.AsyncClient(
        transport=httpx2.MockTransport(lambda r: httpx2.Response(500))
    ) as client:
        return await provider.refresh_credentials(account, client, NOW_MS)


async def test_refresh_uses_adc_when_no_key_file_is_stored() -> None:
    made: list[str | None] = []
    fake = FakeCredentials(datetime(2026, 1, 1, 0, 59, 30))

    def factory(path: str | None) -> GoogleCredentials:
        made.append(path)
        return fake

    fresh = await refresh(
        VertexAIProvider(credentials_factory=factory), vertex_account(credentials=Credentials())
    )
    assert made == [None]
    assert fresh == Credentials(access_token="ya29.fresh", expires_at_ms=NOW_MS + 3_570_000)
    assert fake.refreshed_on not in (None, threading.get_ident())


async def test_refresh_passes_the_stored_service_account_path_and_keeps_it() -> None:
    made: list[str | None] = []

    def factory(path: str | None) -> GoogleCredentials:
        made.append(path)
        return FakeCredentials(None)

    account = vertex_account(credentials=Credentials(api_key="/etc/ccflare/vertex-sa.json"))
    fresh = await refresh(VertexAIProvider(credentials_factory=factory), account)
    assert made == ["/etc/ccflare/vertex-sa.json"]
    assert fresh.api_key == "/etc/ccflare/vertex-sa.json"
    assert fresh.expires_at_ms == NOW_MS + 3_600_000  # no expiry reported: an hour


async def test_refresh_failure_is_a_vertex_credentials_error() -> None:
    class Refusing(FakeCredentials):
        def refresh(self, request: Any) -> None:
            raise RefreshError("invalid_grant: Invalid JWT Signature.")

    provider = VertexAIProvider(credentials_factory=lambda path: Refusing(None))
    with pytest.raises(VertexCredentialsError, match="Invalid JWT Signature"):
        await refresh(provider, vertex_account())


async def test_missing_adc_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_adc(**kwargs: object) -> object:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_adc)
    with pytest.raises(VertexCredentialsError, match="application-default login"):
        await refresh(VertexAIProvider(), vertex_account(credentials=Credentials()))


async def test_unreadable_key_file_is_explained(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json")
    with pytest.raises(VertexCredentialsError, match=r"nope\.json"):
        await refresh(VertexAIProvider(), vertex_account(credentials=Credentials(api_key=missing)))


async def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("google.auth", "google.auth.exceptions", "google.oauth2.service_account"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(VertexExtraMissingError, match=re.escape(VERTEX_EXTRA_HINT)) as caught:
        await refresh(VertexAIProvider(), vertex_account())
    assert isinstance(caught.value, ImportError)


@pytest.fixture
def token_server() -> Iterator[tuple[str, list[bytes]]]:
    """A Google token endpoint on loopback that grants every JWT assertion."""
    posted: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps(
                {"access_token": "ya29.loopback", "expires_in": 3599, "token_type": "Bearer"}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token", posted
    finally:
        server.shutdown()
        server.server_close()


async def test_service_account_file_refreshes_through_the_httpx_transport(
    tmp_path: Path, token_server: tuple[str, list[bytes]]
) -> None:
    token_uri, posted = token_server
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme-ml",
                "private_key_id": "abc123",
                "private_key": pem,
                "client_email": "ccflare@acme-ml.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": token_uri,
            }
        )
    )
    account = vertex_account(credentials=Credentials(api_key=str(key_file)))
    fresh = await refresh(VertexAIProvider(), account)
    assert fresh.access_token == "ya29.loopback"
    assert fresh.api_key == str(key_file)
    # google-auth keeps expiry as naive UTC; read as such it is an hour from the real now.
    assert fresh.expires_at_ms is not None
    assert abs(fresh.expires_at_ms - (time.time() * 1000 + 3_599_000)) < 120_000
    assert len(posted) == 1
    assert b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in posted[0]


def test_refresh_is_needed_before_the_first_token_and_near_expiry() -> None:
    provider = VertexAIProvider()
    assert provider.needs_refresh(Credentials(api_key="/sa.json"), NOW_MS)
    assert provider.needs_refresh(
        Credentials(access_token="t", expires_at_ms=NOW_MS + 60_000), NOW_MS
    )
    assert not provider.needs_refresh(
        Credentials(access_token="t", expires_at_ms=NOW_MS + 3_000_000), NOW_MS
    )
