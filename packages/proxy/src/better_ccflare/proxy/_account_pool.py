"""The accounts as the request path sees them: in memory, updated in place, persisted behind.

Routing a request must not wait on the database, so every request reads this in-memory copy.
Changes the proxy makes (a session started, a cooldown applied, a use counted) update the copy
at once and are written to the store in the background; changes made elsewhere (the CLI, the
management API, another instance over the same PostgreSQL) reach the copy through
:meth:`AccountPool.reload`. So a cooldown one instance learns from a 429 is written through and
benches the account on every instance, and none of them pays its own 429 for it.

Every cooldown that starts or ends here is told to :attr:`AccountPool.events` once, including
one that ends by itself: a timer on the injected clock fires at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from typing import Literal

import msgspec

from better_ccflare.core import (
    Account,
    Clock,
    PauseReason,
    RateLimitReason,
    RateLimitState,
    SessionState,
    Timer,
)
from better_ccflare.database import Store, StoreClosedError
from better_ccflare.load_balancer import Selection
from better_ccflare.providers import RateLimitInfo

from ._cooldowns import QUOTA_REASONS, CooldownPolicy, apply_failure, apply_rate_limit
from ._pool_events import (
    AccountPaused,
    CooldownEnded,
    CooldownStarted,
    CredentialsRejected,
    PoolEvents,
)

__all__ = ["AccountPool"]

_log = logging.getLogger("better_ccflare.proxy")

READING_WRITE_DELAY_S = 1.0
"""How long a rate-limit reading that does not change routing may wait to be written: the
dashboard and the CLI read accounts from the store, and a second's lag is invisible there."""


_WINDOW_RESET_ENDS = QUOTA_REASONS | {RateLimitReason.OUT_OF_CREDITS}
"""Benches a new usage window lifts: a used-up window, and no credit beyond the plan."""

_EndCause = Literal["expired", "served", "window_reset", "cleared"]


