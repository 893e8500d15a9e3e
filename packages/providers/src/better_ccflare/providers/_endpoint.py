"""An upstream URL with its environment overrides: how every provider names its addresses.

Overrides exist for tests (a fake upstream on loopback) and for enterprise gateways. They are
read at call time, not import time, so a process can change them and tests can set them per
test. A per-account ``custom_endpoint`` takes precedence over all of them. Each provider's
module declares its own endpoints; :data:`~._registry.ENDPOINTS` lists the built-ins' for the
documentation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

__all__ = ["Endpoint"]


class Endpoint(msgspec.Struct, frozen=True):
    """A default URL and the variables that override it (first one set wins)."""

    env: tuple[str, ...]
    default: str
    description: str

    def url(self, environ: Mapping[str, str] | None = None) -> str:
        """The URL in force: the first override that is set and non-empty, else the default."""
        source = os.environ if environ is None else environ
        for name in self.env:
            value = source.get(name, "").strip()
            if value:
                return value.rstrip("/")
        return self.default
