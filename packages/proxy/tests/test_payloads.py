"""Stored payloads: the dashboard's JSON shape, size caps, and no credentials."""

from __future__ import annotations

import base64
import itertools
import json
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.proxy._payloads import (
    MAX_REQUEST_BODY_BYTES,
    MAX_RESPONSE_BODY_BYTES,
    PayloadCapture,
    PayloadFormatError,
    decode_payload,
    sanitize_headers,
)

NOW_MS = 1_800_000_000_000


def _finish(capture: PayloadCapture, *, streaming: bool = False) -> bytes:
    return capture.finish(
        account_id="acct-1", timestamp_ms=NOW_MS, success=True, streaming=streaming
    )


def test_stored_json_has_the_dashboard_shape() -> None:
    capture = PayloadCapture(
        request_headers={"content-type": "application/json"}, request_body=b'{"model":"x"}'
    )
    capture.response_started(200, {"content-type": "text/event-stream"})
    capture.feed(b"event: ping\n\n")
    stored = json.loads(_finish(capture, streaming=True))
    assert stored == {
        "request": {
            "headers": {"content-type": "application/json"},
            "body": base64.b64encode(b'{"model":"x"}').decode(),
            "bodyTruncated": False,
        },
        "response": {
            "status": 200,
            "headers": {"content-type": "text/event-stream"},
            "body": base64.b64encode(b"event: ping\n\n").decode(),
            "bodyTruncated": False,
        },
        "meta": {"accountId": "acct-1", "timestamp": NOW_MS, "success": True, "isStream": True},
    }


def test_finish_then_decode_round_trips() -> None:
    capture = PayloadCapture(request_headers={"a": "1"}, request_body=b"hello")
    capture.response_started(201, {"b": "2"})
    capture.feed(b"wor")
    capture.feed(b"ld")
    payload = decode_payload(
        capture.finish(account_id=None, timestamp_ms=5, success=False, streaming=False)
    )
    assert payload.request.headers == {"a": "1"}
    assert payload.request.body_bytes == b"hello"
    assert payload.response is not None
    assert payload.response.status == 201
    assert payload.response.headers == {"b": "2"}
    assert payload.response.body_bytes == b"world"
    assert payload.meta.account_id is None
    assert payload.meta.timestamp == 5
    assert payload.meta.success is False
    assert payload.meta.is_stream is False


def test_decoding_accepts_str_as_well_as_bytes() -> None:
    capture = PayloadCapture(request_headers={}, request_body=b"x")
    stored = _finish(capture)
    assert decode_payload(stored.decode()) == decode_payload(stored)


def test_no_response_is_stored_as_null() -> None:
    capture = PayloadCapture(request_headers={}, request_body=b"x")
    assert json.loads(_finish(capture))["response"] is None
    assert decode_payload(_finish(capture)).response is None


def test_default_caps_are_4_mib_request_and_256_kib_response() -> None:
    assert MAX_REQUEST_BODY_BYTES == 4 * 1024 * 1024
    assert MAX_RESPONSE_BODY_BYTES == 256 * 1024


def test_request_body_over_the_cap_is_cut_and_flagged() -> None:
    body = b"a" * MAX_REQUEST_BODY_BYTES + b"tail"
    payload = decode_payload(_finish(PayloadCapture(request_headers={}, request_body=body)))
    assert payload.request.body_bytes == body[:MAX_REQUEST_BODY_BYTES]
    assert payload.request.body_truncated is True


def test_request_body_exactly_at_the_cap_is_not_flagged() -> None:
    body = b"a" * MAX_REQUEST_BODY_BYTES
    payload = decode_payload(_finish(PayloadCapture(request_headers={}, request_body=body)))
    assert payload.request.body_bytes == body
    assert payload.request.body_truncated is False


def test_response_body_over_the_cap_is_cut_and_flagged() -> None:
    capture = PayloadCapture(request_headers={}, request_body=b"")
    capture.response_started(200, {})
    capture.feed(b"b" * (MAX_RESPONSE_BODY_BYTES - 1))
    capture.feed(b"cd")
    payload = decode_payload(_finish(capture))
    assert payload.response is not None
    assert payload.response.body_bytes == b"b" * (MAX_RESPONSE_BODY_BYTES - 1) + b"c"
    assert payload.response.body_truncated is True


def test_response_body_exactly_at_the_cap_is_not_flagged() -> None:
    capture = PayloadCapture(request_headers={}, request_body=b"")
    capture.response_started(200, {})
    capture.feed(b"b" * MAX_RESPONSE_BODY_BYTES)
    capture.feed(b"")
    payload = decode_payload(_finish(capture))
    assert payload.response is not None
    assert payload.response.body_truncated is False


def test_a_chunk_after_the_cap_is_reached_sets_the_flag() -> None:
    capture = PayloadCapture(request_headers={}, request_body=b"", max_response_bytes=4)
    capture.response_started(200, {})
    capture.feed(b"abcd")
    capture.feed(b"e")
    payload = decode_payload(_finish(capture))
    assert payload.response is not None
    assert payload.response.body_bytes == b"abcd"
    assert payload.response.body_truncated is True


