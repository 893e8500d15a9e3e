"""``/api/config``: the settings in force, and the ones that can change while running.

Changes are written to the config file (so they survive a restart) and applied at once. A value
set in the environment wins over the file; changing such a value here is refused with a message
naming the variable, rather than appearing to work and silently doing nothing.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get, post
from litestar.params import JSONBody

from better_ccflare.core import Config, StrategyName
from better_ccflare.database import RetentionResult
from better_ccflare.load_balancer import create_strategy

from ._api_context import Ctx
from ._api_errors import errors

__all__ = ["CONFIG_HANDLERS"]


class ConfigResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The reference's keys (snake and camel mixed, as it returns them), plus our timeouts."""

    lb_strategy: Annotated[str, msgspec.Meta(description="The load-balancing strategy")]
    port: Annotated[int, msgspec.Meta(description="The port this server listens on")]
    sessionDurationMs: Annotated[  # noqa: N815 (the reference's key)
        int, msgspec.Meta(description="How long the session strategy keeps an account (ms)")
    ]
    tls_enabled: Annotated[bool, msgspec.Meta(description="Whether the server serves HTTPS")]
    store_payloads: Annotated[
        bool, msgspec.Meta(description="Whether request and response bodies are kept")
    ]
    data_retention_days: Annotated[int, msgspec.Meta(description="Days payloads are kept")]
    request_retention_days: Annotated[
        int, msgspec.Meta(description="Days request records are kept")
    ]
    usage_poll_interval_ms: Annotated[
        int, msgspec.Meta(description="How often usage windows are polled (ms)")
    ]
    connect_timeout_ms: Annotated[int, msgspec.Meta(description="Upstream connect deadline (ms)")]
    first_byte_timeout_ms: Annotated[
        int, msgspec.Meta(description="Deadline for the upstream's first byte (ms)")
    ]
    idle_timeout_ms: Annotated[
        int, msgspec.Meta(description="Longest upstream silence mid-response (ms)")
    ]
    sources: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="Where each value above came from (default, file, .env or "
            "environment), by its key"
        ),
    ]


_SHOWN = (
    "lb_strategy",
    "port",
    "session_duration_ms",
    "store_payloads",
    "data_retention_days",
    "request_retention_days",
    "usage_poll_interval_ms",
    "connect_timeout_ms",
    "first_byte_timeout_ms",
    "idle_timeout_ms",
)


@get(
    "/api/config",
    tags=["config"],
    responses=errors(),
    summary="The settings in force and where each came from",
)
async def get_config(ctx: Ctx) -> ConfigResponse:
    """The reference's keys (snake and camel case mixed, as it returned them) plus the
    upstream timeouts, each with its source."""
    config = ctx.settings.current()
    return ConfigResponse(
        lb_strategy=config.lb_strategy.value,
        port=ctx.port,
        # The reference always reported 1 h here (it read a key nobody set); this is the real one.
        sessionDurationMs=config.session_duration_ms,
        tls_enabled=config.tls_enabled,
        store_payloads=config.store_payloads,
        data_retention_days=config.data_retention_days,
        request_retention_days=config.request_retention_days,
        usage_poll_interval_ms=config.usage_poll_interval_ms,
        connect_timeout_ms=config.connect_timeout_ms,
        first_byte_timeout_ms=config.first_byte_timeout_ms,
        idle_timeout_ms=config.idle_timeout_ms,
        sources={
            # Keyed like the fields above, so the one camelCase key finds its source too.
            ("sessionDurationMs" if name == "session_duration_ms" else name): str(
                config.source_of(name)
            )
            for name in _SHOWN
        },
    )


_Strategy = Annotated[StrategyName, msgspec.Meta(description="The load-balancing strategy")]


class StrategyResponse(msgspec.Struct, frozen=True, rename="camel"):
    strategy: _Strategy
    strategy_source: Annotated[
        str, msgspec.Meta(description="Where it came from: default, file, .env or environment")
    ]


class StrategyBody(msgspec.Struct, frozen=True):
    strategy: _Strategy


def _strategy(config: Config) -> StrategyResponse:
    return StrategyResponse(
        strategy=config.lb_strategy, strategy_source=str(config.source_of("lb_strategy"))
    )


@get(
    "/api/config/strategy",
    tags=["config"],
    responses=errors(),
    summary="The load-balancing strategy in force",
)
async def get_strategy(ctx: Ctx) -> StrategyResponse:
    """The strategy the proxy picks accounts by, and where that setting came from."""
    return _strategy(ctx.settings.current())


