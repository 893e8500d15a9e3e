"""PKCE (RFC 7636) for the Claude OAuth login, and the random ``state`` that goes with it.

The verifier never leaves the proxy until the code exchange; only its SHA-256 challenge goes
into the authorize URL. That is what makes a leaked authorization code useless on its own.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Literal

import msgspec

__all__ = ["PkcePair", "generate_pkce", "generate_state"]

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
"""RFC 7636 section 4.1: 43 to 128 unreserved characters."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class PkcePair(msgspec.Struct, frozen=True, kw_only=True):
    """A code verifier and its S256 challenge. The ``repr`` hides the verifier."""

    verifier: str
    challenge: str
    method: Literal["S256"] = "S256"

    def __repr__(self) -> str:
        return f"PkcePair(verifier=<redacted>, challenge={self.challenge!r}, method='S256')"

    @classmethod
    def from_verifier(cls, verifier: str) -> PkcePair:
        """Rebuild the pair from a stored verifier (a pending login keeps only the verifier).

        Raises:
            ValueError: ``verifier`` is not 43 to 128 RFC 7636 unreserved characters.
        """
        if not _VERIFIER.fullmatch(verifier):
            raise ValueError("a PKCE verifier is 43 to 128 characters of [A-Za-z0-9._~-]")
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier=verifier, challenge=_b64url(digest))


def generate_pkce() -> PkcePair:
    """A fresh pair: the verifier is 32 random bytes, base64url without padding (43 characters)."""
    return PkcePair.from_verifier(_b64url(secrets.token_bytes(32)))


def generate_state() -> str:
    """A fresh OAuth ``state``: 32 random bytes as 64 hex characters."""
    return secrets.token_hex(32)
