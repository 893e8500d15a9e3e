"""The OpenAPI document of the management API and the interactive docs that render it.

Served at ``/schema`` (Scalar, loaded from the package: the docs work offline) and
``/schema/openapi.json``. Operations are grouped by area (tags); every ``/api`` operation
carries :data:`PROXY_KEYS`, the two ways of presenting a proxy API key. Each operation lists
only the errors it can give (``_api_errors.errors``): Litestar documents a 400 in its own shape
for any operation with a parameter, even when its only parameter is a path segment that cannot
be malformed, so the served JSON keeps only the 400s the operations declare themselves.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from ._api_errors import BAD_INPUT

__all__ = ["PROXY_KEYS", "openapi_config"]

_SCALAR_JS = "/dashboard/assets/vendor/scalar-api-reference.standalone.js"
"""The vendored Scalar bundle (see ``dashboard/assets/vendor/README.md``), served with the
dashboard's assets; a CDN would leave the docs blank offline."""

_TAGS = (
    Tag(name="health", description="Liveness and readiness probes; no key needed."),
    Tag(
        name="accounts",
        description="The upstream accounts the proxy routes to: list, add, change, delete, "
        "and the account types this server can add.",
    ),
    Tag(name="oauth", description="Logging in to a Claude account from the dashboard (PKCE)."),
    Tag(
        name="api-keys",
        description="The proxy's own API keys, which clients and this API are called with.",
    ),
    Tag(name="requests", description="Request history, stored payloads and the live stream."),
    Tag(name="analytics", description="Totals, time series, breakdowns and usage over time."),
    Tag(name="config", description="Settings in force, strategy, retention and cleanup."),
    Tag(name="logs", description="The server log: live and recent."),
    Tag(name="agents", description="Claude Code agents and the model each is pinned to."),
)

PROXY_KEYS: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]
"""Either scheme: the key in ``x-api-key`` or as ``Authorization: Bearer``."""

_SCHEMES = {
    "apiKey": SecurityScheme(
        type="apiKey",
        name="x-api-key",
        security_scheme_in="header",
        description="A proxy API key (`better-ccflare api-key generate`). Needed once any "
        "active key exists; the management API needs the admin role.",
    ),
    "bearer": SecurityScheme(
        type="http",
        scheme="bearer",
        description="The same proxy API key as `Authorization: Bearer <key>`.",
    ),
}

_DESCRIPTION = """\
Manage a better-ccflare server: its accounts, API keys, settings, history and logs.

Until an API key exists every call is allowed; afterwards each `/api` call needs an admin key,
sent as `x-api-key` or `Authorization: Bearer`. The proxy itself is at `/v1/*` (Anthropic's
Messages API, documented by Anthropic): clients call it with the same keys, in either header.
Errors are `{"error": message, "field": name}`.
"""


class _DeclaredErrorsJson(JsonRenderPlugin):
    """``openapi.json`` without the 400s Litestar adds that no operation declared."""

    def __init__(self) -> None:
        super().__init__()
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:  # the schema is built once per app, so is this
            # Litestar types the request it takes as Request[Unknown, ...].
            self._rendered = self.render_json(  # pyright: ignore[reportUnknownMemberType]
                request, _declared_errors_only(openapi_schema)
            )
        return self._rendered


def _declared_errors_only(schema: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, item in schema["paths"].items():
        paths[path] = {}
        for method, operation in item.items():
            responses = dict(operation.get("responses", {}))
            if responses.get("400", {}).get("description") != BAD_INPUT:
                responses.pop("400", None)
            paths[path][method] = {**operation, "responses": responses}
    return {**schema, "paths": paths}


def openapi_config(version: str) -> OpenAPIConfig:
    """The management API's OpenAPI configuration, for the server's ``version``."""
    scalar = ScalarRenderPlugin(
        js_url=_SCALAR_JS,
        # Scalar's bundle carries its own styles; Litestar would link its branding CSS and icon
        # from a CDN instead, so neither is fetched.
        css_url="data:text/css,",
        favicon="<link rel='icon' type='image/svg+xml' href='/dashboard/assets/favicon.svg'>",
        options={
            # Nothing leaves this machine: no web fonts, no telemetry, "Test request" calls
            # this server directly rather than through Scalar's hosted proxy (the key would
            # pass through it), and none of Scalar's hosted services (AI agent, MCP, the
            # developer-tools bar advertising them) is offered.
            "withDefaultFonts": False,
            "telemetry": False,
            "proxyUrl": "",
            "showDeveloperTools": "never",
            "agent": {"disabled": True},
            "mcp": {"disabled": True},
        },
    )
    return OpenAPIConfig(
        title="better-ccflare management API",
        version=version,
        description=_DESCRIPTION,
        tags=list(_TAGS),
        # Each handler's docstring is its operation's description, written for API users.
        use_handler_docstrings=True,
        components=Components(security_schemes=dict(_SCHEMES)),
        path="/schema",
        render_plugins=[scalar, _DeclaredErrorsJson()],
    )
