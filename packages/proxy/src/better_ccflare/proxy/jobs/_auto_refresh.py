"""Auto-refresh: start a subscription's next usage window as soon as the last one has reset.

A Claude subscription's five-hour window starts with the first request after the previous one
reset. An account nobody happens to use keeps an idle window, so its capacity arrives later
than it could. For every account with ``auto_refresh_enabled``, the scheduler sends one tiny
``/v1/messages`` request, shaped like Claude Code's own, straight to that account (not through
the strategy) once its stored reset has passed, and records the new window the upstream
reports.

Outcomes of a probe:

* **2xx**: the rate-limit headers go through the provider's classifier and
  :meth:`~better_ccflare.proxy.AccountPool.apply_rate_limit` into the pool; a
  ``failure_threshold`` pause is lifted and the failure counters start over.
* **401**: auto-refresh is switched off for the account and the log says how to log in again.
* **529**, no response (connection error, timeout) or credentials that could not be refreshed
  for now: an *uncounted* failure. The account is left alone for a growing while (1 m, 5 m,
  10 m, 30 m, 1 h, 6 h, 12 h, then 12 h each time).
* a rate-limited response with a future reset: the reset is recorded like any response's and
  the next probe waits for it. This is the upstream telling the truth, not a failure.
* anything else: a *counted* failure; the account is retried on the next tick, and after
  :data:`FAILURE_THRESHOLD` in a row it is paused with ``PauseReason.FAILURE_THRESHOLD``
  (probed again at most every 10 minutes, and resumed by the first success).

Probes are never recorded as user requests. Everything the scheduler touches is injected, so
tests drive it with a fake clock, a scripted transport and :meth:`AutoRefreshScheduler.tick`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Sequence
from enum import StrEnum

import msgspec

from better_ccflare.core import Account, Clock, Credentials, PauseReason, ProviderKind
from better_ccflare.database import Store
from better_ccflare.providers import (
    ClientRequest,
    Provider,
    ProviderRegistry,
    RateLimitInfo,
    RateLimitKind,
    UnknownProviderError,
    UpstreamRequest,
)
from better_ccflare.proxy._account_pool import AccountPool
from better_ccflare.proxy._cooldowns import CooldownPolicy
from better_ccflare.proxy._credential_source import CredentialSource
from better_ccflare.proxy._log_fields import account_data
from better_ccflare.proxy._token_manager import CredentialsUnavailableError
from better_ccflare.proxy._transport import (
    Timeouts,
    UpstreamConnectError,
    UpstreamTimeoutError,
    UpstreamTransport,
)

from ._periodic_job import PeriodicJob, Sleep

__all__ = [
    "AUTO_REFRESH_PROVIDERS",
    "FAILURE_THRESHOLD",
    "PROBE_MODELS",
    "PROBE_PROMPTS",
    "UNCOUNTED_BACKOFF_MS",
    "AutoRefreshScheduler",
    "ProbeOutcome",
]

_log = logging.getLogger("better_ccflare.proxy")

_MINUTE_MS = 60_000
_HOUR_MS = 60 * _MINUTE_MS

AUTO_REFRESH_PROVIDERS = frozenset({ProviderKind.CLAUDE_OAUTH.value, ProviderKind.ZAI.value})
"""Providers whose usage windows start on first use, so probing them is worth it."""

PROBE_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-4")
"""Tried in order within one probe; the next is tried only when the upstream answers 404."""

UNCOUNTED_BACKOFF_MS = (
    _MINUTE_MS,
    5 * _MINUTE_MS,
    10 * _MINUTE_MS,
    30 * _MINUTE_MS,
    _HOUR_MS,
    6 * _HOUR_MS,
    12 * _HOUR_MS,
)
"""Wait after the 1st, 2nd, ... uncounted failure in a row; the last rung repeats."""

FAILURE_THRESHOLD = 5
"""Counted failures in a row that pause the account."""

PROBE_PROMPTS = (
    "Say hi.",
    "Reply with one word: ok.",
    "What is 2 + 2?",
    "Name a color.",
    "Give me a synonym for quick.",
    "What day comes after Monday?",
    "Spell cat backwards.",
    "Name a planet.",
    "What is the capital of France?",
    "Say hello in Spanish.",
    "Name a fruit that is yellow.",
    "What is 10 divided by 2?",
    "Give one word that rhymes with light.",
    "Name a musical instrument.",
    "What is the opposite of hot?",
    "Count to three.",
    "Name an animal that can fly.",
    "What is H2O?",
    "Name a month with 30 days.",
    "Is the sky blue? Answer briefly.",
)
"""Short, varied prompts; one is drawn at random for each probe."""

_STALE_RESET_MS = 24 * _HOUR_MS
"""A reset this old (or none at all) says nothing: probe again after this long."""
_PAUSED_PROBE_INTERVAL_MS = 10 * _MINUTE_MS
"""Accounts paused for repeated failures are probed at most this often."""
_PROBE_TIMEOUT_S = 30.0
_CLAUDE_CODE_VERSION = "2.0.0"


class ProbeOutcome(StrEnum):
    """What one probe came to."""

    REFRESHED = "refreshed"
    RATE_LIMITED = "rate_limited"
    """The window is still used up; its reset was recorded."""
    UNAUTHORIZED = "unauthorized"
    UNCOUNTED_FAILURE = "uncounted_failure"
    COUNTED_FAILURE = "counted_failure"
    NOT_SENT = "not_sent"
    """Nothing was sent (the account needs a new login, or has gone)."""


class _Tracking(msgspec.Struct, kw_only=True):
    refreshed_at_ms: int | None = None
    """Last successful (or rate-limited) probe."""
    attempted_at_ms: int | None = None
    failures: int = 0
    """Counted failures in a row."""
    uncounted: int = 0
    """Uncounted failures in a row."""
    backoff_until_ms: int | None = None


class AutoRefreshScheduler:
    """Probes idle accounts whose usage window has reset, every ``interval_ms``.

    Args:
        pool: The in-memory accounts; probes read it and write rate limits and flags into it.
        providers: Resolves ``Account.provider`` to its provider.
        transport: Sends the probes.
        credentials: Fresh credentials for an account (the token manager).
        store: Where pauses, resumes and the auto-refresh flag are persisted.
        clock: Source of "now".
        interval_ms: Time between ticks.
        sleep: How the tick loop waits; ``asyncio.sleep`` by default.
        rng: Chooses the prompt; a fresh ``random.Random`` by default.
        models: Models to probe with, in order of preference.
        prompts: The prompts to draw from.
        client_version: The Claude Code version the ``user-agent`` claims.
        timeout_s: Deadline for connecting and for the response headers.
        policy: Cooldown tunables for :func:`~better_ccflare.proxy._cooldowns.apply_rate_limit`.
    """

    __slots__ = (
        "_client_version",
        "_clock",
        "_credentials",
        "_lock",
        "_models",
        "_policy",
        "_pool",
        "_prompts",
        "_providers",
        "_rng",
        "_store",
        "_timeouts",
        "_tracking",
        "_transport",
        "job",
    )

    def __init__(
        self,
        *,
        pool: AccountPool,
        providers: ProviderRegistry,
        transport: UpstreamTransport,
        credentials: CredentialSource,
        store: Store,
        clock: Clock,
        interval_ms: int = _MINUTE_MS,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        models: Sequence[str] = PROBE_MODELS,
        prompts: Sequence[str] = PROBE_PROMPTS,
        client_version: str = _CLAUDE_CODE_VERSION,
        timeout_s: float = _PROBE_TIMEOUT_S,
        policy: CooldownPolicy | None = None,
    ) -> None:
        if not models or not prompts:
            raise ValueError("auto-refresh needs at least one model and one prompt")
        self._pool = pool
        self._providers = providers
        self._transport = transport
        self._credentials = credentials
        self._store = store
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (prompt variety, not cryptography)
        self._models = tuple(models)
        self._prompts = tuple(prompts)
        self._client_version = client_version
        self._timeouts = Timeouts(connect_s=timeout_s, first_byte_s=timeout_s, idle_s=timeout_s)
        self._policy = policy
        self._tracking: dict[str, _Tracking] = {}
        self._lock = asyncio.Lock()
        self.job = PeriodicJob("auto-refresh", interval_ms, self.tick, sleep=sleep)
        """The 60-second heartbeat, started and stopped with the job set (on the fleet's
        leader only: probes are real upstream requests); its status feeds the jobs overview."""

    def failures(self, account_id: str) -> int:
        """Counted probe failures of ``account_id`` in a row."""
        tracking = self._tracking.get(account_id)
        return tracking.failures if tracking else 0

    def backoff_until_ms(self, account_id: str) -> int | None:
        """Until when ``account_id`` is left alone after uncounted failures, if it is."""
        tracking = self._tracking.get(account_id)
        return tracking.backoff_until_ms if tracking else None

    def due(self, account: Account, now_ms: int) -> bool:
        """Whether ``account`` should be probed at ``now_ms``."""
        tracking = self._tracking.get(account.id) or _Tracking()
        return _eligible(account, now_ms) and _scheduled(account, tracking, now_ms)

    async def tick(self) -> int:
        """Probe every due account, concurrently; ticks never overlap.

        Returns:
            The number of accounts a probe was sent to.
        """
        async with self._lock:
            now = self._clock.now_ms()
            accounts = self._pool.accounts()
            present = {account.id for account in accounts}
            for gone in self._tracking.keys() - present:
                del self._tracking[gone]
            due = [account for account in accounts if self.due(account, now)]
            if not due:
                return 0
            outcomes = await asyncio.gather(*(self.probe(account) for account in due))
            return sum(outcome is not ProbeOutcome.NOT_SENT for outcome in outcomes)

    async def probe(self, account: Account) -> ProbeOutcome:
        """Send one probe to ``account`` now, whether or not it is due, and act on the answer."""
        tracking = self._tracking.setdefault(account.id, _Tracking())
        tracking.attempted_at_ms = self._clock.now_ms()
        try:
            provider = self._providers.get(account.provider)
        except UnknownProviderError:
            _log.warning(
                "Not probing account %s: no provider %r is registered",
                account.name,
                account.provider,
                extra={"data": account_data(account, provider=account.provider)},
            )
            return ProbeOutcome.NOT_SENT
        try:
            credentials = await self._credentials.credentials_for(account)
        except CredentialsUnavailableError as exc:
            if exc.reauth_required:
                # The token manager has marked the account; the next tick skips it.
                _log.warning(
                    "Not probing account %s: %s",
                    account.name,
                    exc,
                    extra={"data": account_data(account, reason=str(exc))},
                )
                return ProbeOutcome.NOT_SENT
            return self._uncounted(account, tracking, str(exc))
        try:
            return await self._send(account, provider, credentials, tracking)
        except (UpstreamConnectError, UpstreamTimeoutError) as exc:
            return self._uncounted(account, tracking, type(exc).__name__)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Providers may raise anything and a message could echo a request: log the type.
            return await self._counted(account, tracking, type(exc).__name__)

    def build_probe(
        self, account: Account, provider: Provider, credentials: Credentials, model: str
    ) -> UpstreamRequest:
        """The upstream request of one probe of ``account`` with ``model``."""
        prompt = self._rng.choice(self._prompts)
        body = json.dumps(
            {
                "model": model,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": prompt}],
            }
        ).encode()
        return provider.build_request(
            ClientRequest(
                method="POST", path="/v1/messages", headers=self._claude_code_headers(), body=body
            ),
            account,
            credentials,
        )

    def _claude_code_headers(self) -> dict[str, str]:
        return {
            "accept": "application/json",
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "oauth-2025-04-20,fine-grained-tool-streaming-2025-05-14",
            "anthropic-dangerous-direct-browser-access": "true",
            "user-agent": f"claude-cli/{self._client_version} (external, cli)",
            "x-app": "cli",
            "x-stainless-lang": "js",
            "x-stainless-runtime": "node",
            "x-stainless-retry-count": "0",
            "x-stainless-timeout": str(round(self._timeouts.first_byte_s)),
        }

    async def _send(
        self, account: Account, provider: Provider, credentials: Credentials, tracking: _Tracking
    ) -> ProbeOutcome:
        for index, model in enumerate(self._models):
            request = self.build_probe(account, provider, credentials, model)
            response = await self._transport.send(request, self._timeouts)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            status = response.status
            if status == 404 and index + 1 < len(self._models):
                continue
            headers = dict(response.headers)
            now = self._clock.now_ms()
            if 200 <= status < 300:
                info = provider.classify_rate_limit(
                    status=status, headers=headers, body=None, now_ms=now
                )
                await self._refreshed(account, info, now, tracking)
                return ProbeOutcome.REFRESHED
            if status == 401:
                await self._unauthorized(account, tracking)
                return ProbeOutcome.UNAUTHORIZED
            if status == 529:
                return self._uncounted(account, tracking, "529 overloaded")
            info = provider.classify_rate_limit(
                status=status, headers=headers, body=body, now_ms=now
            )
            if (
                info.kind is RateLimitKind.ACCOUNT_QUOTA
                and info.reset_at_ms is not None
                and info.reset_at_ms > now
            ):
                self._pool.apply_rate_limit(account.id, info, now, self._policy)
                tracking.refreshed_at_ms = now
                tracking.uncounted = 0
                tracking.backoff_until_ms = None
                _log.info(
                    "Account %s is still rate-limited; probing again after its reset",
                    account.name,
                    extra={"data": account_data(account, reset_at_ms=info.reset_at_ms)},
                )
                return ProbeOutcome.RATE_LIMITED
            return await self._counted(account, tracking, f"HTTP {status}")
        raise AssertionError("unreachable: the last model never continues")  # pragma: no cover

    async def _refreshed(
        self, account: Account, info: RateLimitInfo, now: int, tracking: _Tracking
    ) -> None:
        self._pool.apply_rate_limit(account.id, info, now, self._policy)
        tracking.refreshed_at_ms = now
        tracking.failures = 0
        tracking.uncounted = 0
        tracking.backoff_until_ms = None
        current = self._pool.get(account.id) or account
        if current.paused and current.pause_reason is PauseReason.FAILURE_THRESHOLD:
            try:
                await self._store.accounts.resume(account.id)
            except Exception:
                _log.exception(
                    "Could not resume account %s",
                    account.name,
                    extra={"data": account_data(account)},
                )
            else:
                self._pool.replace(
                    msgspec.structs.replace(current, paused=False, pause_reason=None)
                )
                _log.info(
                    "Account %s answered its probe again; resumed it",
                    account.name,
                    extra={"data": account_data(account)},
                )
        _log.info(
            "Auto-refresh probe of account %s started a new usage window",
            account.name,
            extra={"data": account_data(account)},
        )

    async def _unauthorized(self, account: Account, tracking: _Tracking) -> None:
        try:
            await self._store.accounts.set_flags(account.id, auto_refresh=False)
        except Exception:
            _log.exception(
                "Could not turn off auto-refresh of account %s",
                account.name,
                extra={"data": account_data(account)},
            )
        current = self._pool.get(account.id) or account
        self._pool.replace(msgspec.structs.replace(current, auto_refresh_enabled=False))
        _log.warning(
            "Account %s (%s) rejected its auto-refresh probe with 401 Unauthorized, so "
            "auto-refresh is now off for it. Log in to the account again (re-authenticate it "
            "from the dashboard or the CLI), then turn auto-refresh back on.",
            account.name,
            account.id,
            extra={"data": account_data(account, status=401)},
        )

    def _uncounted(self, account: Account, tracking: _Tracking, reason: str) -> ProbeOutcome:
        tracking.uncounted += 1
        wait = UNCOUNTED_BACKOFF_MS[min(tracking.uncounted, len(UNCOUNTED_BACKOFF_MS)) - 1]
        tracking.backoff_until_ms = self._clock.now_ms() + wait
        _log.warning(
            "Auto-refresh probe of account %s failed (%s); trying again in %d min",
            account.name,
            reason,
            wait // _MINUTE_MS,
            extra={"data": account_data(account, reason=reason, retry_in_ms=wait)},
        )
        return ProbeOutcome.UNCOUNTED_FAILURE

    async def _counted(self, account: Account, tracking: _Tracking, reason: str) -> ProbeOutcome:
        tracking.failures += 1
        _log.warning(
            "Auto-refresh probe of account %s failed (%s), %d in a row",
            account.name,
            reason,
            tracking.failures,
            extra={"data": account_data(account, reason=reason, failures=tracking.failures)},
        )
        current = self._pool.get(account.id) or account
        if tracking.failures >= FAILURE_THRESHOLD and not current.paused:
            try:
                await self._store.accounts.pause(account.id, PauseReason.FAILURE_THRESHOLD)
            except Exception:
                _log.exception(
                    "Could not pause account %s",
                    account.name,
                    extra={"data": account_data(account)},
                )
            else:
                self._pool.replace(
                    msgspec.structs.replace(
                        current, paused=True, pause_reason=PauseReason.FAILURE_THRESHOLD
                    )
                )
                _log.warning(
                    "Paused account %s after %d failed auto-refresh probes in a row; it is "
                    "resumed by the first probe that succeeds",
                    account.name,
                    tracking.failures,
                    extra={"data": account_data(account, failures=tracking.failures)},
                )
        return ProbeOutcome.COUNTED_FAILURE


def _eligible(account: Account, now_ms: int) -> bool:
    """The account's own state allows a probe: opted in, usable, and its window has reset."""
    reset = account.rate_limit.reset_at_ms
    return (
        account.auto_refresh_enabled
        and account.provider in AUTO_REFRESH_PROVIDERS
        and not account.requires_reauth
        and not account.rate_limit.cooling_down(now_ms)
        and (not account.paused or account.pause_reason is PauseReason.FAILURE_THRESHOLD)
        and (reset is None or reset <= now_ms)
    )


def _scheduled(account: Account, tracking: _Tracking, now_ms: int) -> bool:
    """The scheduler's own record allows a probe: no backoff, not yet probed for this reset."""
    if tracking.backoff_until_ms is not None and now_ms < tracking.backoff_until_ms:
        return False
    if (
        account.paused
        and tracking.attempted_at_ms is not None
        and now_ms - tracking.attempted_at_ms < _PAUSED_PROBE_INTERVAL_MS
    ):
        return False
    last = tracking.refreshed_at_ms
    reset = account.rate_limit.reset_at_ms
    if last is None or (reset is not None and last < reset):
        return True
    # The reset is unknown, or passed before the last probe and nothing newer came back:
    # look again once a day rather than never.
    return now_ms - last >= _STALE_RESET_MS
