"""What happens to the pool, said once: the events the log, metrics and traces all read.

Failovers, cooldowns starting and ending, rejected credentials, failed refreshes and requests
that every account failed are each described by one small event and emitted once, where they
happen, to :class:`PoolEvents`. Whoever wants them subscribes: the log is the first subscriber
(:func:`log_pool_event`), and the metrics and traces of later work subscribe to the same
events instead of instrumenting the same places again.

Events are only made when something went wrong or changed, never for a request served at the
first try, so they cost the hot path nothing; with only the logger listening, an event costs
the log call and the construction of a small struct.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

import msgspec

from better_ccflare.core import PauseReason, RateLimitReason

__all__ = [
    "AccountPaused",
    "AllAccountsFailed",
    "CooldownEnded",
    "CooldownStarted",
    "CredentialsRejected",
    "Failover",
    "FailoverReason",
    "PoolEvent",
    "PoolEvents",
    "PoolListener",
    "RefreshFailed",
    "log_pool_event",
]

_log = logging.getLogger("better_ccflare.proxy")


class FailoverReason(StrEnum):
    """Why an attempt on one account did not serve the request; a bounded set, fit for a label."""

    CREDENTIALS_REJECTED = "credentials_rejected"
    CREDENTIALS_UNAVAILABLE = "credentials_unavailable"
    """No usable credentials: a refresh failed, or the account awaits a new login."""
    ACCOUNT_QUOTA = "account_quota"
    REQUEST_SCOPED = "request_scoped"
    OUT_OF_CREDITS = "out_of_credits"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    CONNECT_FAILED = "connect_failed"
    BODY_CUT = "body_cut"
    """The upstream's error body broke off before it could be read."""
    ACCOUNT_UNUSABLE = "account_unusable"
    """Unknown provider, a configuration error, or a request the provider cannot carry."""
    MODEL_UNAVAILABLE = "model_unavailable"
    """Every model of the account's fallback list was not found there (``--model-map a,b``)."""


class Failover(msgspec.Struct, frozen=True, kw_only=True, tag="failover"):
    """An account failed a request, and the next candidate is tried."""

    request_id: str
    account_id: str
    account: str
    status: int | None
    """The upstream's HTTP status; ``None`` when there was no answer."""
    reason: FailoverReason


class AllAccountsFailed(msgspec.Struct, frozen=True, kw_only=True, tag="all_accounts_failed"):
    """Every candidate failed the request; the client gets an error."""

    request_id: str
    attempts: int
    status: int | None = None
    """The last attempt's upstream status; ``None`` when it had no answer."""
    reason: FailoverReason | None = None
    """Why the last attempt failed."""


class CooldownStarted(msgspec.Struct, frozen=True, kw_only=True, tag="cooldown_started"):
    """An account is benched (or its bench moved) until ``until_ms``."""

    account_id: str
    account: str
    reason: RateLimitReason | None
    until_ms: int
    failures: int
    """The circuit breaker's streak (0 for a rate limit)."""


class CooldownEnded(msgspec.Struct, frozen=True, kw_only=True, tag="cooldown_ended"):
    """An account's bench is over; it is routable again (unless something else holds it)."""

    account_id: str
    account: str
    reason: RateLimitReason | None
    """Why it had been benched."""
    cause: Literal["expired", "served", "window_reset", "cleared"]
    """``expired``: its time ran out; ``served``: it answered again; ``window_reset``: the usage
    poller saw its window start over; ``cleared``: reset or new credentials, from the CLI or API."""


class CredentialsRejected(msgspec.Struct, frozen=True, kw_only=True, tag="credentials_rejected"):
    """The upstream refused an account's credentials; an operator should replace them."""

    account_id: str
    account: str
    probe_at_ms: int
    """When a request is next allowed to try the account (a probe)."""
    failures: int


class RefreshFailed(msgspec.Struct, frozen=True, kw_only=True, tag="refresh_failed"):
    """Refreshing an account's OAuth tokens failed."""

    account_id: str
    account: str
    problem: str
    reauth_required: bool
    """The refresh token is dead: only a new login helps."""
    retry_in_ms: int | None
    """When the refresh is tried again, unless a new login is required."""


class AccountPaused(msgspec.Struct, frozen=True, kw_only=True, tag="account_paused"):
    """A rule paused an account (a person's pause is not an event); it stays out of routing
    until resumed, by hand or by auto-fallback once its window resets."""

    account_id: str
    account: str
    reason: PauseReason


PoolEvent = (
    Failover
    | AllAccountsFailed
    | CooldownStarted
    | CooldownEnded
    | CredentialsRejected
    | RefreshFailed
    | AccountPaused
)
PoolListener = Callable[[PoolEvent], None]
"""Called synchronously with each event; it must not block (queue any I/O)."""


class PoolEvents:
    """The listeners of pool events, the logger first.

    Args:
        listeners: Who hears each event, in order; by default only :func:`log_pool_event`.
    """

    __slots__ = ("_listeners",)

    def __init__(self, listeners: tuple[PoolListener, ...] | None = None) -> None:
        self._listeners = (log_pool_event,) if listeners is None else listeners

    def subscribe(self, listener: PoolListener) -> Callable[[], None]:
        """Add ``listener``; returns the call that removes it again."""
        self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            self._listeners = tuple(known for known in self._listeners if known is not listener)

        return unsubscribe

    def emit(self, event: PoolEvent) -> None:
        """Tell every listener; one that raises is logged and does not stop the others."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("A pool event listener failed on %s", type(event).__name__)


def log_pool_event(event: PoolEvent) -> None:
    """The log's view of an event: one line, its fields in ``data``, at the level an operator
    would choose (WARNING where someone must act)."""
    level, message = _describe(event)
    data = msgspec.to_builtins(event)
    _log.log(level, message, extra={"data": data})


def _describe(event: PoolEvent) -> tuple[int, str]:  # noqa: PLR0911 (one return per event)
    match event:
        case Failover():
            status = f"answered {event.status}" if event.status is not None else "did not answer"
            return logging.INFO, (
                f"Failover: account {event.account} {status} ({event.reason.value}); "
                "trying the next account"
            )
        case AllAccountsFailed():
            return logging.WARNING, (
                f"Every account failed request {event.request_id} ({event.attempts} attempts)"
            )
        case CooldownStarted():
            reason = event.reason.value if event.reason is not None else "unknown"
            # No credit needs someone to top the account up; the other benches pass by themselves.
            level = (
                logging.WARNING if event.reason is RateLimitReason.OUT_OF_CREDITS else logging.INFO
            )
            return level, f"Cooldown started: account {event.account} is benched ({reason})"
        case CooldownEnded():
            return logging.INFO, (
                f"Cooldown ended: account {event.account} is routable again ({event.cause})"
            )
        case CredentialsRejected():
            return logging.WARNING, (
                f"Credentials rejected: the upstream refused account {event.account}; "
                "update its key or log in again"
            )
        case AccountPaused():
            return logging.WARNING, (
                f"Account paused: {event.account} ({event.reason.value}); "
                "resume it with `better-ccflare account resume`"
            )
        case RefreshFailed():
            fix = "log in again" if event.reauth_required else "the refresh will be retried"
            return logging.WARNING, (
                f"Refresh failed: account {event.account}: {event.problem} ({fix})"
            )