@post(
    "/api/config/strategy",
    tags=["config"],
    responses=errors(changes=True, invalid=True),
    summary="Switch the load-balancing strategy",
    status_code=200,
)
async def set_strategy(ctx: Ctx, data: JSONBody[StrategyBody]) -> StrategyResponse:
    """Writes the strategy to the config file and applies it to the next request. Refused
    (400) when the environment sets it, since the environment wins over the file."""
    return _strategy(await ctx.settings.update({"lb_strategy": data.strategy.value}))


class StrategyInfo(msgspec.Struct, frozen=True):
    """A strategy ``POST /api/config/strategy`` accepts."""

    name: Annotated[StrategyName, msgspec.Meta(description="The strategy's name")]
    description: Annotated[str, msgspec.Meta(description="What it does, from the strategy itself")]


_STRATEGY_INFO = tuple(StrategyInfo(n, create_strategy(n).summary) for n in StrategyName)


@get(
    "/api/strategies",
    tags=["config"],
    responses=errors(),
    summary="The strategies to choose from, each with what it does",
)
async def list_strategies() -> tuple[StrategyInfo, ...]:
    """The names ``POST /api/config/strategy`` accepts, each with a sentence on what it does."""
    return _STRATEGY_INFO


_PAYLOAD_DAYS = "Days request and response bodies are kept"
_REQUEST_DAYS = "Days request records are kept"
_STORE_PAYLOADS = "Whether request and response bodies are kept at all"


class Retention(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    payload_days: Annotated[int, msgspec.Meta(description=_PAYLOAD_DAYS)]
    request_days: Annotated[int, msgspec.Meta(description=_REQUEST_DAYS)]
    store_payloads: Annotated[bool, msgspec.Meta(description=_STORE_PAYLOADS)]


class RetentionBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    # The same bounds as the settings (DATA_RETENTION_DAYS, REQUEST_RETENTION_DAYS), stated
    # here so the schema carries them; the config checks them again when writing.
    payload_days: (
        Annotated[int, msgspec.Meta(ge=1, le=365, description=_PAYLOAD_DAYS + "; absent: kept")]
        | None
    ) = None
    request_days: (
        Annotated[int, msgspec.Meta(ge=1, le=3650, description=_REQUEST_DAYS + "; absent: kept")]
        | None
    ) = None
    store_payloads: Annotated[
        bool | None, msgspec.Meta(description=_STORE_PAYLOADS + "; absent: kept")
    ] = None


def _retention(config: Config) -> Retention:
    return Retention(
        payload_days=config.data_retention_days,
        request_days=config.request_retention_days,
        store_payloads=config.store_payloads,
    )


@get(
    "/api/config/retention",
    tags=["config"],
    responses=errors(),
    summary="How long payloads and requests are kept",
)
async def get_retention(ctx: Ctx) -> Retention:
    """The retention settings in force."""
    return _retention(ctx.settings.current())


@post(
    "/api/config/retention",
    tags=["config"],
    responses=errors(changes=True, invalid=True),
    summary="Change retention and payload storage",
    status_code=200,
)
async def set_retention(ctx: Ctx, data: JSONBody[RetentionBody]) -> Retention:
    """Writes the given settings to the config file and applies them; the next cleanup uses
    them. Refused (400) for a setting the environment sets."""
    changes: dict[str, object] = {}
    if data.payload_days is not None:
        changes["data_retention_days"] = data.payload_days
    if data.request_days is not None:
        changes["request_retention_days"] = data.request_days
    if data.store_payloads is not None:
        changes["store_payloads"] = data.store_payloads
    config = await ctx.settings.update(changes) if changes else ctx.settings.current()
    return _retention(config)


class CleanupResponse(msgspec.Struct, frozen=True):
    success: Annotated[bool, msgspec.Meta(description="Always true")]
    result: Annotated[RetentionResult, msgspec.Meta(description="What was removed")]


@post(
    "/api/maintenance/cleanup",
    tags=["config"],
    responses=errors(changes=True),
    summary="Apply retention now",
    status_code=200,
)
async def cleanup(ctx: Ctx) -> CleanupResponse:
    """Deletes what the retention settings say is too old, now rather than at the next
    scheduled run."""
    return CleanupResponse(success=True, result=await ctx.run_retention())


CONFIG_HANDLERS = [
    get_config,
    get_strategy,
    set_strategy,
    list_strategies,
    get_retention,
    set_retention,
    cleanup,
]