def test_memory_stays_bounded_by_the_cap_while_feeding_10_mb() -> None:
    capture = PayloadCapture(request_headers={}, request_body=b"")
    capture.response_started(200, {})
    chunk = b"z" * 1024
    tracemalloc.start()
    try:
        for _ in range(10 * 1024):
            capture.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The buffer's own over-allocation is allowed; holding the 10 MB fed is not.
    assert peak < 2 * MAX_RESPONSE_BODY_BYTES
    payload = decode_payload(_finish(capture))
    assert payload.response is not None
    assert payload.response.body_bytes == b"z" * MAX_RESPONSE_BODY_BYTES
    assert payload.response.body_truncated is True


def test_zero_caps_store_empty_bodies_and_flag_them() -> None:
    capture = PayloadCapture(
        request_headers={}, request_body=b"x", max_request_bytes=0, max_response_bytes=0
    )
    capture.response_started(200, {})
    capture.feed(b"y")
    payload = decode_payload(_finish(capture))
    assert payload.response is not None
    assert (payload.request.body_bytes, payload.request.body_truncated) == (b"", True)
    assert (payload.response.body_bytes, payload.response.body_truncated) == (b"", True)


def test_negative_caps_are_rejected() -> None:
    with pytest.raises(ValueError, match="caps must be >= 0"):
        PayloadCapture(request_headers={}, request_body=b"", max_response_bytes=-1)


def test_credential_headers_are_removed_case_insensitively() -> None:
    headers = {
        "Authorization": "Bearer sk-secret",
        "X-API-Key": "sk-ant-secret",
        "Cookie": "session=1",
        "Set-Cookie": "session=2",
        "Proxy-Authorization": "Basic eA==",
        "X-Better-CCFlare-Probe-Secret": "probe",
        "x-better-ccflare-account": "acct-1",
        "Content-Type": "application/json",
        "anthropic-version": "2023-06-01",
    }
    assert sanitize_headers(headers) == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
    }


def test_credentials_never_reach_the_stored_payload() -> None:
    secret = "sk-ant-very-secret"
    capture = PayloadCapture(
        request_headers={"Authorization": f"Bearer {secret}", "x-api-key": secret},
        request_body=b"{}",
    )
    capture.response_started(200, {"Set-Cookie": secret, "X-Better-CCFlare-Account-Id": secret})
    assert secret.encode() not in _finish(capture)


def test_request_bodies_are_stored_verbatim() -> None:
    body = b'{"messages":[{"role":"user","content":"my api_key is sk-typed-by-user"}]}'
    payload = decode_payload(_finish(PayloadCapture(request_headers={}, request_body=body)))
    assert payload.request.body_bytes == body


def test_binary_bodies_round_trip() -> None:
    request = bytes(range(256)) * 3
    response = b"\xff\xfe\x00\x80" + "é".encode()[:1]
    capture = PayloadCapture(request_headers={}, request_body=request)
    capture.response_started(200, {"content-type": "application/octet-stream"})
    capture.feed(response)
    payload = decode_payload(_finish(capture))
    assert payload.request.body_bytes == request
    assert payload.response is not None
    assert payload.response.body_bytes == response


def test_a_reference_format_row_decodes() -> None:
    row = json.dumps(
        {
            "request": {
                "headers": {"content-type": "application/json"},
                "body": base64.b64encode(b'{"model":"claude"}').decode(),
            },
            "response": {
                "status": 200,
                "headers": {"content-type": "application/json"},
                "body": '{"type": "message", "content": []}',
            },
            "meta": {
                "accountId": "acct-9",
                "timestamp": NOW_MS,
                "success": True,
                "isStream": False,
                "retry": 0,
                "project": "web",
                "projectAttributionSource": "header_project",
                "agentAttributionSource": None,
            },
        }
    )
    payload = decode_payload(row)
    assert payload.request.body_bytes == b'{"model":"claude"}'
    assert payload.request.body_truncated is False
    assert payload.response is not None
    assert payload.response.body_bytes == b'{"type": "message", "content": []}'
    assert payload.response.body_truncated is False
    assert payload.meta.account_id == "acct-9"
    assert payload.meta.retry == 0
    assert payload.meta.project == "web"
    assert payload.meta.project_attribution_source == "header_project"


def test_a_reference_row_with_null_bodies_decodes() -> None:
    row = (
        '{"request":{"headers":{},"body":null},"response":{"status":502,"headers":{},'
        '"body":null},"meta":{"accountId":null,"timestamp":1,"success":false,"isStream":false}}'
    )
    payload = decode_payload(row)
    assert payload.request.body_bytes is None
    assert payload.response is not None
    assert payload.response.body_bytes is None


def test_an_encrypted_row_is_rejected_with_a_hint() -> None:
    with pytest.raises(PayloadFormatError, match="decrypt"):
        decode_payload(b"enc:AAAA")


def test_a_row_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(PayloadFormatError, match="not a valid payload row"):
        decode_payload('{"request": 1}')


@given(
    body=st.binary(max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=12),
    cap=st.integers(min_value=0, max_value=200),
)
def test_any_chunking_stores_the_capped_prefix_of_the_body(
    body: bytes, cuts: list[int], cap: int
) -> None:
    bounds = sorted({0, len(body), *(c for c in cuts if c <= len(body))})
    chunks = [body[a:b] for a, b in itertools.pairwise(bounds)]
    capture = PayloadCapture(request_headers={}, request_body=b"", max_response_bytes=cap)
    capture.response_started(200, {})
    for chunk in chunks:
        capture.feed(chunk)
    payload = decode_payload(_finish(capture))
    assert payload.response is not None
    assert payload.response.body_bytes == body[:cap]
    assert payload.response.body_truncated is (len(body) > cap)
