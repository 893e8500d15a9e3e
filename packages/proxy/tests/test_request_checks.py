"""What the proxy refuses before any upstream call: paths that could leave ``/v1/`` and bodies
it cannot read; and what it lets through unchanged."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.proxy._request_checks import (
    InvalidRequestError,
    Routing,
    forwardable_path,
    read_routing,
)


def forwarded(raw: bytes) -> str:
    """The path forwarded for ``raw``, decoded first the way uvicorn decodes it."""
    return forwardable_path(unquote(raw.decode("ascii")), raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"/v1/../api/oauth/usage",
        b"/v1/./messages",
        b"/v1/messages/..",
        b"/v1/%2e%2e/api",
        b"/v1/%2E./api",
        b"/v1/..%2fapi",
        b"/v1/messages%2F..",
        b"/v1/..%5capi",
        b"/v1/..%5Capi",
        b"/v1/..\\api",
        b"/v1/%ff",
        b"/v1/%e2%82",
        b"/%2e%2e/api",
    ],
)
def test_a_path_that_could_leave_v1_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        forwarded(raw)


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        (b"/v1/messages", "/v1/messages"),
        (b"/v1/messages/count_tokens", "/v1/messages/count_tokens"),
        (b"/v1/.well-known", "/v1/.well-known"),
        (b"/v1/models/..x", "/v1/models/..x"),
        (b"/v1/models/claude%2Dopus", "/v1/models/claude-opus"),
        (b"/v1/a%20b%3Fc%23d", "/v1/a%20b%3Fc%23d"),
        (b"/v1/%252e%252e/api", "/v1/%252e%252e/api"),
        (b"/v1/caf%C3%A9", "/v1/caf%C3%A9"),
        (b"/v1/x%0d%0ay", "/v1/x%0D%0Ay"),
    ],
)
def test_a_path_under_v1_is_forwarded_with_its_escapes_normalised(raw: bytes, sent: str) -> None:
    assert forwarded(raw) == sent


def test_a_path_outside_v1_is_never_forwarded() -> None:
    with pytest.raises(InvalidRequestError):
        forwardable_path("/api/accounts", b"/api/accounts")


def test_without_a_raw_path_the_decoded_path_is_checked() -> None:
    assert forwardable_path("/v1/messages", None) == "/v1/messages"
    with pytest.raises(InvalidRequestError):
        forwardable_path("/v1/../api", None)


def test_only_the_routing_fields_of_a_json_body_are_read() -> None:
    body = b'{"model": "m", "stream": true, "metadata": {"user_id": "u"}, "messages": []}'
    assert read_routing(body, "application/json") == Routing(
        model="m", stream=True, metadata={"user_id": "u"}
    )


def test_a_body_not_sent_as_json_is_not_read() -> None:
    assert read_routing(b"\xff--boundary", "multipart/form-data; boundary=x") == Routing()
    assert read_routing(b"", "application/json") == Routing()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"model": "\xff"}', "UTF-8"),
        (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
        (b"[1]", "JSON object"),
        (b" null", "JSON object"),
        (b"{", "not valid JSON"),
        (b'{"stream": "yes"}', "$.stream"),
    ],
)
def test_a_json_body_the_proxy_cannot_read_is_an_invalid_request(body: bytes, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem.replace("$", r"\$")):
        read_routing(body, None)


@given(st.binary(max_size=512) | st.binary(max_size=64).map(lambda b: b'{"model": "' + b + b'"}'))
def test_any_bytes_either_parse_or_are_an_invalid_request(body: bytes) -> None:
    try:
        routing = read_routing(body, "application/json")
    except InvalidRequestError:
        return
    assert isinstance(routing, Routing)


_TARGET_CHARS = st.sampled_from(
    ["%", "/", ".", "\\", "2", "5", "e", "E", "f", "F", "c", "C", "a", "?", "~", "%2", "%25"]
) | st.characters(min_codepoint=0x21, max_codepoint=0x7E)
"""What an HTTP/1.1 request target can hold (printable ASCII), weighted towards escapes."""


@given(st.lists(_TARGET_CHARS, max_size=40).map("".join))
def test_any_raw_path_is_either_forwarded_under_v1_or_an_invalid_request(tail: str) -> None:
    raw = b"/v1/" + tail.encode()
    try:
        sent = forwarded(raw)
    except InvalidRequestError:
        return
    assert sent.startswith("/v1/")
    segments = unquote(sent).split("/")  # as the upstream decodes it
    assert "." not in segments
    assert ".." not in segments
    assert sent.isascii()
