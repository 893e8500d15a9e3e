"""Proxy API keys: generation, and the slow salted hash they are stored as.

A stored key is ``hex(salt):hex(scrypt(key, salt))`` with Node's default scrypt parameters
(N=16384, r=8, p=1, 64-byte output). The text looks the same in both implementations, but the
salt fed to scrypt differs:

* **Ours** (the only form :func:`hash_api_key` writes): the 16 random bytes the hex spells.
* **The TypeScript better-ccflare's**: it passes the hex *string* itself to scrypt, so the salt
  is its 32 UTF-8 bytes.

:func:`verify_api_key` accepts both, ours first, so a database migrated from the reference
keeps every client's key. Keys created here do not verify in the reference.

scrypt is deliberately slow (tens of milliseconds): callers on the event loop must run
:func:`verify_api_key` in a worker thread, and should remember keys they have already verified.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

__all__ = [
    "API_KEY_PREFIX",
    "generate_api_key",
    "hash_api_key",
    "looks_like_api_key",
    "verify_api_key",
]

API_KEY_PREFIX = "btr-"
_BODY_LENGTH = 32
_ALPHABET = string.ascii_letters + string.digits
_SCRYPT = {"n": 16384, "r": 8, "p": 1, "dklen": 64, "maxmem": 64 * 1024 * 1024}


def generate_api_key() -> str:
    """A new key: ``btr-`` followed by 32 random letters and digits (about 190 bits)."""
    return API_KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))


def looks_like_api_key(text: str) -> bool:
    """Cheap shape check, to reject garbage before paying for a hash."""
    body = text.removeprefix(API_KEY_PREFIX)
    return (
        text.startswith(API_KEY_PREFIX)
        and len(body) == _BODY_LENGTH
        and all(c in _ALPHABET for c in body)
    )


def hash_api_key(key: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``key``: ``hex(salt):hex(scrypt(key, salt))``."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(key.encode(), salt=salt, **_SCRYPT)
    return f"{salt.hex()}:{digest.hex()}"


def verify_api_key(key: str, hashed: str) -> bool:
    """True when ``key`` hashes to ``hashed`` in our form or the reference's (see the module
    docstring), compared in constant time; malformed input is False.

    A wrong key costs two hashes, one per form.
    """
    salt_hex, sep, digest_hex = hashed.partition(":")
    if not sep:
        return False
    try:
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    if len(expected) != _SCRYPT["dklen"]:
        return False
    return any(
        hmac.compare_digest(hashlib.scrypt(key.encode(), salt=candidate, **_SCRYPT), expected)
        for candidate in (salt, salt_hex.encode())
    )
