"""``/api/requests``: request history, stored payloads, and the live stream of new requests.

The live stream is Server-Sent Events fed by :class:`~better_ccflare.proxy.RequestEvents`:
``event: connected`` first, then per request a ``{"type": "start", ...}`` when its account is
chosen (the dashboard shows it in flight) and one ``{"type": "summary", "payload": <row>}`` when
the proxy records it, as in the reference. A comment line every 15 s keeps proxies from closing
an idle stream.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from better_ccflare.core import NotFoundError, RequestRecord
from better_ccflare.database import RequestFilter
from better_ccflare.proxy import Payload, PayloadFormatError, RequestStart, decode_payload

from ._account_lookup import account_names
from ._api_context import Ctx, ManagementContext
from ._api_errors import errors
from ._sse_keepalive import with_keepalive
from ._times import iso_ms

__all__ = ["REQUEST_HANDLERS"]

_log = logging.getLogger("better_ccflare.http_api")

_MAX_MS = 2**63 - 1


_Id = Annotated[str, msgspec.Meta(description="The request's id (time-ordered)")]
_Timestamp = Annotated[str | None, msgspec.Meta(description="When it arrived (ISO-8601 UTC)")]
_TimestampMs = Annotated[int, msgspec.Meta(description="When it arrived (epoch ms)")]
_Method = Annotated[str, msgspec.Meta(description="The HTTP method")]
_Path = Annotated[str, msgspec.Meta(description="The path the client called")]
_AccountId = Annotated[str | None, msgspec.Meta(description="The account that served it")]
_AccountUsed = Annotated[str | None, msgspec.Meta(description="That account's name")]
_Model = Annotated[str | None, msgspec.Meta(description="The model asked for")]


class RequestRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One request as the history list and the live stream show it."""

    id: _Id
    timestamp: _Timestamp
    timestamp_ms: _TimestampMs
    method: _Method
    path: _Path
    account_id: _AccountId
    account_used: _AccountUsed
    status_code: Annotated[
        int | None, msgspec.Meta(description="The status the client got; null: none was sent")
    ]
    success: Annotated[bool, msgspec.Meta(description="Whether the client got a 2xx answer")]
    error_message: Annotated[str | None, msgspec.Meta(description="Why it failed, if it did")]
    response_time_ms: Annotated[
        int | None, msgspec.Meta(description="From arrival to the answer's end (ms)")
    ]
    failover_attempts: Annotated[
        int, msgspec.Meta(description="How many accounts failed before the one that answered")
    ]
    model: _Model
    input_tokens: Annotated[int, msgspec.Meta(description="Uncached input tokens")]
    output_tokens: Annotated[int, msgspec.Meta(description="Output tokens")]
    cache_read_input_tokens: Annotated[
        int, msgspec.Meta(description="Input tokens read from the prompt cache")
    ]
    cache_creation_input_tokens: Annotated[
        int, msgspec.Meta(description="Input tokens written to the prompt cache")
    ]
    total_tokens: Annotated[int, msgspec.Meta(description="The four token counts added up")]
    cost_usd: Annotated[
        float | None,
        msgspec.Meta(description="Cost in US dollars; null when no price is known for the model"),
    ]
    agent_used: Annotated[
        str | None, msgspec.Meta(description="The Claude Code agent the request came from")
    ]
    tokens_per_second: Annotated[
        float | None, msgspec.Meta(description="Output tokens per second of generation")
    ]
    api_key_id: Annotated[str | None, msgspec.Meta(description="The proxy key it was sent with")]
    api_key_name: Annotated[str | None, msgspec.Meta(description="That key's name")]
    billing_type: Annotated[
        str | None,
        msgspec.Meta(description="plan, api or overage for a served request; null otherwise"),
    ]
    original_model: Annotated[
        str | None, msgspec.Meta(description="The model the client asked for")
    ]
    applied_model: Annotated[
        str | None, msgspec.Meta(description="The model sent upstream after mappings")
    ]
    project: Annotated[str | None, msgspec.Meta(description="As sent in x-better-ccflare-project")]
    stream_terminal_state: Annotated[
        str | None,
        msgspec.Meta(description="How a stream ended: complete, recovered, interrupted ..."),
    ]
    client_session_id: Annotated[
        str | None, msgspec.Meta(description="The client's session (Claude Code's)")
    ]
    rate_limited: Annotated[bool, msgspec.Meta(description="Whether the answer was a 429")]


