"""What a client's request must be before anything of it is sent upstream.

Two things are checked, both before an account is chosen:

* **The path stays under ``/v1/``, for us and for the upstream.** The server hands the proxy
  the path decoded once (``%2e`` is already ``.``), and the upstream decodes what it receives
  once more and may then resolve dot segments: ``/v1/../api/oauth/usage``, ``/v1/%2e%2e/…`` or
  ``/v1/..%2f…`` would reach an endpoint outside the API with the account's credentials. So a
  path with a ``.`` or ``..`` segment, a backslash, an encoded slash or backslash, or escapes
  that are not UTF-8 is refused; a path with other escapes is forwarded escaped again, so the
  upstream decodes exactly the path that was checked (``%252e`` stays an escape there).
* **A JSON body is a JSON object the proxy can read.** Only the fields routing needs are
  decoded (``model``, ``stream``, ``metadata``); the rest is skipped unread, which is what keeps
  the hot path cheap. Bodies sent as something else (multipart file uploads) are not read.

Both run on every request, so each starts with the cheapest test that clears the common case:
a path without ``%``, ``/.`` or a backslash is taken as it is, and the body is decoded once,
as it was before these checks existed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote_to_bytes

import msgspec

__all__ = ["InvalidRequestError", "Routing", "forwardable_path", "read_routing"]


class InvalidRequestError(Exception):
    """The request cannot be forwarded; the message says why and is safe to show the client."""


class Routing(msgspec.Struct, frozen=True):
    """The only fields of a request body routing needs; the rest is never decoded."""

    model: str | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None


_routing_decoder = msgspec.json.Decoder(Routing)
_NOTHING_TO_READ = Routing()

_PLAIN_PATH = " the proxy forwards only plain paths under /v1/."
_SEGMENT = "The request path has a '.' or '..' segment;" + _PLAIN_PATH
_ENCODED_SLASH = "The request path has an encoded slash or backslash (%2F or %5C);" + _PLAIN_PATH
_BACKSLASH = "The request path has a backslash;" + _PLAIN_PATH
_NOT_UTF8 = "The request path has percent-escapes that are not UTF-8 text (such as %FF)."
_OUTSIDE = "The proxy serves only paths under /v1/."

# Characters a path may carry unescaped (RFC 3986 ``pchar`` and ``/``); the rest is re-escaped.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def forwardable_path(path: str, raw_path: bytes | None) -> str:
    """The path to forward for a request whose decoded path is ``path``.

    Args:
        path: The path as the server decoded it (ASGI ``scope["path"]``).
        raw_path: The path as the client sent it (``scope["raw_path"]``), if the server says.

    Raises:
        InvalidRequestError: The path could leave ``/v1/`` upstream, or cannot be decoded.
    """
    raw = raw_path if raw_path is not None else path.encode()
    if b"%" not in raw and b"/." not in raw and b"\\" not in raw:
        if not path.startswith("/v1/"):
            raise InvalidRequestError(_OUTSIDE)
        return path
    lowered = raw.lower()
    if b"%2f" in lowered or b"%5c" in lowered:
        raise InvalidRequestError(_ENCODED_SLASH)
    try:
        decoded = unquote_to_bytes(raw).decode()
    except UnicodeDecodeError:
        raise InvalidRequestError(_NOT_UTF8) from None
    if "\\" in decoded:
        raise InvalidRequestError(_BACKSLASH)
    segments = decoded.split("/")
    if "." in segments or ".." in segments:
        raise InvalidRequestError(_SEGMENT)
    if not decoded.startswith("/v1/"):
        raise InvalidRequestError(_OUTSIDE)
    return quote(decoded, safe=_PATH_SAFE)


def read_routing(body: bytes, content_type: str | None) -> Routing:
    """The routing fields of ``body``; a body not sent as JSON is not read.

    Args:
        body: The whole request body.
        content_type: The request's ``content-type``; a body without one is read as JSON.

    Raises:
        InvalidRequestError: A JSON body that is not a JSON object the proxy can read.
    """
    if not body or (content_type is not None and "json" not in content_type):
        return _NOTHING_TO_READ
    try:
        return _routing_decoder.decode(body)
    except msgspec.ValidationError as exc:
        if not body.lstrip().startswith(b"{"):
            raise InvalidRequestError("The request body must be a JSON object.") from None
        message = f"The request body has a field of the wrong type: {exc}."
        raise InvalidRequestError(message) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}.") from None
    except UnicodeDecodeError:
        raise InvalidRequestError("The request body has a string that is not UTF-8 text.") from None
    except RecursionError:
        raise InvalidRequestError("The request body is nested too deeply to read.") from None
