"""``/api/logs``: the live log as Server-Sent Events, and the recent history from ``app.log``.

Events are already redacted by the logger before they reach the bus or the file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Annotated

import msgspec
from litestar import get
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from better_ccflare.logger import LogEvent, read_log_tail

from ._api_context import Ctx, ManagementContext
from ._api_errors import errors
from ._sse_keepalive import with_keepalive

__all__ = ["LOG_HANDLERS"]


class LogLine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One log event in the reference's stream shape."""

    ts: Annotated[int, msgspec.Meta(description="When it was logged (epoch ms)")]
    level: Annotated[str, msgspec.Meta(description="DEBUG, INFO, WARNING, ERROR or CRITICAL")]
    logger: Annotated[str, msgspec.Meta(description="The logger's name")]
    msg: Annotated[str, msgspec.Meta(description="The message (secrets redacted)")]
    data: Annotated[
        dict[str, object] | None, msgspec.Meta(description="The event's structured fields")
    ] = None
    exc: Annotated[str | None, msgspec.Meta(description="The traceback, for an error")] = None


def _line(event: LogEvent) -> LogLine:
    return LogLine(
        ts=event.ts_ms,
        level=event.level,
        logger=event.logger,
        msg=event.msg,
        data=event.data,
        exc=event.exc,
    )


_encoder = msgspec.json.Encoder()


async def _log_events(ctx: ManagementContext) -> AsyncGenerator[ServerSentEventMessage]:
    yield ServerSentEventMessage(data='{"connected":true}')
    if ctx.log_bus is None:
        return
    async with ctx.log_bus.subscribe() as subscription:
        async for message in with_keepalive(
            subscription.__anext__, lambda event: _encoder.encode(_line(event)).decode()
        ):
            yield message


@get(
    "/api/logs/stream",
    tags=["logs"],
    responses=errors(),
    summary="Server-Sent Events: every log event as it happens",
)
async def log_stream(ctx: Ctx) -> ServerSentEvent:
    """``{"connected": true}`` first, then one log line (``ts``, ``level``, ``logger``,
    ``msg``, ``data``) per event. A comment every 15 s keeps idle connections open."""
    return ServerSentEvent(_log_events(ctx))


@get(
    "/api/logs/history",
    tags=["logs"],
    responses=errors(invalid=True),
    summary="The newest lines of app.log, oldest first",
)
async def log_history(
    ctx: Ctx,
    *,
    limit: Annotated[int, QueryParameter(ge=1, le=10_000, description="How many lines")] = 1000,
) -> list[LogLine]:
    """The log's newest events, from the file when the server logs to one, else from memory."""
    events = await asyncio.to_thread(read_log_tail, ctx.log_dir, limit) if ctx.log_dir else []
    if not events and ctx.log_bus is not None:
        # No file yet (or logging to the console only): the bus keeps the recent events too.
        events = ctx.log_bus.recent()[-limit:]
    return [_line(e) for e in events]


LOG_HANDLERS = [log_stream, log_history]