def request_row(record: RequestRecord, names: Mapping[str, str]) -> RequestRow:
    usage = record.usage
    return RequestRow(
        id=record.id,
        timestamp=iso_ms(record.timestamp_ms),
        timestamp_ms=record.timestamp_ms,
        method=record.method,
        path=record.path,
        account_id=record.account_id,
        account_used=names.get(record.account_id) if record.account_id else None,
        status_code=record.status_code,
        success=record.success,
        error_message=record.error_message,
        response_time_ms=record.response_time_ms,
        failover_attempts=record.failover_attempts,
        model=record.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        total_tokens=usage.input_tokens
        + usage.output_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_input_tokens,
        cost_usd=record.cost_usd,
        agent_used=record.agent_used,
        tokens_per_second=record.output_tokens_per_second,
        api_key_id=record.api_key_id,
        api_key_name=record.api_key_name,
        billing_type=record.billing_type.value if record.billing_type else None,
        original_model=record.original_model,
        applied_model=record.applied_model,
        project=record.project,
        stream_terminal_state=(
            record.stream_terminal_state.value if record.stream_terminal_state else None
        ),
        client_session_id=record.client_session_id,
        rate_limited=record.status_code == 429,
    )


@get(
    "/api/requests",
    tags=["requests"],
    responses=errors(invalid=True, missing="account", conflict="several accounts have that name"),
    summary="Recent requests, newest first, with optional filters",
)
async def list_requests(
    ctx: Ctx,
    *,
    limit: Annotated[int, QueryParameter(ge=1, le=1000, description="How many rows")] = 50,
    account: Annotated[str | None, QueryParameter(description="Account name")] = None,
    model: Annotated[str | None, QueryParameter(description="Only this model")] = None,
    status: Annotated[
        Literal["all", "success", "error"],
        QueryParameter(description="Only successful (2xx) or only failed requests"),
    ] = "all",
    # Litestar leaves an optional parameter's bounds out of the schema; schema_extra puts
    # them back (they constrain the number, and null is not one). The maximum is the
    # database's largest integer: beyond it the query could not be run.
    before: Annotated[
        int | None,
        QueryParameter(
            ge=0,
            le=_MAX_MS,
            description="Epoch ms; older rows only",
            schema_extra={"minimum": 0, "maximum": _MAX_MS},
        ),
    ] = None,
    offset: Annotated[
        int, QueryParameter(ge=0, le=1_000_000, description="Skip this many of the newest rows")
    ] = 0,
    q: Annotated[
        str | None,
        QueryParameter(
            max_length=200,
            description=(
                "Search the whole history: id, model, path, error, API key name, agent, project "
                "or account name containing this (ASCII letters in either case), or this exact "
                "status code"
            ),
        ),
    ] = None,
) -> list[RequestRow]:
    """Request records, newest first; ``before`` (epoch ms, a row's ``timestampMs``) pages
    back through the whole history."""
    account_ids: tuple[str | None, ...] = ()
    if account is not None:
        found = await ctx.store.accounts.get_by_name(account)
        if found is None:
            raise NotFoundError("account", account)
        account_ids = (found.id,)
    names = account_names(ctx)
    text = q.strip() if q else None
    where = RequestFilter(
        account_ids=account_ids,
        models=(model,) if model else (),
        status=status,
        text=text or None,
        text_account_ids=_named(names, text) if text else (),
    )
    records = await ctx.store.analytics.requests(where, limit, before_ms=before, offset=offset)
    return [request_row(r, names) for r in records]


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _named(names: Mapping[str, str], text: str) -> tuple[str, ...]:
    """The accounts whose name contains ``text``, folding case as the database search does."""
    needle = text.translate(_ASCII_LOWER)
    return tuple(i for i, name in names.items() if needle in name.translate(_ASCII_LOWER))


