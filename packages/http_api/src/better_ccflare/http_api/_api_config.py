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
from ._api_errors import ERROR_RESPONSES

__all__ = ["CONFIG_HANDLERS"]


class ConfigResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The reference's keys (snake and camel mixed, as it returns them), plus our timeouts."""

    lb_strategy: str
    port: int
    sessionDurationMs: int  # noqa: N815 (the reference's key)
    tls_enabled: bool
    store_payloads: bool
    data_retention_days: int
    request_retention_days: int
    usage_poll_interval_ms: int
    connect_timeout_ms: int
    first_byte_timeout_ms: int
    idle_timeout_ms: int
    sources: dict[str, str]
    """Where each value above came from (default, file, .env or environment), by its key."""


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
    responses=ERROR_RESPONSES,
    summary="The settings in force and where each came from",
)
async def get_config(ctx: Ctx) -> ConfigResponse:
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


class StrategyResponse(msgspec.Struct, frozen=True, rename="camel"):
    strategy: StrategyName
    strategy_source: str


class StrategyBody(msgspec.Struct, frozen=True):
    strategy: StrategyName


def _strategy(config: Config) -> StrategyResponse:
    return StrategyResponse(
        strategy=config.lb_strategy, strategy_source=str(config.source_of("lb_strategy"))
    )


@get(
    "/api/config/strategy",
    responses=ERROR_RESPONSES,
    summary="The load-balancing strategy in force",
)
async def get_strategy(ctx: Ctx) -> StrategyResponse:
    return _strategy(ctx.settings.current())


@post(
    "/api/config/strategy",
    responses=ERROR_RESPONSES,
    summary="Switch the load-balancing strategy",
    status_code=200,
)
async def set_strategy(ctx: Ctx, data: JSONBody[StrategyBody]) -> StrategyResponse:
    return _strategy(await ctx.settings.update({"lb_strategy": data.strategy.value}))


class StrategyInfo(msgspec.Struct, frozen=True):
    name: StrategyName
    description: str
    """What the strategy does, from the strategy itself (``Strategy.summary``)."""


_STRATEGY_INFO = tuple(StrategyInfo(n, create_strategy(n).summary) for n in StrategyName)


@get(
    "/api/strategies",
    responses=ERROR_RESPONSES,
    summary="The strategies to choose from, each with what it does",
)
async def list_strategies() -> tuple[StrategyInfo, ...]:
    return _STRATEGY_INFO


class Retention(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    payload_days: int
    request_days: int
    store_payloads: bool


class RetentionBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    # The same bounds as the settings (DATA_RETENTION_DAYS, REQUEST_RETENTION_DAYS), stated
    # here so the schema carries them; the config checks them again when writing.
    payload_days: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None
    request_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    store_payloads: bool | None = None


def _retention(config: Config) -> Retention:
    return Retention(
        payload_days=config.data_retention_days,
        request_days=config.request_retention_days,
        store_payloads=config.store_payloads,
    )


@get(
    "/api/config/retention",
    responses=ERROR_RESPONSES,
    summary="How long payloads and requests are kept",
)
async def get_retention(ctx: Ctx) -> Retention:
    return _retention(ctx.settings.current())


@post(
    "/api/config/retention",
    responses=ERROR_RESPONSES,
    summary="Change retention and payload storage",
    status_code=200,
)
async def set_retention(ctx: Ctx, data: JSONBody[RetentionBody]) -> Retention:
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
    success: bool
    result: RetentionResult


@post(
    "/api/maintenance/cleanup",
    responses=ERROR_RESPONSES,
    summary="Apply retention now",
    status_code=200,
)
async def cleanup(ctx: Ctx) -> CleanupResponse:
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
