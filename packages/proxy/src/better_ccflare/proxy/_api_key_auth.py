"""Who may use the proxy: checking the API key a client presents, and its role, per request.

Authentication is on only while at least one active key exists; with none, every request is
allowed (a fresh install must stay usable). Then every ``/v1/*``, ``/messages/*``, ``/api/*``
and ``/metrics`` request needs a key, sent as ``x-api-key`` or ``Authorization: Bearer``. Role
``admin`` may use everything; ``api-only`` only the proxy routes (``/v1/*``, ``/messages/*``)
and ``/api/sessions/{id}/account`` for its own sessions.

Keys are stored as a deliberately slow scrypt hash, so the hot path must not hash per request:

* The active keys are held in memory and reloaded from the store at most every
  ``refresh_interval_ms``, or on the next request after :meth:`ApiKeyAuthenticator.invalidate`.
* A key that verified once is remembered by the sha256 of its text, so later requests cost a
  dict lookup. The memory holds the key's id and stored hash, and is honoured only while that
  key is still active with the same hash; its role is read from the current key, so a role
  change applies at the next reload without re-hashing.
* Only keys whose ``prefix_last_8`` equals the presented key's last eight characters are hashed,
  and text that is not shaped like a key is rejected without hashing.
* Concurrent requests with the same not-yet-verified key share one hash (single flight), and
  at most a few hashes run at once, so a flood of guesses cannot take every worker thread.
* A key that failed is remembered for a short while (bounded, and forgotten whenever the set of
  active keys changes). This only spares CPU when a misconfigured client retries the same wrong
  key; it tells an attacker nothing, since every *new* guess still costs a full hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping

import msgspec

from better_ccflare.core import ApiKey, ApiKeyRole, Clock
from better_ccflare.database import Store

from ._api_key_hashing import looks_like_api_key, verify_api_key
from ._key_limits import iso_utc
from ._local_answers import LOCAL_ANSWER_PATHS

__all__ = ["ApiKeyAuthenticator", "AuthResult"]

_log = logging.getLogger("better_ccflare.proxy")

_EXEMPT_PATHS = frozenset({"/health", "/api/version/check"}) | LOCAL_ANSWER_PATHS
# The reference also exempted /api/oauth/*, which let anyone add an upstream account to a
# protected proxy; the dashboard sends the admin key on those calls like on every other.
_PROTECTED_ROOTS = ("/api", "/v1", "/messages", "/metrics")
_API_ONLY_ROOTS = ("/v1", "/messages")

_MAX_CONCURRENT_HASHES = 4
_NEGATIVE_TTL_MS = 30_000
_NEGATIVE_MAX_ENTRIES = 1024

_MISSING_MESSAGE = (
    "This proxy requires an API key. Send it in the x-api-key header or as "
    "'Authorization: Bearer <key>'; an admin can create one in the dashboard or with the CLI."
)
_INVALID_MESSAGE = (
    "Invalid API key: it matches no active key of this proxy. Check that it was copied in full "
    "and has not been disabled or deleted."
)


class AuthResult(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict on one request.

    ``message`` is safe to send to the client: it never contains the presented key.
    """

    allowed: bool
    status: int
    """200 when allowed; 401 for a missing, wrong or expired key; 403 when the role forbids the
    path."""
    key: ApiKey | None = None
    """The key that authenticated the request; ``None`` when auth is off or the path is exempt."""
    message: str = ""


_ALLOWED = AuthResult(allowed=True, status=200)
_MISSING = AuthResult(allowed=False, status=401, message=_MISSING_MESSAGE)
_INVALID = AuthResult(allowed=False, status=401, message=_INVALID_MESSAGE)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def _has_odd_segments(path: str) -> bool:
    """``.``, ``..`` or empty segments (a trailing slash aside), or no leading slash: a later
    normaliser could resolve such a path past our prefix checks, so it gets no exemption."""
    if not path.startswith("/"):
        return True
    segments = path[1:].removesuffix("/").split("/")
    return path != "/" and any(seg in ("", ".", "..") for seg in segments)


def _is_exempt(path: str) -> bool:
    if _has_odd_segments(path):
        return False
    if path in _EXEMPT_PATHS:
        return True
    # Dashboard pages and assets.
    return not any(_under(path, root) for root in _PROTECTED_ROOTS)


def _role_may_use(role: ApiKeyRole, path: str) -> bool:
    if role is ApiKeyRole.ADMIN:
        return True
    return not _has_odd_segments(path) and (
        any(_under(path, root) for root in _API_ONLY_ROOTS) or _is_session_lookup(path)
    )


