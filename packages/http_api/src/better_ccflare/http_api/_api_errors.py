"""One error shape for the whole management API: ``{"error": message}`` with the status.

The reference's scripts read ``error``; we keep that and add ``field`` when one input is to
blame. Our own errors map by kind (bad input 400, missing 404, conflict 409); Litestar's body
validation failures become a 400 naming the offending field; anything unexpected becomes a 500
whose details go to the log only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Annotated, Any, cast

import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from better_ccflare.core import (
    BetterCcflareError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)

__all__ = ["BAD_INPUT", "ErrorBody", "api_error", "errors", "exception_handlers"]

_log = logging.getLogger("better_ccflare.http_api")

_Request = Request[Any, Any, State]


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What every refusal of the management API carries."""

    error: Annotated[str, msgspec.Meta(description="What went wrong and what to do about it")]
    field: Annotated[
        str | None,
        msgspec.Meta(description="The body field or query parameter to blame, when one is"),
    ] = None


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


BAD_INPUT = "Bad input: a body field or query parameter is malformed or refused; `field` names it"
"""The 400 every operation with input declares (the served schema keeps only those 400s)."""

_UNAUTHORISED = _spec(
    "An API key is required (once any key is active) and none was sent, or the one sent is "
    "unknown or disabled"
)
_FORBIDDEN = _spec(
    "The key's role (api-only) may not use the management API, or the call came from a page "
    "of another site, or the Host header does not name this server"
)
_FOREIGN_HOST = _spec("The Host header does not name this server (see docs/security.md)")
_NOT_JSON = _spec("The request has a body that is not sent as application/json")


def errors(
    *,
    keys: bool = True,
    changes: bool = False,
    invalid: bool = False,
    missing: str | None = None,
    conflict: str | None = None,
) -> dict[int, ResponseSpec]:
    """The error responses one operation can give, for its OpenAPI ``responses``.

    Every path refuses a Host that does not name this server (403).

    Args:
        keys: The operation needs a proxy API key once any is active (every ``/api`` one):
            401 without a valid one, 403 for a role or a page of another site that may not.
        changes: The operation changes state (POST, PUT, PATCH, DELETE): the dispatcher refuses a
            body that is not JSON with 415.
        invalid: It takes input that can be refused (400).
        missing: What it names that may not exist (404), e.g. ``"account"``.
        conflict: When it conflicts with existing state (409), in words.
    """
    specs = {401: _UNAUTHORISED, 403: _FORBIDDEN} if keys else {403: _FOREIGN_HOST}
    if changes:
        specs[415] = _NOT_JSON
    if invalid:
        specs[400] = _spec(BAD_INPUT)
    if missing is not None:
        specs[404] = _spec(f"No such {missing}")
    if conflict is not None:
        specs[409] = _spec(f"Conflict: {conflict}")
    return specs


def api_error(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(ErrorBody(error=message, field=field), status_code=status, headers=headers)


def _ours(_: _Request, exc: BetterCcflareError) -> Response[ErrorBody]:
    if isinstance(exc, InvalidInputError):
        return api_error(400, str(exc), exc.field)
    if isinstance(exc, ConfigError):
        return api_error(400, str(exc), exc.setting)
    if isinstance(exc, NotFoundError):
        return api_error(404, str(exc))
    if isinstance(exc, ConflictError):
        return api_error(409, str(exc))
    return api_error(400, str(exc))


_BODY_FIELD = re.compile(r"missing required field `([\w.]+)`")
"""Litestar reports a wrong body field under its own key, but a missing one only under
``data``, with msgspec's "Object missing required field `apiKey`" as the message."""


def _validation(_: _Request, exc: ValidationException) -> Response[ErrorBody]:
    """Name the field: a query parameter by its key, a body field from msgspec's message."""
    extra: object = exc.extra
    if not isinstance(extra, list) or not extra:
        return api_error(400, exc.detail)
    first: object = extra[0]  # pyright: ignore[reportUnknownVariableType]
    if not isinstance(first, dict):
        return api_error(400, exc.detail)
    details = cast("dict[str, object]", first)
    message = str(details.get("message") or exc.detail)
    field = str(details.get("key") or "") or None
    if field == "data":  # the body as a whole: a missing field
        found = _BODY_FIELD.search(message)
        field = found.group(1) if found else None
    return api_error(400, f"{field}: {message}" if field else message, field)


def _http(_: _Request, exc: HTTPException) -> Response[ErrorBody]:
    """Litestar's own refusals, with their headers: a 405 says what is ``Allow``ed."""
    return api_error(exc.status_code, exc.detail, headers=exc.headers)


def _unexpected(request: _Request, exc: Exception) -> Response[ErrorBody]:
    _log.exception(
        "Unexpected error in %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"data": {"method": request.method, "path": request.url.path}},
    )
    return api_error(500, "Internal error; the server log has the details.")


exception_handlers: dict[int | type[Exception], Callable[[_Request, Any], Response[Any]]] = {
    BetterCcflareError: _ours,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
"""Litestar picks the most specific class, so each kind above gets its own handler."""
