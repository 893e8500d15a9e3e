"""The management API assembled: every ``/api`` route, its auth, errors and OpenAPI schema.

:func:`management_app` builds the Litestar application the dispatcher sends every non-proxy
path to. The OpenAPI schema is served at ``/schema`` (``/schema/openapi.json`` for tools) and
covers every management route (``_openapi``); the proxy route is not Litestar's, so it is not in
the schema, whose description points to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Litestar, Router
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.types import ControllerRouterHandler

from ._api_accounts import ACCOUNT_HANDLERS
from ._api_capacity import CAPACITY_HANDLERS
from ._api_config import CONFIG_HANDLERS
from ._api_context import ManagementContext
from ._api_errors import exception_handlers
from ._api_insight import INSIGHT_HANDLERS
from ._api_keys import API_KEY_HANDLERS
from ._api_logs import LOG_HANDLERS
from ._api_metrics import METRICS_HANDLERS
from ._api_oauth import OAUTH_HANDLERS
from ._api_providers import PROVIDER_HANDLERS
from ._api_requests import REQUEST_HANDLERS
from ._api_stats import STATS_HANDLERS
from ._health import health_handlers
from ._metrics import presents_scrape_token
from ._openapi import PROXY_KEYS, openapi_config
from ._strict_body import strict_json_body

__all__ = ["MANAGEMENT_HANDLERS", "management_app"]

MANAGEMENT_HANDLERS: tuple[ControllerRouterHandler, ...] = (
    *ACCOUNT_HANDLERS,
    *OAUTH_HANDLERS,
    *PROVIDER_HANDLERS,
    *STATS_HANDLERS,
    *REQUEST_HANDLERS,
    *LOG_HANDLERS,
    *API_KEY_HANDLERS,
    *CONFIG_HANDLERS,
    *INSIGHT_HANDLERS,
    *CAPACITY_HANDLERS,
    *METRICS_HANDLERS,
)


def _api_key_guard(ctx: ManagementContext):
    """Once any proxy API key is active, ``/api`` and ``/metrics`` need an admin key (dashboard
    pages do not); ``/metrics`` also takes the scrape token, when one is set."""

    async def guard(connection: ASGIConnection[Any, Any, Any, State], _: BaseRouteHandler) -> None:
        path = connection.scope["path"]
        if path == "/metrics" and presents_scrape_token(
            connection.headers, ctx.settings.current().metrics_token
        ):
            return
        result = await ctx.auth.authenticate(connection.headers, path)
        if result.allowed:
            return
        if result.status == 403:
            raise PermissionDeniedException(result.message)
        raise NotAuthorizedException(result.message)

    return guard


def management_app(
    ctx: ManagementContext, *, extra: Sequence[ControllerRouterHandler] = ()
) -> Litestar:
    """The Litestar app: health, the management API, and ``extra`` handlers (the dashboard)."""
    return Litestar(
        route_handlers=[
            *health_handlers(ctx.pool.accounts, ctx.usage.usage_map, ctx.strategy_name, ctx.clock),
            # One router only to state, once, that every /api operation takes a proxy key.
            Router("/", route_handlers=MANAGEMENT_HANDLERS, security=PROXY_KEYS),
            *extra,
        ],
        dependencies={"ctx": Provide(lambda: ctx, use_cache=True, sync_to_thread=False)},
        guards=[_api_key_guard(ctx)],
        before_request=strict_json_body,
        exception_handlers=exception_handlers,
        openapi_config=openapi_config(ctx.version),
        # Litestar's default logging config attaches a handler to the root logger, which makes
        # every library log at INFO (httpx2 would log each upstream request). Logging is
        # configured by better_ccflare.logger alone.
        logging_config=None,
    )
