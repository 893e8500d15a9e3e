"""The names this server answers to: the defence against DNS rebinding and cross-site calls.

A web page on any site can make the browser send requests to ``127.0.0.1``. What it cannot
choose is the ``Host`` header, which names the site the page came from (``evil.example``, even
after that name's DNS was re-pointed at ``127.0.0.1``), nor the ``Origin`` header of a call it
makes. So the server answers only a ``Host`` that names it: a loopback name, the address it is
bound to, or a name the operator lists in ``BETTER_CCFLARE_ALLOWED_HOSTS``; and a state-changing
management call only from an origin that is this server. Jupyter, Vite and Ollama do the same.

Every request is checked, ``/v1`` included, so the usual case is one set lookup: the raw
``Host`` values already found allowed are remembered (a bounded number of them), and only a
value not seen before is parsed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedHosts"]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "[::]"})  # noqa: S104 (recognised, not bound)
_REMEMBERED_LIMIT = 256
"""Distinct allowed ``Host`` values kept for the fast path; real deployments have a handful."""


def _host_name(text: str) -> str:
    """``text`` (a Host value or a bind address) as a lower-case name without port; IPv6
    literals in brackets, as they appear in a Host header."""
    text = text.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[: end + 1] if end > 0 else text
    name, colon, port = text.rpartition(":")
    if colon and ":" in name:  # a bare IPv6 literal (a bind address such as ``::1``)
        try:
            return f"[{ipaddress.IPv6Address(text)}]"
        except ValueError:
            return text
    if colon and port.isdigit():
        text = name
    return text.rstrip(".")


class TrustedHosts:
    """Which ``Host`` and ``Origin`` values name this server.

    Args:
        bound_host: The address the server listens on (``config.host``); it is a name of the
            server unless it is a wildcard such as ``0.0.0.0``.
        allowed: Further names (``config.allowed_hosts``), matched without port; ``"*"``
            allows any ``Host``, for a reverse proxy that sets ``Host`` itself.
    """

    __slots__ = ("_any_host", "_names", "_remembered")

    def __init__(self, *, bound_host: str, allowed: Iterable[str] = ()) -> None:
        names = set(_LOOPBACK_NAMES)
        bound = _host_name(bound_host)
        if bound not in _WILDCARD_BINDS:
            names.add(bound)
        extra = {_host_name(name) for name in allowed}
        self._any_host = "*" in extra
        self._names = frozenset(names | (extra - {"*"}))
        self._remembered: set[bytes] = set()

    def allows_host(self, value: bytes) -> bool:
        """Whether a ``Host`` header value (``name`` or ``name:port``) names this server."""
        if value in self._remembered:
            return True
        if not (self._any_host or self._names_this_server(_host_name(value.decode("latin-1")))):
            return False
        if len(self._remembered) < _REMEMBERED_LIMIT:
            self._remembered.add(value)
        return True

    def allows_origin(self, origin: bytes, host: bytes | None) -> bool:
        """Whether a browser call from ``origin`` may change state here: the page it came
        from is this server, under the ``Host`` of the request itself or under a name this
        server answers to (``"*"`` does not count: behind it only the request's own ``Host``
        vouches for the page)."""
        scheme, sep, netloc = origin.decode("latin-1").partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not netloc or "/" in netloc:
            return False  # "null" (a sandboxed frame, a file), or not an origin at all
        if host is not None and netloc.lower() == host.decode("latin-1").strip().lower():
            return True
        return self._names_this_server(_host_name(netloc))

    def _names_this_server(self, name: str) -> bool:
        return name in self._names or name.endswith(".localhost")
