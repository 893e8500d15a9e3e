"""Recording one request's payload for the dashboard, capped and without credentials.

When payload storage is on, the pipeline makes a :class:`PayloadCapture` per request, calls
:meth:`PayloadCapture.response_started` once the upstream answers, :meth:`PayloadCapture.feed`
with every response chunk the client receives, and :meth:`PayloadCapture.finish` after the last
one. ``finish`` returns the JSON that is stored and later served by ``/api/requests/payload/:id``::

    {"request":  {"headers": {...}, "body": "<base64>", "bodyTruncated": false},
     "response": {"status": 200, "headers": {...}, "body": "<base64>", "bodyTruncated": true},
     "meta":     {"accountId": "...", "timestamp": 1700000000000, "success": true,
                  "isStream": true}}

Bodies are stored as base64 so binary bodies and bodies cut at the cap (possibly mid UTF-8
sequence) round-trip exactly. Only the first ``max_request_bytes`` (4 MiB) of the request and
``max_response_bytes`` (256 KiB) of the response are kept; the ``bodyTruncated`` flags say when
more was sent.

Credentials are removed from the headers only (:func:`sanitize_headers`). Bodies are kept
verbatim: they are the conversation the dashboard shows, and anything a user typed into a prompt
is theirs to see. Do not put credentials in bodies.

Recording never delays the response: ``feed`` copies at most the remaining room under the cap
and nothing at all once the cap is reached, so it is O(len(chunk)) and memory stays bounded by
the cap. The base64 and JSON work happens in ``finish``, after the client has its last byte;
for multi-megabyte request bodies the caller may run it in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated

import msgspec

__all__ = [
    "MAX_REQUEST_BODY_BYTES",
    "MAX_RESPONSE_BODY_BYTES",
    "SENSITIVE_HEADERS",
    "Payload",
    "PayloadCapture",
    "PayloadFormatError",
    "PayloadMeta",
    "PayloadRequest",
    "PayloadResponse",
    "decode_payload",
    "sanitize_headers",
]

MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024
MAX_RESPONSE_BODY_BYTES = 256 * 1024

SENSITIVE_HEADERS: frozenset[str] = frozenset(
    {"authorization", "x-api-key", "cookie", "set-cookie", "proxy-authorization"}
)
"""Lower-case header names never stored. Every ``x-better-ccflare-*`` header is dropped too."""

_PROXY_HEADER_PREFIX = "x-better-ccflare-"


def sanitize_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` without credentials, with lower-case names.

    Args:
        headers: Request or response headers, names in any case.

    Returns:
        The headers minus :data:`SENSITIVE_HEADERS` and every ``x-better-ccflare-*`` header
        (the proxy's own, which include the probe secret).
    """
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in SENSITIVE_HEADERS or lower.startswith(_PROXY_HEADER_PREFIX):
            continue
        kept[lower] = value
    return kept


def _body_bytes(body: str | None) -> bytes | None:
    return None if body is None else base64.b64decode(body)


_Headers = Annotated[dict[str, str], msgspec.Meta(description="Headers, credentials removed")]
_Truncated = Annotated[bool, msgspec.Meta(description="Whether the body was cut at the cap")]


class PayloadRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The stored request: sanitized headers and the (capped) body as base64."""

    headers: _Headers = {}
    body: Annotated[
        str | None, msgspec.Meta(description="Base64 of the body as received; null: none")
    ] = None
    body_truncated: _Truncated = False

    @property
    def body_bytes(self) -> bytes | None:
        """The stored body decoded from base64."""
        return _body_bytes(self.body)


class PayloadResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The stored response: status, sanitized headers and the (capped) body as base64."""

    status: Annotated[int, msgspec.Meta(description="The status the client got")]
    headers: _Headers = {}
    body: Annotated[
        str | None,
        msgspec.Meta(description="Base64 of the body as the client received it; null: none"),
    ] = None
    body_truncated: _Truncated = False

    @property
    def body_bytes(self) -> bytes | None:
        """The stored body decoded from base64."""
        return _body_bytes(self.body)