class PayloadDetail(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: _Id
    account_name: _AccountUsed
    payload: Annotated[Payload, msgspec.Meta(description="The stored request and response")]


async def _payload(ctx: ManagementContext, request_id: str) -> Payload | None:
    stored = await ctx.store.requests.get_payload(request_id)
    if stored is None:
        return None
    try:
        return decode_payload(stored)
    except PayloadFormatError:
        _log.warning("Stored payload of request %s cannot be read", request_id)
        return None


@get(
    "/api/requests/payload/{request_id:str}",
    tags=["requests"],
    responses=errors(missing="stored payload for that request"),
    summary="The stored request and response",
)
async def request_payload(ctx: Ctx, request_id: FromPath[str]) -> Payload:
    """The request's stored bodies (base64) and headers, credentials removed; kept only while
    payload storage is on and for the payload retention."""
    payload = await _payload(ctx, request_id)
    if payload is None:
        raise NotFoundError("stored payload for request", request_id)
    return payload


@get(
    "/api/requests/detail",
    tags=["requests"],
    responses=errors(invalid=True),
    summary="Recent requests with their stored payloads",
)
async def request_details(
    ctx: Ctx,
    *,
    limit: Annotated[
        int, QueryParameter(ge=1, le=50, description="How many recent requests to look at")
    ] = 50,
) -> list[PayloadDetail]:
    """Of the newest ``limit`` requests, those whose payload is stored, with it."""
    records = await ctx.store.analytics.requests(RequestFilter(), limit)
    names = account_names(ctx)
    details: list[PayloadDetail] = []
    for record in records:
        payload = await _payload(ctx, record.id)
        if payload is not None:
            name = names.get(record.account_id) if record.account_id else None
            details.append(PayloadDetail(id=record.id, account_name=name, payload=payload))
    return details


_encoder = msgspec.json.Encoder()


class _Summary(msgspec.Struct, frozen=True):
    type: str
    payload: RequestRow


class _Start(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A request in flight: the reference's ``start`` event, with the row's field names."""

    type: Literal["start"] = "start"
    id: str
    timestamp: str | None
    timestamp_ms: int
    method: str
    path: str
    model: str | None
    account_id: str | None
    account_used: str | None
    status_code: None = None


async def _request_events(ctx: ManagementContext) -> AsyncGenerator[ServerSentEventMessage]:
    def encode(event: RequestRecord | RequestStart) -> str:
        names = account_names(ctx)
        if isinstance(event, RequestStart):
            account = event.account_id
            start = _Start(
                id=event.id,
                timestamp=iso_ms(event.timestamp_ms),
                timestamp_ms=event.timestamp_ms,
                method=event.method,
                path=event.path,
                model=event.model,
                account_id=account,
                account_used=names.get(account) if account else None,
            )
            return _encoder.encode(start).decode()
        row = request_row(event, names)
        return _encoder.encode(_Summary(type="summary", payload=row)).decode()

    yield ServerSentEventMessage(event="connected", data="ok")
    async with ctx.requests.subscribe() as queue:
        async for message in with_keepalive(queue.get, encode):
            yield message


@get(
    "/api/requests/stream",
    tags=["requests"],
    responses=errors(),
    summary="Server-Sent Events: each request's start, then its record",
)
async def request_stream(ctx: Ctx) -> ServerSentEvent:
    """``event: connected`` first; then per request ``{"type": "start", ...}`` when its
    account is chosen and ``{"type": "summary", "payload": <request>}`` when it is recorded.
    A comment every 15 s keeps idle connections open."""
    return ServerSentEvent(_request_events(ctx))


REQUEST_HANDLERS = [list_requests, request_details, request_payload, request_stream]
