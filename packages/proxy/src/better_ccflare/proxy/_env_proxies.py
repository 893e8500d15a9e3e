"""The outbound HTTP proxy the environment asks for, read once.

``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` with ``NO_PROXY``, as curl and httpx2 read them.
Reading the environment once, at construction, keeps the common case (no proxy) free per
request; both upstream transports use this so they agree on which requests go through one.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

__all__ = ["EnvironmentProxies"]


class EnvironmentProxies:
    """``scheme -> proxy URL`` and the ``NO_PROXY`` names, from the environment."""

    __slots__ = ("_bypass", "_proxies")

    def __init__(self) -> None:
        found = urllib.request.getproxies_environment()
        bypass = tuple(
            name.strip().lower().lstrip(".")
            for name in found.get("no", "").split(",")
            if name.strip()
        )
        self._bypass = bypass
        self._proxies = (
            {}
            if "*" in bypass
            else {
                scheme: url if "://" in url else f"http://{url}"
                for scheme, url in found.items()
                if scheme in ("http", "https", "all") and url
            }
        )

    def for_url(self, url: str) -> str | None:
        """The proxy for ``url``, or ``None`` to connect directly. ``NO_PROXY`` names match
        themselves and their subdomains."""
        if not self._proxies:
            return None
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if any(host == name or host.endswith("." + name) for name in self._bypass):
            return None
        return self._proxies.get(parts.scheme) or self._proxies.get("all")