class PayloadMeta(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """What the request was: which account served it, when, and how it went.

    ``retry`` and the attribution fields appear in rows written by the reference implementation;
    they are read back when present and omitted when unset.
    """

    account_id: Annotated[str | None, msgspec.Meta(description="The account that served it")]
    timestamp: Annotated[int, msgspec.Meta(description="When it arrived (epoch ms)")]
    success: Annotated[bool, msgspec.Meta(description="Whether the client got a 2xx answer")]
    is_stream: Annotated[bool, msgspec.Meta(description="Whether the answer was streamed")] = False
    retry: Annotated[
        int | None, msgspec.Meta(description="The attempt number (the reference's rows)")
    ] = None
    project: Annotated[
        str | None, msgspec.Meta(description="As sent in x-better-ccflare-project")
    ] = None
    project_attribution_source: Annotated[
        str | None, msgspec.Meta(description="Where the project came from (the reference's)")
    ] = None
    agent_attribution_source: Annotated[
        str | None, msgspec.Meta(description="How the agent was recognised (the reference's)")
    ] = None


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """One stored payload, in the JSON shape the dashboard and the payload API read."""

    request: Annotated[PayloadRequest, msgspec.Meta(description="What the client sent")]
    response: Annotated[
        PayloadResponse | None,
        msgspec.Meta(description="What the client got; null when no upstream answered"),
    ]
    meta: Annotated[PayloadMeta, msgspec.Meta(description="Who served it, when, how it went")]


class PayloadFormatError(ValueError):
    """A stored payload could not be read back."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Payload)


def _b64(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(data).decode("ascii")


class PayloadCapture:
    """Collects one request's payload while the response streams to the client."""

    __slots__ = (
        "_max_response_bytes",
        "_request_body",
        "_request_headers",
        "_request_truncated",
        "_response_body",
        "_response_full",
        "_response_headers",
        "_response_status",
        "_response_truncated",
    )

    def __init__(
        self,
        *,
        request_headers: Mapping[str, str],
        request_body: bytes,
        max_request_bytes: int = MAX_REQUEST_BODY_BYTES,
        max_response_bytes: int = MAX_RESPONSE_BODY_BYTES,
    ) -> None:
        """Start recording a request.

        Args:
            request_headers: The headers the client sent; credentials are removed here.
            request_body: The body the client sent; only the first ``max_request_bytes`` are kept.
            max_request_bytes: Cap on the stored request body.
            max_response_bytes: Cap on the stored response body.
        """
        if max_request_bytes < 0 or max_response_bytes < 0:
            raise ValueError(
                f"Payload caps must be >= 0 bytes, got request={max_request_bytes} "
                f"and response={max_response_bytes}"
            )
        self._request_headers = sanitize_headers(request_headers)
        self._request_truncated = len(request_body) > max_request_bytes
        self._request_body = (
            request_body[:max_request_bytes] if self._request_truncated else request_body
        )
        self._max_response_bytes = max_response_bytes
        self._response_status: int | None = None
        self._response_headers: dict[str, str] = {}
        self._response_body = bytearray()
        self._response_full = max_response_bytes == 0
        self._response_truncated = False

    def response_started(self, status: int, headers: Mapping[str, str]) -> None:
        """Record the status and headers of the response the client receives."""
        self._response_status = status
        self._response_headers = sanitize_headers(headers)

    def feed(self, chunk: bytes) -> None:
        """Record one response chunk; copies nothing once the cap is reached."""
        if self._response_full:
            if chunk:
                self._response_truncated = True
            return
        room = self._max_response_bytes - len(self._response_body)
        if len(chunk) < room:
            self._response_body += chunk
            return
        self._response_body += memoryview(chunk)[:room]
        self._response_full = True
        if len(chunk) > room:
            self._response_truncated = True

    def finish(
        self, *, account_id: str | None, timestamp_ms: int, success: bool, streaming: bool
    ) -> bytes:
        """The payload as the JSON to store.

        Args:
            account_id: The account that served the request, if any.
            timestamp_ms: When the request was received, in epoch milliseconds.
            success: Whether the request counts as successful.
            streaming: Whether the response was streamed.

        Returns:
            The encoded JSON (see the module docstring for the shape).
        """
        response = (
            None
            if self._response_status is None
            else PayloadResponse(
                status=self._response_status,
                headers=self._response_headers,
                body=_b64(self._response_body),
                body_truncated=self._response_truncated,
            )
        )
        payload = Payload(
            request=PayloadRequest(
                headers=self._request_headers,
                body=_b64(self._request_body),
                body_truncated=self._request_truncated,
            ),
            response=response,
            meta=PayloadMeta(
                account_id=account_id,
                timestamp=timestamp_ms,
                success=success,
                is_stream=streaming,
            ),
        )
        return _encoder.encode(payload)


def _as_base64(body: str | None) -> str | None:
    if body is None:
        return None
    try:
        base64.b64decode(body, validate=True)
    except binascii.Error:
        return _b64(body.encode())
    return body


def decode_payload(stored: bytes | str) -> Payload:
    """Read a stored payload back.

    Rows written by the reference implementation are accepted: missing truncation flags read as
    ``False``, and a body that is not valid base64 is taken as raw text (and re-encoded, so
    ``body`` is always base64).

    Args:
        stored: The stored JSON, already decrypted.

    Returns:
        The payload.

    Raises:
        PayloadFormatError: The row is encrypted, not JSON, or not in the payload shape.
    """
    if (stored[:4] if isinstance(stored, str) else stored[:4].decode("latin-1")) == "enc:":
        raise PayloadFormatError(
            "Stored payload is encrypted ('enc:' prefix); decrypt it with the payload "
            "encryption key before decoding"
        )
    try:
        payload = _decoder.decode(stored)
    except msgspec.DecodeError as exc:
        raise PayloadFormatError(f"Stored payload is not a valid payload row: {exc}") from exc
    request_body = _as_base64(payload.request.body)
    if request_body is not payload.request.body:
        payload = msgspec.structs.replace(
            payload, request=msgspec.structs.replace(payload.request, body=request_body)
        )
    if payload.response is not None:
        response_body = _as_base64(payload.response.body)
        if response_body is not payload.response.body:
            payload = msgspec.structs.replace(
                payload, response=msgspec.structs.replace(payload.response, body=response_body)
            )
    return payload