def _is_session_lookup(path: str) -> bool:
    """``/api/sessions/{id}/account``: any key may ask which account serves a session (the
    route shows an api-only key only the sessions it made), so a status line can use the key
    Claude Code already holds."""
    parts = path.split("/")
    return len(parts) == 5 and parts[1:3] == ["api", "sessions"] and parts[4] == "account"


def _expired(key: ApiKey, expires_at_ms: int, now_ms: int) -> AuthResult | None:
    if now_ms < expires_at_ms:
        return None
    return AuthResult(
        allowed=False,
        status=401,
        key=key,
        message=(
            f"API key '{key.name}' expired at {iso_utc(expires_at_ms)}. Ask an admin to extend "
            "it (better-ccflare api-key limits NAME --expires ...) or to issue a new key."
        ),
    )


def _presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``x-api-key``, else from ``Authorization: Bearer``; ``None`` when absent."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def _find_match(presented: str, candidates: list[ApiKey]) -> ApiKey | None:
    """Runs in a worker thread: scrypt each candidate (each costs tens of milliseconds)."""
    for candidate in candidates:
        if verify_api_key(presented, candidate.hashed_key):
            return candidate
    return None


class ApiKeyAuthenticator:
    """Decides whether a request may proceed, from its headers and path.

    Args:
        store: Source of the active keys; uses are recorded with ``api_keys.touch``.
        clock: Times the reloads and caches.
        refresh_interval_ms: How stale the in-memory copy of the keys may get before the next
            request reloads it. Changes made through the API or CLI should also call
            :meth:`invalidate` so they apply at once.
        touch_interval_ms: A key's use is written to the store at most this often, so a busy
            key does not cost a database write per request; ``usage_count`` therefore counts
            these recorded uses, not every request.
    """

    __slots__ = (
        "_by_suffix",
        "_clock",
        "_generation",
        "_hash_slots",
        "_inflight",
        "_invalidations",
        "_keys",
        "_last_touch_ms",
        "_loaded_at",
        "_loaded_invalidations",
        "_negative",
        "_refresh_interval_ms",
        "_reload_lock",
        "_store",
        "_touch_interval_ms",
        "_verified",
    )

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        refresh_interval_ms: int = 2_000,
        touch_interval_ms: int = 5_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._refresh_interval_ms = refresh_interval_ms
        self._touch_interval_ms = touch_interval_ms
        self._keys: dict[str, ApiKey] = {}
        self._by_suffix: dict[str, list[ApiKey]] = {}
        self._loaded_at: float | None = None  # clock.monotonic() of the last load
        self._invalidations = 0
        self._loaded_invalidations = 0
        self._generation = 0  # bumped whenever the set of active keys or their hashes changes
        self._reload_lock = asyncio.Lock()
        self._hash_slots = asyncio.Semaphore(_MAX_CONCURRENT_HASHES)
        # sha256(presented key) -> (key id, stored hash it verified against)
        self._verified: dict[bytes, tuple[str, str]] = {}
        # sha256(presented key) -> (generation it failed in, monotonic expiry in seconds)
        self._negative: dict[bytes, tuple[int, float]] = {}
        self._inflight: dict[tuple[bytes, int], asyncio.Task[ApiKey | None]] = {}
        self._last_touch_ms: dict[str, int] = {}

    @property
    def auth_enabled(self) -> bool:
        """Whether any active key exists, as of the last load (``False`` before the first)."""
        return bool(self._keys)

    def key_names(self) -> dict[str, str]:
        """The active keys' names by id, as of the last load (for labels, never secrets)."""
        return {key_id: key.name for key_id, key in self._keys.items()}

    def invalidate(self) -> None:
        """Make the next request reload the keys; call after creating, disabling, deleting a
        key or changing its role."""
        self._invalidations += 1

    async def refresh(self) -> None:
        """Reload the keys from the store now (for example at startup)."""
        self.invalidate()
        await self._ensure_fresh()

    async def authenticate(self, headers: Mapping[str, str], path: str) -> AuthResult:
        """Check one request.

        Args:
            headers: The request headers, names in lower case.
            path: The request path, without the query string.

        Returns:
            The verdict; when not allowed, ``status`` and ``message`` are meant for the client.
        """
        path = path.partition("?")[0]
        await self._ensure_fresh()
        if not self._keys or _is_exempt(path):
            return _ALLOWED
        presented = _presented_key(headers)
        if presented is None:
            return _MISSING
        key = await self._identify(presented)
        if key is None:
            return _INVALID
        limits = key.limits
        if limits is not None and limits.expires_at_ms is not None:
            expired = _expired(key, limits.expires_at_ms, self._clock.now_ms())
            if expired is not None:
                return expired
        if not _role_may_use(key.role, path):
            return AuthResult(
                allowed=False,
                status=403,
                key=key,
                message=(
                    f"API key '{key.name}' has the api-only role, which may use only the proxy "
                    "routes under /v1/; this path needs an admin key."
                ),
            )
        self._touch(key)
        return AuthResult(allowed=True, status=200, key=key)

    # -- keys in memory ---------------------------------------------------------------------

    def _is_fresh(self) -> bool:
        if self._loaded_at is None or self._loaded_invalidations != self._invalidations:
            return False
        age_ms = (self._clock.monotonic() - self._loaded_at) * 1000
        return age_ms < self._refresh_interval_ms

    async def _ensure_fresh(self) -> None:
        if self._is_fresh():
            return
        async with self._reload_lock:
            if self._is_fresh():  # another request reloaded while we waited
                return
            invalidations = self._invalidations
            try:
                keys = await self._store.api_keys.list_active()
            except Exception:
                if self._loaded_at is None:
                    raise
                # Keep enforcing the keys we know rather than failing every request; try
                # again after the next interval.
                _log.warning("could not reload API keys; using the previous set", exc_info=True)
                self._loaded_at = self._clock.monotonic()
                self._loaded_invalidations = invalidations
                return
            self._install(keys)
            self._loaded_at = self._clock.monotonic()
            self._loaded_invalidations = invalidations

    def _install(self, keys: list[ApiKey]) -> None:
        new = {k.id: k for k in keys if k.is_active}
        if {i: k.hashed_key for i, k in new.items()} != {
            i: k.hashed_key for i, k in self._keys.items()
        }:
            self._generation += 1
            self._negative.clear()
        self._keys = new
        by_suffix: dict[str, list[ApiKey]] = {}
        for k in new.values():
            by_suffix.setdefault(k.prefix_last_8, []).append(k)
        self._by_suffix = by_suffix
        self._verified = {
            digest: (key_id, hashed)
            for digest, (key_id, hashed) in self._verified.items()
            if key_id in new and new[key_id].hashed_key == hashed
        }
        self._last_touch_ms = {i: t for i, t in self._last_touch_ms.items() if i in new}

    # -- verification -----------------------------------------------------------------------

    async def _identify(self, presented: str) -> ApiKey | None:
        """The active key ``presented`` is, hashing only when not already known."""
        digest = hashlib.sha256(presented.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            key = self._keys.get(known[0])
            if key is not None and key.hashed_key == known[1]:
                return key
        if not looks_like_api_key(presented):
            return None
        candidates = self._by_suffix.get(presented[-8:])
        if not candidates:
            return None
        failed = self._negative.get(digest)
        if failed is not None:
            generation, expires_at = failed
            if generation == self._generation and self._clock.monotonic() < expires_at:
                return None
            del self._negative[digest]
        # Keyed with the generation too, so nobody joins a hash against a superseded key set.
        flight = (digest, self._generation)
        task = self._inflight.get(flight)
        if task is None:
            task = asyncio.create_task(self._verify(digest, presented, list(candidates)))
            self._inflight[flight] = task
            task.add_done_callback(lambda _: self._inflight.pop(flight, None))
        # Shielded: one caller giving up must not cancel the hash the others wait for.
        match = await asyncio.shield(task)
        if match is None:
            return None
        # The keys may have been reloaded while hashing; answer with the current version.
        current = self._keys.get(match.id)
        return current if current is not None and current.hashed_key == match.hashed_key else None

    async def _verify(
        self, digest: bytes, presented: str, candidates: list[ApiKey]
    ) -> ApiKey | None:
        generation = self._generation
        async with self._hash_slots:
            match = await asyncio.to_thread(_find_match, presented, candidates)
        if match is not None:
            self._verified[digest] = (match.id, match.hashed_key)
        elif generation == self._generation:
            self._remember_failure(digest)
        return match

    def _remember_failure(self, digest: bytes) -> None:
        if len(self._negative) >= _NEGATIVE_MAX_ENTRIES:
            now = self._clock.monotonic()
            self._negative = {d: v for d, v in self._negative.items() if v[1] > now}
            while len(self._negative) >= _NEGATIVE_MAX_ENTRIES:
                del self._negative[next(iter(self._negative))]  # the oldest
        expires_at = self._clock.monotonic() + _NEGATIVE_TTL_MS / 1000
        self._negative[digest] = (self._generation, expires_at)

    def _touch(self, key: ApiKey) -> None:
        now_ms = self._clock.now_ms()
        last = self._last_touch_ms.get(key.id)
        if last is not None and now_ms - last < self._touch_interval_ms:
            return
        self._last_touch_ms[key.id] = now_ms
        self._store.api_keys.touch(key.id, now_ms)
