"""Encryption at rest for upstream credentials.

OAuth tokens and provider API keys are stored encrypted with AES-256-GCM under a key that never
enters the database: either ``BETTER_CCFLARE_SECRET_KEY`` or a ``secret.key`` file (mode 0600)
in the config directory, created on first run. A copied database file therefore reveals no
credential. A stored value is ``enc:v1:`` followed by base64 of ``nonce(12) || ciphertext || tag``;
a value without that prefix is legacy plaintext (the reference implementation stores tokens that
way) and is read as it is until the migration encrypts it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from better_ccflare.core import ConfigError

from ._errors import CredentialKeyError

__all__ = ["KEY_FILE_NAME", "SecretKey", "load_or_create_key"]

KEY_FILE_NAME = "secret.key"
SECRET_KEY_ENV = "BETTER_CCFLARE_SECRET_KEY"  # noqa: S105 (a variable name, not a secret)

_PREFIX = "enc:v1:"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_EXPECTED = (
    "base64 (standard or URL-safe) of exactly 32 random bytes, for example the output of "
    "`openssl rand -base64 32`"
)

_log = logging.getLogger("better_ccflare.database")


def is_encrypted(value: str) -> bool:
    """True when ``value`` is in the stored encrypted form rather than legacy plaintext."""
    return value.startswith(_PREFIX)


class SecretKey:
    """The AES-256-GCM key that protects stored credentials.

    Its ``repr`` never shows the key. ``origin`` says where it came from, so an error about a
    mismatched key can tell the user which knob to turn.
    """

    __slots__ = ("_aead", "_raw", "origin")

    def __init__(self, raw: bytes, *, origin: str = "generated") -> None:
        if len(raw) != _KEY_BYTES:
            raise ValueError(f"a secret key is {_KEY_BYTES} bytes, got {len(raw)}")
        self._raw = raw
        self._aead = AESGCM(raw)
        self.origin = origin

    def __repr__(self) -> str:
        return f"SecretKey(<redacted>, origin={self.origin!r})"

    @classmethod
    def generate(cls) -> SecretKey:
        """A fresh random key (what the key file holds on first run)."""
        return cls(secrets.token_bytes(_KEY_BYTES))

    @classmethod
    def from_text(cls, text: str, *, origin: str) -> SecretKey:
        """Parse the textual form (standard or URL-safe base64, padding optional).

        Raises:
            ValueError: ``text`` is not base64 of exactly 32 bytes.
        """
        cleaned = text.strip()
        padded = cleaned + "=" * (-len(cleaned) % 4)
        try:
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(_EXPECTED) from None
        if len(raw) != _KEY_BYTES:
            raise ValueError(_EXPECTED)
        return cls(raw, origin=origin)

    def to_text(self) -> str:
        """The key as standard base64: what the key file holds and the env variable accepts."""
        return base64.b64encode(self._raw).decode("ascii")

    def encrypt(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` into its stored form; each call uses a fresh random nonce."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), None)
        return _PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """Return the plaintext of a stored value; legacy plaintext comes back unchanged.

        Raises:
            CredentialKeyError: the value was encrypted under another key, or is damaged.
        """
        if not is_encrypted(stored):
            return stored
        try:
            blob = base64.b64decode(stored[len(_PREFIX) :], validate=True)
            return self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], None).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise CredentialKeyError(
                "Stored account credentials were encrypted with a different key than the one "
                f"in use (from {self.origin}), or are damaged. Set {SECRET_KEY_ENV} to the "
                f"original key, or restore the original {KEY_FILE_NAME} file. Nothing was changed."
            ) from None


def load_or_create_key(
    config_dir: Path, env_value: str | None, *, env_source: str = "environment"
) -> SecretKey:
    """Find the credential key: the environment wins, then the key file, else create the file.

    The key file is ``<config_dir>/secret.key``, created with mode 0600 (and the directory with
    0700 when this creates it). Creation is race-safe: the key is written to a private temporary
    file and hard-linked into place, so two processes starting together agree on one key. This
    does blocking file I/O; call it before the event loop starts or through a thread.

    Args:
        config_dir: The better-ccflare config directory.
        env_value: The value of ``BETTER_CCFLARE_SECRET_KEY``, or ``None`` when unset.
        env_source: Where ``env_value`` came from, for error messages (``environment``, ``.env``).

    Raises:
        ConfigError: ``env_value`` or the key file does not hold base64 of 32 bytes.
    """
    if env_value is not None:
        try:
            return SecretKey.from_text(env_value, origin=SECRET_KEY_ENV)
        except ValueError as exc:
            raise ConfigError(SECRET_KEY_ENV, "<redacted>", str(exc), env_source) from None
    path = config_dir / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    return _read_key_file(path)


def _read_key_file(path: Path) -> SecretKey:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        _log.warning(
            "The credential key file %s is readable by other users; run `chmod 600 %s`.", path, path
        )
    try:
        return SecretKey.from_text(path.read_text(encoding="ascii"), origin=str(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "<redacted>", str(exc), "key file") from None


def _create_key_file(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(SecretKey.generate().to_text() + "\n")
            file.flush()
            os.fsync(file.fileno())
        # link() fails if the name exists, so a concurrent first run keeps the key that won.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
            _log.info("Created the credential key file %s.", path)
    finally:
        temporary.unlink()
