"""Which headers cross the proxy, in each direction.

Requests: the client's headers are forwarded except those that describe the client's own
connection (hop-by-hop, ``host``, ``content-length``), the client's credentials for the proxy
(``authorization``, ``x-api-key``, ``cookie``), every ``x-better-ccflare-*`` control header and
the legacy ``x-project`` (the reference forwarded most of them upstream; they are ours and
never leave the proxy), and the
reverse-proxy hints that would tell the upstream who the client is (``forwarded``,
``x-forwarded-*``, ``x-real-ip``), and W3C trace context (``traceparent``, ``tracestate``),
which the proxy adds back only when ``BETTER_CCFLARE_TRACE_PROPAGATE_UPSTREAM`` is on.
``accept-encoding`` is replaced by ``identity`` so the usage
parser reads plain bytes instead of having to decompress a copy of every stream.

Responses: hop-by-hop headers and ``content-length`` are dropped (the proxy re-frames the body,
and a response transformer may change its length), and so are the upstream's ``date`` and
``server``: the proxy's own HTTP server stamps every response with its ``date``, so the
upstream's would arrive as a second one, and ``server`` would name the upstream's web server
rather than the one the client talks to. (The reference passed both through.)
``content-encoding`` is kept: the proxy asks for identity, but an upstream that compresses
anyway has its bytes passed through exactly as sent, so the client needs the header to decode
them. (The reference dropped it, assuming its HTTP client decoded the body; ours do not, and
the client would get gzip it cannot read.)
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import methodcaller

__all__ = [
    "CONTROL_HEADER_PREFIX",
    "append_anthropic_beta",
    "forwardable_request_headers",
    "forwardable_response_headers",
]

CONTROL_HEADER_PREFIX = "x-better-ccflare-"
"""Headers with this prefix steer the proxy and are never sent upstream."""

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
_REQUEST_DROPPED = _HOP_BY_HOP | {
    "host",
    "content-length",
    "authorization",
    "x-api-key",
    "cookie",
    "accept-encoding",
    "forwarded",
    "x-real-ip",
    "x-project",
    # W3C trace context: the proxy's own spans sit between the client and the upstream, so the
    # client's context goes upstream only when the operator allows it (the proxy adds it back).
    "traceparent",
    "tracestate",
}
_RESPONSE_DROPPED = _HOP_BY_HOP | {"content-length", "date", "server"}
_REQUEST_DROPPED_PREFIXES = ("proxy-", CONTROL_HEADER_PREFIX, "x-forwarded-")
_starts_with_proxy = methodcaller("startswith", "proxy-")


def _connection_tokens(headers: Mapping[str, str]) -> frozenset[str]:
    """Names listed in ``Connection``: hop-by-hop too (RFC 9110 section 7.6.1)."""
    for name, value in headers.items():
        if name.lower() == "connection":
            return frozenset(token.strip().lower() for token in value.split(","))
    return frozenset()


def forwardable_request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers that may go upstream, with lower-case names.

    Args:
        headers: The client's request headers (any case).

    Returns:
        A new dict without connection, credential, control and client-identifying headers,
        and with ``accept-encoding: identity``. Providers add their own auth header to it.
    """
    listed = _connection_tokens(headers)
    forwarded: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if (
            lowered in _REQUEST_DROPPED
            or lowered in listed
            or lowered.startswith(_REQUEST_DROPPED_PREFIXES)
        ):
            continue
        forwarded[lowered] = value
    forwarded["accept-encoding"] = "identity"
    return forwarded


def forwardable_response_headers(
    headers: Mapping[str, str], *, lower_case_names: bool = False
) -> dict[str, str]:
    """The upstream's response headers that may go to the client, with lower-case names.

    Args:
        headers: The upstream's response headers (any case).
        lower_case_names: The names are lower-case already (as the proxy's transports give
            them): the pass that lowers them is skipped, half of this function's cost.

    Returns:
        A new dict without hop-by-hop headers, ``content-length``, ``date`` and ``server``
        (see the module docstring for why, and for why ``content-encoding`` stays).
    """
    # Every proxied response passes here with a couple of dozen headers: the dropped names are
    # found with one set intersection instead of a test per header, and only the rare response
    # with a ``proxy-`` header is filtered header by header.
    if lower_case_names:
        forwarded = dict(headers)
    else:
        forwarded = dict(zip(map(str.lower, headers), headers.values(), strict=True))
    connection = forwarded.get("connection")
    dropped = _RESPONSE_DROPPED
    if connection is not None:
        dropped = dropped | {token.strip().lower() for token in connection.split(",")}
    for name in dropped & forwarded.keys():
        del forwarded[name]
    if any(map(_starts_with_proxy, forwarded)):
        return {name: value for name, value in forwarded.items() if not name.startswith("proxy-")}
    return forwarded


def append_anthropic_beta(headers: dict[str, str], beta: str) -> None:
    """Add ``beta`` to the comma-separated ``anthropic-beta`` header, once.

    Creates the header when absent and leaves it unchanged when ``beta`` is already listed.
    ``headers`` must have lower-case names, as :func:`forwardable_request_headers` returns them.
    """
    current = headers.get("anthropic-beta", "")
    listed = [item.strip() for item in current.split(",") if item.strip()]
    if beta not in listed:
        listed.append(beta)
    headers["anthropic-beta"] = ",".join(listed)