class AccountPool:
    """In-memory accounts backed by the store.

    Args:
        store: Where accounts are read from and changes written behind.
        clock: Time, and the timers of writes behind and of cooldown ends.
        session_duration_ms: How long a usage session lasts.
        events: Told of every cooldown that starts or ends; the other pool events of a
            service are emitted on it too. A new :class:`PoolEvents` (logging) by default.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        session_duration_ms: int,
        events: PoolEvents | None = None,
    ) -> None:
        self.events = events or PoolEvents()
        self._store = store
        self._clock = clock
        self._session_duration_ms = session_duration_ms
        self._by_id: dict[str, Account] = {}
        self._snapshot: tuple[Account, ...] = ()
        self._writes: set[asyncio.Task[None]] = set()
        self._changes = 0
        """Counts local changes; ``_changed_at[id]`` is the count at an account's last one."""
        self._changed_at: dict[str, int] = {}
        self._writing: dict[str, int] = {}
        """Accounts with changes on their way to the store, and how many."""
        self._stale: set[str] = set()
        """Accounts a reload skipped for a change on its way: read again once it has landed."""
        self._readings_due: dict[str, Timer] = {}
        """Accounts whose latest rate-limit reading waits to be written behind, and the timer."""
        self._cooldown_ends: dict[str, Timer] = {}
        """Accounts cooling down since this process benched them, and the timer of the end."""

    async def reload(self) -> None:
        """Adopt what the store holds now: accounts added, removed or edited elsewhere.

        The CLI, the management API and other instances write to the store; the running proxy
        sees their changes through this (the server calls it when the store says another writer
        committed). An account the proxy itself changed while the store was being read, or whose
        change is still on its way to the store, keeps its in-memory version, so a cooldown just
        applied is never undone by a read that missed it; once the change has landed, that
        account is read again, so a change made elsewhere meanwhile is not missed either.
        """
        started_at = self._changes
        stored = await self._store.accounts.list_all()
        merged: list[Account] = []
        for account in stored:
            if account.id in self._by_id and self._keeps_own(account.id, started_at):
                merged.append(self._by_id[account.id])
            else:
                merged.append(self._with_pending_reading(account))
        self._set_all(merged)
        now_ms = self._clock.now_ms()
        for account_id in list(self._cooldown_ends):
            account = self._by_id.get(account_id)
            if account is None or not account.rate_limit.cooling_down(now_ms):
                self._cooldown_ends.pop(account_id).cancel()
                if account is not None:
                    self._ended(account, account.rate_limit.reason, "cleared")

    def _keeps_own(self, account_id: str, started_at: int) -> bool:
        """Whether a read that began at change ``started_at`` must not replace the account."""
        if account_id in self._writing:
            self._stale.add(account_id)
            return True
        return self._changed_at.get(account_id, -1) >= started_at

    async def _read_again(self, account_id: str) -> None:
        """Adopt the stored version of one account a reload skipped (see :meth:`reload`)."""
        started_at = self._changes
        stored = await self._store.accounts.get(account_id)
        if stored is None or account_id not in self._by_id:
            return  # deleted: the reload that follows the deletion's notice drops it
        if not self._keeps_own(account_id, started_at):
            self._by_id[account_id] = self._with_pending_reading(stored)
            self._snapshot = tuple(self._by_id.values())

    def _with_pending_reading(self, stored: Account) -> Account:
        """``stored``, keeping the newer rate-limit reading that waits to be written behind."""
        current = self._by_id.get(stored.id)
        if current is None or stored.id not in self._readings_due:
            return stored
        reading = current.rate_limit
        return msgspec.structs.replace(
            stored,
            rate_limit=msgspec.structs.replace(
                stored.rate_limit,
                status=reading.status,
                reset_at_ms=reading.reset_at_ms,
                remaining=reading.remaining,
            ),
        )

    def accounts(self) -> tuple[Account, ...]:
        """Every account, as an immutable snapshot (cheap: rebuilt only when something changes)."""
        return self._snapshot

    def get(self, account_id: str) -> Account | None:
        return self._by_id.get(account_id)

    def replace(self, account: Account) -> None:
        """Adopt a newer version of one account (e.g. fresh credentials from the token manager)."""
        if account.id in self._by_id:
            self._put(account)

    def apply_selection(self, selection: Selection, now_ms: int) -> None:
        """Persist what a strategy decided: sessions started and pauses lifted."""
        for account_id in selection.unpause:
            self._update(account_id, paused=False, pause_reason=None)
            self._persist(account_id, self._store.accounts.resume(account_id), "resume")
        for account_id in selection.start_session:
            self._update(account_id, session=SessionState(started_at_ms=now_ms, request_count=0))
            self._persist(
                account_id, self._store.accounts.reset_session(account_id, now_ms), "reset session"
            )

    def pause(self, account_id: str, reason: PauseReason) -> None:
        """Pause the account by a rule (``reason``): out of routing from the next request on,
        written at once, told once as :class:`AccountPaused`. An account already paused is
        left as it is, with its first reason."""
        current = self._by_id.get(account_id)
        if current is None or current.paused:
            return
        self._update(account_id, paused=True, pause_reason=reason)
        self._persist(account_id, self._store.accounts.pause(account_id, reason), "pause")
        self.events.emit(AccountPaused(account_id=account_id, account=current.name, reason=reason))

    def apply_rate_limit(
        self, account_id: str, info: RateLimitInfo, now_ms: int, policy: CooldownPolicy | None
    ) -> None:
        """Update the account's cooldown after a response classified as ``info``: the one place
        the request path and the auto-refresh probes turn an upstream's answer into routing."""
        current = self._by_id.get(account_id)
        if current is not None:
            state = apply_rate_limit(current.rate_limit, info, now_ms, policy)
            self._set_rate_limit(account_id, state, "served")

    def apply_failure(
        self,
        account_id: str,
        reason: RateLimitReason,
        now_ms: int,
        policy: CooldownPolicy | None,
    ) -> None:
        """Open the account's circuit breaker after an attempt without a usable answer (see
        :func:`~better_ccflare.proxy._cooldowns.apply_failure`)."""
        current = self._by_id.get(account_id)
        if current is not None:
            self.set_rate_limit(
                account_id, apply_failure(current.rate_limit, reason, now_ms, policy)
            )

    def set_rate_limit(self, account_id: str, state: RateLimitState) -> None:
        """Record a response's rate-limit reading: a change to routing is written at once, a
        mere reading behind.

        A cooldown starting, ending or counting up changes which account serves the next
        request, so it is written through. The rest (``status``, ``reset_at_ms``,
        ``remaining``) changes on nearly every response: an API key's reset header names the
        moment its request allowance refills, a moving target. Writing each one cost a database
        transaction per request; instead the latest reading is written once per
        :data:`READING_WRITE_DELAY_S` per account.
        """
        self._set_rate_limit(account_id, state, "served")

    def _set_rate_limit(self, account_id: str, state: RateLimitState, cause: _EndCause) -> None:
        current = self._by_id.get(account_id)
        if current is None or current.rate_limit == state:
            return
        self._update(account_id, rate_limit=state)
        old = current.rate_limit
        if (old.limited_until_ms, old.reason, old.consecutive, old.failures) != (
            state.limited_until_ms,
            state.reason,
            state.consecutive,
            state.failures,
        ):
            self._persist(
                account_id, self._store.accounts.update_rate_limit(account_id, state), "rate limit"
            )
            self._tell_cooldown(current, state, cause)
        elif account_id not in self._readings_due:
            self._readings_due[account_id] = self._clock.call_later(
                READING_WRITE_DELAY_S, lambda: self._write_reading(account_id)
            )

    def _tell_cooldown(self, before: Account, state: RateLimitState, cause: _EndCause) -> None:
        """Emit the cooldown that starts or ends with this change, and time the end."""
        now_ms = self._clock.now_ms()
        until = state.limited_until_ms
        if until is not None and until != before.rate_limit.limited_until_ms and until > now_ms:
            self._time_end(before.id, until, now_ms)
            if state.reason is RateLimitReason.CREDENTIALS_REJECTED:
                self.events.emit(
                    CredentialsRejected(
                        account_id=before.id,
                        account=before.name,
                        probe_at_ms=until,
                        failures=state.failures,
                    )
                )
            else:
                self.events.emit(
                    CooldownStarted(
                        account_id=before.id,
                        account=before.name,
                        reason=state.reason,
                        until_ms=until,
                        failures=state.failures,
                    )
                )
        elif until is None and before.rate_limit.cooling_down(now_ms):
            timer = self._cooldown_ends.pop(before.id, None)
            if timer is not None:
                timer.cancel()
            self._ended(before, before.rate_limit.reason, cause)

    def _time_end(self, account_id: str, until: int, now_ms: int) -> None:
        timer = self._cooldown_ends.pop(account_id, None)
        if timer is not None:
            timer.cancel()
        self._cooldown_ends[account_id] = self._clock.call_later(
            (until - now_ms) / 1000, lambda: self._expired(account_id, until)
        )

    def _expired(self, account_id: str, until: int) -> None:
        """A cooldown's timer fired: it ended by itself, unless it moved or ended meanwhile."""
        self._cooldown_ends.pop(account_id, None)
        current = self._by_id.get(account_id)
        if current is not None and current.rate_limit.limited_until_ms == until:
            self._ended(current, current.rate_limit.reason, "expired")

    def _ended(self, account: Account, reason: RateLimitReason | None, cause: _EndCause) -> None:
        self.events.emit(
            CooldownEnded(account_id=account.id, account=account.name, reason=reason, cause=cause)
        )

    def _write_reading(self, account_id: str) -> None:
        """Queue the account's latest rate-limit reading (due, or flushed by :meth:`drain`)."""
        self._readings_due.pop(account_id).cancel()
        current = self._by_id.get(account_id)
        if current is None:
            return
        try:
            self._store.accounts.record_rate_limit_reading_nowait(account_id, current.rate_limit)
        except StoreClosedError:
            # A reading that came in while the service shut down: the next response's
            # reading replaces it anyway.
            _log.debug("store closed; rate-limit reading of %s not written", account_id)

    def window_reset(self, account_id: str) -> None:
        """The usage poller saw the account's window start over, or every account-wide window
        with room again: a quota cooldown is moot.

        Cooldowns end by themselves at the announced reset; this ends one early when the
        upstream's usage endpoint shows the window already rolled over or under 100 % (for
        example a cooldown set from a guessed reset). A bench for lack of credit ends too: the
        new window is credit again. Overload cooldowns and the other breaker benches are left alone.
        """
        current = self._by_id.get(account_id)
        if current is None or current.rate_limit.reason not in _WINDOW_RESET_ENDS:
            return
        limit = current.rate_limit
        if limit.limited_until_ms is None and not limit.failures:
            return
        self._set_rate_limit(
            account_id,
            msgspec.structs.replace(limit, limited_until_ms=None, failures=0),
            "window_reset",
        )

    def record_use(self, account_id: str, now_ms: int) -> None:
        """Count a served request against the account and its session."""
        current = self._by_id.get(account_id)
        if current is None:
            return
        session = current.session
        if (
            session.started_at_ms is None
            or now_ms - session.started_at_ms >= self._session_duration_ms
        ):
            session = SessionState(started_at_ms=now_ms, request_count=1)
        else:
            session = SessionState(
                started_at_ms=session.started_at_ms, request_count=session.request_count + 1
            )
        self._update(
            account_id,
            last_used_ms=now_ms,
            request_count=current.request_count + 1,
            total_requests=current.total_requests + 1,
            session=session,
        )
        self._store.accounts.record_use_nowait(account_id, now_ms, self._session_duration_ms)

    async def written(self, timeout_s: float = 2.0) -> None:
        """Return once the account changes made here so far are in the store, or have failed,
        or after ``timeout_s`` (another process holding the database's lock must not hang a
        page for the busy timeout).

        The management API reads accounts from the store (so that it also shows what other
        processes wrote); this lets it show a change this process made a moment ago too, such
        as the cooldown from a request that just failed, rather than the state before it.
        """
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=timeout_s)

    async def drain(self) -> None:
        """Write what waits to be written behind, and wait for every background write."""
        for account_id in list(self._readings_due):
            self._write_reading(account_id)
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        with contextlib.suppress(StoreClosedError):  # closing wrote whatever was queued
            await self._store.flush()

    def _set_all(self, accounts: Iterable[Account]) -> None:
        self._by_id = {account.id: account for account in accounts}
        self._snapshot = tuple(self._by_id.values())

    def _update(self, account_id: str, **changes: object) -> None:
        current = self._by_id.get(account_id)
        if current is not None:
            self._put(msgspec.structs.replace(current, **changes))

    def _put(self, account: Account) -> None:
        """Store a locally changed account and remember when (see :meth:`reload`)."""
        self._by_id[account.id] = account
        self._snapshot = tuple(self._by_id.values())
        self._changed_at[account.id] = self._changes
        self._changes += 1

    def _persist(self, account_id: str, write: Awaitable[None], what: str) -> None:
        self._writing[account_id] = self._writing.get(account_id, 0) + 1

        async def run() -> None:
            try:
                await write
            except Exception:
                _log.exception("Could not save an account change (%s)", what)
            finally:
                left = self._writing.pop(account_id) - 1
                if left:
                    self._writing[account_id] = left
            if left or account_id not in self._stale:
                return
            self._stale.discard(account_id)
            try:
                await self._read_again(account_id)
            except StoreClosedError:
                return
            except Exception:
                _log.warning("Could not read account %s again", account_id, exc_info=True)

        task = asyncio.get_running_loop().create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
