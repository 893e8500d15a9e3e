"""JSON request bodies are read strictly: ``0`` is not ``false`` and ``"5"`` is not ``5``.

Litestar converts every handler argument with msgspec's lax mode, which query strings need
(they are text) but which also lets a JSON body say ``"storePayloads": 0`` and be taken as
``false``. The schema says ``boolean``; the server should agree. This hook decodes a handler's
JSON body once more, strictly, into the same declared type, before Litestar does; what fails
becomes the usual 400 naming the field. Only the management API has JSON bodies here, and it
is not the hot path, so the second decode costs nothing that matters.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import ValidationException

__all__ = ["strict_json_body"]

_PLACE = re.compile(r" - at `\$(?:\.(\w+))?[^`]*`$")
"""msgspec ends its message with the JSON path of the error: ``... - at `$.storePayloads```.
The field is reported apart, as Litestar does, so the message is the same as Litestar's."""


async def strict_json_body(request: Request[Any, Any, State]) -> None:
    """Litestar ``before_request`` hook: refuse a body whose types are only loosely right.

    Raises:
        ValidationException: The body holds a value of the wrong JSON type.
    """
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return
    body = await request.body()
    if not body:
        return  # Litestar reports the missing body itself
    try:
        msgspec.json.decode(body, type=data.annotation, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        place = _PLACE.search(text)
        key = (place.group(1) if place else None) or "data"
        message = text[: place.start()] if place else text
        raise ValidationException(message, extra=[{"key": key, "message": message}]) from None
    except msgspec.DecodeError:
        return  # not JSON at all: Litestar's own decoding reports it
