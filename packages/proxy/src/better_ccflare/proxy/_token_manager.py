"""Fresh upstream credentials for every account, refreshed ahead of expiry and after a 401.

Refresh tokens are single-use: a refresh that runs twice, or one that overwrites a token another
process (or ``claude`` re-login) just rotated, can lock an account out for good. The rules here:

* One refresh in flight per account. Concurrent callers await the same task, so a burst of
  requests causes exactly one call to the token endpoint. The task is shielded: a client that
  hangs up does not cancel a refresh whose rotated token still has to be stored.
* Across instances sharing a PostgreSQL database, the task holds the account's fleet-wide
  refresh lock (:meth:`Store.refresh_lock`) from its re-read to its write, so a burst spread
  over the fleet also causes one call. If the lock cannot be had in time (another instance's
  refresh hangs, the database is unreachable) the refresh backs off like a failed one: a
  refresh whose rotated token could not be stored would lose the account.
* Before refreshing, the stored tokens are re-read; if someone else rotated them, theirs are used.
* The result is written with compare-and-swap on the refresh token that was used. If the swap
  loses, the stored tokens win and are adopted: a newer rotation is never overwritten.
* ``requires_reauth`` is set only when the token endpoint says the refresh token is dead *and*
  the database still holds that same token. If it holds a newer one (another process rotated
  it: the token endpoint refuses the old one with ``invalid_grant``), that one is adopted, or
  tried if it needs a refresh too.
* After a failed refresh the account is left alone for a while (the backoff) instead of
  hammering the token endpoint; a still-valid access token keeps being served meanwhile.

Each failed refresh is told once, as a :class:`~._pool_events.RefreshFailed` pool event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

import httpx2
import msgspec

from better_ccflare.core import Account, BetterCcflareError, Clock, Credentials
from better_ccflare.database import FleetLockError, Store
from better_ccflare.providers import (
    AccountConfigError,
    OAuthError,
    OAuthTransientError,
    Provider,
    ProviderRegistry,
    ReauthRequiredError,
)

from ._log_fields import account_data
from ._pool_events import PoolEvents, RefreshFailed

__all__ = ["DEFAULT_REFRESH_BACKOFF_MS", "CredentialsUnavailableError", "TokenManager"]

DEFAULT_REFRESH_BACKOFF_MS = 30_000
"""How long an account's refresh is not retried after it failed for a reason other than a dead
refresh token (a ``retry-after`` from the token endpoint can lengthen it)."""
_MAX_BACKOFF_MS = 15 * 60_000
_USABLE_MARGIN_MS = 60_000
"""An access token this close to expiry is not served as a fallback when its refresh failed."""

_log = logging.getLogger("better_ccflare.proxy")


class CredentialsUnavailableError(BetterCcflareError):
    """The account has no usable credentials right now; the proxy should try another account.

    Args:
        account: The account, named in the message (never its secrets).
        problem: What went wrong, in words.
        reauth_required: The refresh token is dead: nothing helps until someone logs in again.
        retry_after_ms: When set, no new refresh is attempted for this long.
        rejected: The upstream refused the credentials and refreshing gave nothing else to
            try: the rejection stands.
    """

    def __init__(
        self,
        account: Account,
        problem: str,
        *,
        reauth_required: bool = False,
        retry_after_ms: int | None = None,
        rejected: bool = False,
    ) -> None:
        self.account_id = account.id
        self.reauth_required = reauth_required
        self.retry_after_ms = retry_after_ms
        self.rejected = rejected
        if reauth_required:
            fix = "Log in to this account again to use it."
        elif retry_after_ms is not None:
            fix = f"The refresh will be retried in {max(1, -(-retry_after_ms // 1000))} s."
        else:
            fix = "Other accounts are used meanwhile."
        super().__init__(f"Account {account.name!r} has no usable credentials: {problem} {fix}")


class _Block(msgspec.Struct, frozen=True, kw_only=True):
    """Why refreshing an account is pointless until a deadline or until its tokens change."""

    refresh_token: str | None
    """The refresh token that failed; different tokens (a new login) lift the block."""
    until: float | None
    """Monotonic seconds; ``None`` means until the refresh token changes (it is dead)."""
    problem: str


class TokenManager:
    """Hands out fresh credentials per account and keeps the stored tokens consistent.

    Args:
        store: Where the credentials live; written only with compare-and-swap.
        registry: Resolves each account's provider, which decides when and how to refresh.
        client: Used by providers to call their token endpoints.
        clock: Source of "now" for expiry checks and the backoff.
        on_update: Called with the updated account whenever a refresh (or an adoption of
            tokens found in the store) changes its credentials or flags it for re-login, so an
            in-memory account pool can follow.
        refresh_backoff_ms: How long a failed refresh is not retried (see
            :data:`DEFAULT_REFRESH_BACKOFF_MS`).
        events: Where failed refreshes are told; the pool's events in a service, a new
            (logging) :class:`PoolEvents` by default.
    """

    __slots__ = (
        "_backoff_ms",
        "_blocks",
        "_client",
        "_clock",
        "_events",
        "_inflight",
        "_known",
        "_on_update",
        "_registry",
        "_store",
    )

    def __init__(
        self,
        *,
        store: Store,
        registry: ProviderRegistry,
        client: httpx2.AsyncClient,
        clock: Clock,
        on_update: Callable[[Account], None] | None = None,
        refresh_backoff_ms: int = DEFAULT_REFRESH_BACKOFF_MS,
        events: PoolEvents | None = None,
    ) -> None:
        self._events = events or PoolEvents()
        self._store = store
        self._registry = registry
        self._client = client
        self._clock = clock
        self._on_update = on_update
        self._backoff_ms = refresh_backoff_ms
        self._inflight: dict[str, asyncio.Task[Credentials]] = {}
        self._known: dict[str, Credentials] = {}
        self._blocks: dict[str, _Block] = {}

    async def credentials_for(self, account: Account) -> Credentials:
        """Credentials to send upstream for ``account``, refreshed first if the provider says so.

        If the refresh fails for a reason other than a dead refresh token while the current
        access token is still valid, the current one is returned (the refresh is retried after
        the backoff).

        Raises:
            CredentialsUnavailableError: No usable credentials; use another account.
            UnknownProviderError: The account's provider is not installed.
        """
        provider = self._registry.get(account.provider)
        current = self._current(account)
        if not provider.needs_refresh(current, self._clock.now_ms()):
            return current
        try:
            return await self._shared_refresh(account, provider, rejected=None)
        except CredentialsUnavailableError as exc:
            if not exc.reauth_required and self._still_usable(current):
                return current
            raise

    async def force_refresh(self, account: Account, rejected: Credentials) -> Credentials:
        """Credentials to retry with after the upstream answered 401 to ``rejected``.

        If another request already refreshed the account, its newer token is returned without
        another refresh. Otherwise the account is refreshed (sharing any refresh in flight).
        The result never carries the rejected token.

        Raises:
            CredentialsUnavailableError: Nothing better than the rejected credentials exists.
            UnknownProviderError: The account's provider is not installed.
        """
        provider = self._registry.get(account.provider)
        current = self._current(account)
        if not _same_bearer(current, rejected) and not provider.needs_refresh(
            current, self._clock.now_ms()
        ):
            return current
        fresh = await self._shared_refresh(account, provider, rejected=rejected)
        if _same_bearer(fresh, rejected):
            # We joined a refresh started before the 401 that kept the rejected token.
            fresh = await self._shared_refresh(account, provider, rejected=rejected)
        if _same_bearer(fresh, rejected):
            raise CredentialsUnavailableError(
                account, "the upstream rejected its credentials.", rejected=True
            )
        return fresh

    async def aclose(self) -> None:
        """Wait for refreshes in flight, so every rotated token reaches the store."""
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    def _current(self, account: Account) -> Credentials:
        """The caller's credentials, or the ones we refreshed since if they are newer."""
        known = self._known.get(account.id)
        given = account.credentials
        if known is None or _expiry(given) >= _expiry(known):
            return given
        return known

    def _still_usable(self, credentials: Credentials) -> bool:
        expires_at_ms = credentials.expires_at_ms
        return credentials.access_token is not None and (
            expires_at_ms is None or expires_at_ms - self._clock.now_ms() > _USABLE_MARGIN_MS
        )

    async def _shared_refresh(
        self, account: Account, provider: Provider, *, rejected: Credentials | None
    ) -> Credentials:
        task = self._inflight.get(account.id)
        if task is None:
            current = self._current(account)
            self._check_block(account, current)
            task = asyncio.create_task(
                self._refresh(account, provider, current, rejected),
                name=f"token-refresh:{account.id}",
            )
            self._inflight[account.id] = task
            task.add_done_callback(functools.partial(self._forget, account.id))
        return await asyncio.shield(task)

    def _forget(self, account_id: str, task: asyncio.Task[Credentials]) -> None:
        if self._inflight.get(account_id) is task:
            del self._inflight[account_id]
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not reported as lost

    def _check_block(self, account: Account, current: Credentials) -> None:
        block = self._blocks.get(account.id)
        if block is None:
            return
        if block.refresh_token != current.refresh_token:
            del self._blocks[account.id]  # new tokens since the failure: try them
            return
        if block.until is None:
            raise CredentialsUnavailableError(account, block.problem, reauth_required=True)
        remaining_ms = round((block.until - self._clock.monotonic()) * 1000)
        if remaining_ms <= 0:
            del self._blocks[account.id]
            return
        raise CredentialsUnavailableError(account, block.problem, retry_after_ms=remaining_ms)

    async def _refresh(
        self,
        account: Account,
        provider: Provider,
        credentials: Credentials,
        rejected: Credentials | None,
    ) -> Credentials:
        """The refresh procedure; runs as the one task per account that callers share, under
        the account's fleet-wide refresh lock."""
        try:
            async with self._store.refresh_lock(account.id):
                return await self._refresh_locked(account, provider, credentials, rejected)
        except FleetLockError as exc:
            raise self._back_off(account, credentials.refresh_token, str(exc), None) from None

    async def _refresh_locked(
        self,
        account: Account,
        provider: Provider,
        credentials: Credentials,
        rejected: Credentials | None,
    ) -> Credentials:
        stored = await self._read(account)
        retried = False
        while True:
            if stored.credentials.refresh_token != credentials.refresh_token or _expiry(
                stored.credentials
            ) > _expiry(credentials):
                # A re-login, another process, or an earlier refresh of ours stored newer tokens.
                credentials = stored.credentials
            if stored.requires_reauth:
                # Flagged by another process (or earlier by us): do not spend the dead token.
                target = msgspec.structs.replace(stored, credentials=credentials)
                raise self._dead(
                    target, credentials.refresh_token, "it is waiting for a new login."
                )
            now_ms = self._clock.now_ms()
            if not provider.needs_refresh(credentials, now_ms) and (
                rejected is None or not _same_bearer(credentials, rejected)
            ):
                return self._adopt(stored, credentials)

            used = credentials.refresh_token
            target = msgspec.structs.replace(stored, credentials=credentials)
            try:
                fresh = await provider.refresh_credentials(target, self._client, now_ms)
            except ReauthRequiredError as exc:
                accounts = self._store.accounts
                if await accounts.mark_requires_reauth_if_refresh_token_matches(account.id, used):
                    raise self._dead(target, used, str(exc)) from None
                latest = await self._read(account)
                if retried or latest.credentials.refresh_token == used:
                    raise self._dead(target, used, str(exc)) from None
                _log.info(
                    "The refresh token of account %s (%s) was refused, but a newer one was "
                    "stored meanwhile; refreshing with that",
                    account.name,
                    account.id,
                    extra={"data": account_data(account)},
                )
                stored, retried = latest, True
                continue
            except OAuthTransientError as exc:
                raise self._back_off(account, used, str(exc), exc.retry_after_ms) from None
            except (OAuthError, AccountConfigError) as exc:
                raise self._back_off(account, used, str(exc), None) from None
            except Exception as exc:
                # A plugin provider may fail in ways of its own; its message could hold secrets.
                problem = f"the provider's refresh raised {type(exc).__name__}."
                raise self._back_off(account, used, problem, None) from None

            if rejected is not None and _same_bearer(fresh, rejected):
                raise CredentialsUnavailableError(
                    account,
                    "the upstream rejected its credentials and refreshing gave the same.",
                    rejected=True,
                )
            return await self._save(target, fresh)

    async def _save(self, refreshed: Account, fresh: Credentials) -> Credentials:
        """Store ``fresh`` unless someone replaced ``refreshed``'s tokens meanwhile."""
        used = refreshed.credentials
        if fresh == used:
            return self._adopt(refreshed, fresh)  # nothing changed (an API key): nothing to write
        accounts = self._store.accounts
        if await accounts.update_credentials_if_refresh_token_matches(
            refreshed.id, used.refresh_token, fresh
        ):
            _log.info(
                "Refreshed the credentials of account %s (%s)",
                refreshed.name,
                refreshed.id,
                extra={"data": account_data(refreshed)},
            )
            return self._adopt(refreshed, fresh)
        latest = await self._read(refreshed)
        _log.warning(
            "The tokens of account %s (%s) were replaced while it was being refreshed; "
            "keeping the stored ones",
            refreshed.name,
            refreshed.id,
            extra={"data": account_data(refreshed)},
        )
        return self._adopt(latest, latest.credentials)

    async def _read(self, account: Account) -> Account:
        stored = await self._store.accounts.get(account.id)
        if stored is None:
            raise CredentialsUnavailableError(account, "it was removed from the database.")
        return stored

    def _adopt(self, stored: Account, credentials: Credentials) -> Credentials:
        self._blocks.pop(stored.id, None)
        self._known[stored.id] = credentials
        self._publish(msgspec.structs.replace(stored, credentials=credentials))
        return credentials

    def _dead(
        self, account: Account, refresh_token: str | None, problem: str
    ) -> CredentialsUnavailableError:
        """Record a dead refresh token; the caller raises the returned error."""
        self._events.emit(
            RefreshFailed(
                account_id=account.id,
                account=account.name,
                problem=f"the refresh token is no longer valid: {problem}",
                reauth_required=True,
                retry_in_ms=None,
            )
        )
        self._blocks[account.id] = _Block(refresh_token=refresh_token, until=None, problem=problem)
        self._publish(msgspec.structs.replace(account, requires_reauth=True))
        return CredentialsUnavailableError(account, problem, reauth_required=True)

    def _back_off(
        self,
        account: Account,
        refresh_token: str | None,
        problem: str,
        retry_after_ms: int | None,
    ) -> CredentialsUnavailableError:
        wait_ms = min(max(self._backoff_ms, retry_after_ms or 0), _MAX_BACKOFF_MS)
        self._blocks[account.id] = _Block(
            refresh_token=refresh_token,
            until=self._clock.monotonic() + wait_ms / 1000,
            problem=problem,
        )
        self._events.emit(
            RefreshFailed(
                account_id=account.id,
                account=account.name,
                problem=problem,
                reauth_required=False,
                retry_in_ms=wait_ms,
            )
        )
        return CredentialsUnavailableError(account, problem, retry_after_ms=wait_ms)

    def _publish(self, account: Account) -> None:
        if self._on_update is not None:
            self._on_update(account)


def _same_bearer(a: Credentials, b: Credentials) -> bool:
    """Whether both would authenticate with the same secret."""
    return a.access_token == b.access_token and a.api_key == b.api_key


def _expiry(credentials: Credentials) -> int:
    return -1 if credentials.expires_at_ms is None else credentials.expires_at_ms
