"""Requests the proxy refuses itself, end to end under uvicorn: a path that could leave
``/v1/`` once the upstream normalises it, and a body it cannot read. Each is a 400
``invalid_request_error`` naming the problem, and the upstream never sees the request.

Paths are written byte for byte over a raw socket: HTTP clients, the SDK among them, normalise
dot segments before sending, and an attacker's client does not.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from .support.client import raw_request
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy

BODY = b'{"model": "%s", "max_tokens": 8, "messages": []}' % MODEL.encode()


class ErrorDetail(msgspec.Struct):
    type: str
    message: str


class AnthropicError(msgspec.Struct, tag_field="type", tag="error"):
    error: ErrorDetail


async def refusal(tmp_path: Path, target: bytes, body: bytes) -> str:
    """The message of the 400 ``invalid_request_error`` the proxy answers ``POST target`` with,
    once it is clear the upstream never saw the request."""
    async with (
        FakeUpstream() as upstream,
        running_proxy(tmp_path, console_account("a", upstream)) as (_, url),
    ):
        reply = await raw_request(url, target, body)

    assert reply.status == 400
    error = msgspec.json.decode(reply.body, type=AnthropicError).error
    assert error.type == "invalid_request_error"
    assert upstream.requests == []
    return error.message


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        (b"/v1/../api/oauth/usage", "segment"),
        (b"/v1/foo/../../api/oauth/usage", "segment"),
        (b"/v1/messages/./count_tokens", "segment"),
        (b"/v1/%2e%2e/api/oauth/usage", "segment"),
        (b"/v1/%2E%2e/api/oauth/usage", "segment"),
        (b"/v1/.%2e/api/oauth/usage", "segment"),
        (b"/v1/..%2fapi/oauth/usage", "encoded slash"),
        (b"/v1/..%2Fapi%2Foauth%2Fusage", "encoded slash"),
        (b"/v1/messages%2fcount_tokens", "encoded slash"),
        (b"/v1/..%5capi%5coauth%5cusage", "encoded slash"),
        (b"/v1/..%5Capi", "encoded slash"),
        (b"/v1/..\\api\\oauth\\usage", "backslash"),
        (b"/v1/messages%ff", "UTF-8"),
        (b"/v1/messages%c3", "UTF-8"),
    ],
)
async def test_a_path_that_could_leave_v1_never_reaches_the_upstream(
    tmp_path: Path, target: bytes, problem: str
) -> None:
    assert problem in await refusal(tmp_path, target, BODY)


async def test_escapes_in_a_path_reach_the_upstream_still_escaped(tmp_path: Path) -> None:
    """Decoded once, checked, and encoded again: the upstream decodes exactly what was checked,
    so an escape encoded twice stays an escaped character there, never a dot segment."""
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json({"id": "x", "type": "model"}))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            targets = [
                b"/v1/models/claude%2Dx",
                b"/v1/models/a%20b%3Fc",
                b"/v1/%252e%252e/api/oauth/usage",
            ]
            replies = [await raw_request(url, target, BODY) for target in targets]

    assert [r.status for r in replies] == [200, 200, 200]
    assert [(r.path, r.query) for r in upstream.requests] == [
        ("/v1/models/claude-x", ""),
        ("/v1/models/a%20b%3Fc", ""),
        ("/v1/%252e%252e/api/oauth/usage", ""),
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"model": "\xff\xfe", "max_tokens": 8, "messages": []}', "UTF-8"),
        (b'{"model": "m", "metadata": {"user_id": "\xc3("}}', "UTF-8"),
        (b'{"model": "m", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON object"),
        (b'["model", "max_tokens"]', "JSON object"),
        (b'"a string"', "JSON object"),
        (b'{"model": "m", "messages": [}', "not valid JSON"),
        (b'{"model": 7}', "model"),
    ],
)
async def test_a_body_the_proxy_cannot_read_never_reaches_the_upstream(
    tmp_path: Path, body: bytes, problem: str
) -> None:
    assert problem in await refusal(tmp_path, b"/v1/messages", body)


async def test_a_body_that_is_not_sent_as_json_is_forwarded_unread(tmp_path: Path) -> None:
    """File uploads are multipart: the proxy reads only JSON bodies."""
    upload = b"--b\r\ncontent-disposition: form-data; name=file\r\n\r\n\xff\xfe\r\n--b--\r\n"
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            reply = await raw_request(
                url,
                b"/v1/files",
                upload,
                headers=((b"content-type", b"multipart/form-data; boundary=b"),),
            )

    assert reply.status == 200
    assert [r.body for r in upstream.requests] == [upload]
